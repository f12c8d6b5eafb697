"""Benchmark configuration: what to run, on which backends, for how long.

A run is a `BenchConfig` (frozen: one run, one set of settings, recorded in the
result) and the list of `Variant`s it expands to. A variant is one backend
setting measured side by side with the others: backend name, threads, graph
optimisation level and precision.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from avfuse.errors import UsageError

SCENARIOS = ("single-stream", "multi-stream", "offline", "end-to-end", "all")
LEVELS = ("model", "e2e", "both")
PRECISIONS = ("fp32", "fp16", "int8")
OPT_LEVELS = ("disable", "basic", "extended", "all")
#: queries LoadGen's early-stopping rule needs before it can bound the percentile it
#: reports, whatever the latencies (p90 single-stream, p99 multi-stream)
EARLY_STOPPING_MIN_QUERIES = {"single-stream": 64, "multi-stream": 662}


@dataclass(frozen=True, kw_only=True)
class Variant:
    """One backend setting measured in a run.

    Attributes:
        backend: registry name ("ort", "torch", "tensorrt").
        device: "cpu" or "cuda".
        threads: intra-op threads.
        optimization: graph optimisation level (ONNX Runtime).
        precision: "fp32", "fp16" or "int8" ("int8" on ONNX Runtime: quantised copy).
        quant: int8 method, "dynamic" or "static" (calibrated on data).
        provider: ONNX Runtime provider ("cuda", "tensorrt"; None: the device's).
        url: the server of a remote backend ("triton"); None: its default.
    """

    backend: str
    device: str = "cpu"
    threads: int = 1
    optimization: str = "all"
    precision: str = "fp32"
    quant: str = "dynamic"
    provider: str | None = None
    url: str | None = None

    @property
    def label(self) -> str:
        """Short unique name used in tables, plots and --compare."""
        dev = "" if self.device == "cpu" else f"-{self.device}"
        name = self.backend if self.provider in (None, "cpu", "cuda") else f"ort-{self.provider}"
        parts = [f"{name}{dev}", f"t{self.threads}"]
        if self.backend == "ort":
            parts.append(f"opt-{self.optimization}")
        prec = f"int8-{self.quant}" if self.precision == "int8" else self.precision
        parts.append(prec)
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings plus the label."""
        return {**asdict(self), "label": self.label}


@dataclass(frozen=True, kw_only=True)
class BenchConfig:
    """Settings of one benchmark run (all recorded in the result JSON).

    Attributes:
        scenario: "single-stream", "multi-stream", "offline", "end-to-end" or "all".
        model: manifest path, ONNX path or model folder (None: the bundled default).
        backends: backend names to compare: "torch" (eager), "ort" (CPU sweeps), and the GPU
            ones "torch-cuda", "ort-cuda", "tensorrt"; absent ones are skipped with the reason.
        provider: ONNX Runtime provider of the "ort" variants: None or "cpu" (the CPU
            sweeps), "cuda" or "tensorrt" (one variant per precision on the GPU).
        threads: intra-op thread counts swept for ONNX Runtime.
        optimizations: ONNX Runtime graph optimisation levels swept (at the first thread
            count, fp32).
        precisions: precisions swept ("int8" quantises a copy with onnxruntime.quantization).
        quant: int8 methods ("dynamic", "static").
        batch_sizes: batch sizes of the offline sweep.
        streams: stream counts tried by the multi-stream search (ascending).
        latency_bound_ms: p99 bound of the multi-stream scenario.
        fps: frame rate of each live stream (multi-stream, end-to-end).
        min_duration_ms: LoadGen minimum run length per measurement (0: LoadGen's own rule,
            e.g. 600 s for SingleStream).
        min_query_count: LoadGen minimum query count of a single-stream or offline
            measurement (0: LoadGen's own, in every scenario).
        multi_stream_min_query_count: the least minimum of a multi-stream measurement
            (it gets the larger of this and `min_query_count`). The default is LoadGen's
            early-stopping minimum for the p99 it reports, 662 queries: with fewer, every
            multi-stream run is INVALID whatever its latencies. 0: no floor of its own.
        warmup_queries: untimed queries run (and reported) before each measurement.
        repeats: repeats per measurement; their spread is the noise --compare uses.
        e2e_seconds: length of each end-to-end / streaming measurement.
        source: what the end-to-end streams play: "synthetic" (a live scene per stream)
            or a media file / URL (opened once per stream, played in real time).
        accuracy: measure accuracy on the AV-digits test split next to each setting.
        accuracy_limit: at most this many test samples (0: all).
        seed: seed of every random choice (sample order, synthetic inputs, scenes).
        data: "test" (the AV-digits test split, generated and cached on first use) or
            "synthetic" (seeded random inputs, no accuracy; fast, for smoke tests).
        out_dir: where result JSON, summary and plots go.
        plots: write PNG plots (needs matplotlib: the `bench` extra).
    """

    scenario: str = "single-stream"
    model: str | None = None
    backends: tuple[str, ...] = ("torch", "ort", "torch-cuda", "ort-cuda", "tensorrt")
    threads: tuple[int, ...] = (1, 2)
    optimizations: tuple[str, ...] = OPT_LEVELS
    precisions: tuple[str, ...] = ("fp32", "int8")
    quant: tuple[str, ...] = ("dynamic",)
    batch_sizes: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    streams: tuple[int, ...] = (1, 2, 4, 8, 12, 16, 24, 32)
    latency_bound_ms: float = 50.0
    fps: float = 30.0
    min_duration_ms: int = 1000
    min_query_count: int = 100
    multi_stream_min_query_count: int = EARLY_STOPPING_MIN_QUERIES["multi-stream"]
    warmup_queries: int = 20
    repeats: int = 3
    e2e_seconds: float = 10.0
    source: str = "synthetic"
    accuracy: bool = True
    accuracy_limit: int = 0
    seed: int = 0
    data: str = "test"
    out_dir: str = "benchmarks/results"
    plots: bool = True
    provider: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.provider not in (None, "cpu", "cuda", "tensorrt"):
            raise UsageError(f"unknown provider {self.provider!r}; use cpu, cuda or tensorrt")
        if self.provider is not None and "ort" not in self.backends:
            raise UsageError("--provider applies to --backends ort only: add ort or drop it")
        if self.scenario not in SCENARIOS:
            raise UsageError(f"unknown scenario {self.scenario!r}; use one of {SCENARIOS}")
        for p in self.precisions:
            if p not in PRECISIONS:
                raise UsageError(f"unknown precision {p!r}; use one of {PRECISIONS}")
        for o in self.optimizations:
            if o not in OPT_LEVELS:
                raise UsageError(f"unknown optimisation level {o!r}; use one of {OPT_LEVELS}")
        for q in self.quant:
            if q not in ("dynamic", "static"):
                raise UsageError(f"unknown int8 method {q!r}; use dynamic or static")
        if not self.threads or min(self.threads) < 1:
            raise UsageError("--threads needs counts >= 1, e.g. --threads 1,2")
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise UsageError("--batch-sizes needs sizes >= 1, e.g. --batch-sizes 1,8,32")
        if not self.streams or min(self.streams) < 1 or list(self.streams) != sorted(self.streams):
            raise UsageError("--streams needs ascending counts >= 1, e.g. --streams 1,2,4,8")
        if self.repeats < 1 or self.min_duration_ms < 0:
            raise UsageError("--repeats must be >= 1 and --min-duration-ms >= 0")
        if self.min_query_count < 0 or self.multi_stream_min_query_count < 0:
            raise UsageError("--min-queries must be >= 0 (0: LoadGen's own minimum)")
        if self.data not in ("test", "synthetic"):
            raise UsageError(f"unknown data {self.data!r}; use test or synthetic")
        if self.fps <= 0 or self.latency_bound_ms <= 0 or self.e2e_seconds <= 0:
            raise UsageError("--fps, --latency-bound-ms and --e2e-seconds must be positive")

    def scenarios(self) -> tuple[str, ...]:
        """The scenarios this run executes, in order."""
        if self.scenario == "all":
            return ("single-stream", "multi-stream", "offline", "end-to-end")
        return (self.scenario,)

    def min_queries(self, scenario: str) -> int:
        """LoadGen's minimum query count for a model-level scenario (0: LoadGen's own).

        `min_query_count` = 0 asks for LoadGen's own rules in every scenario; otherwise
        multi-stream never goes below `multi_stream_min_query_count`.
        """
        if scenario == "multi-stream" and self.min_query_count:
            return max(self.min_query_count, self.multi_stream_min_query_count)
        return self.min_query_count

    def variants(self) -> list[Variant]:
        """Backends side by side: torch eager, ORT CPU sweeps, GPU backends (deduplicated)."""
        out: list[Variant] = []
        t0 = self.threads[0]
        for name in self.backends:
            if name == "torch":
                out += [Variant(backend="torch", threads=t) for t in self.threads]
            elif name == "ort" and self.provider in ("cuda", "tensorrt"):
                precs = self.precisions if self.provider == "tensorrt" else ("fp32", "fp16")
                out += [
                    Variant(backend="ort", device="cuda", provider=self.provider, precision=p,
                            quant="static")
                    for p in precs
                ]  # fmt: skip
            elif name == "ort":
                out += [
                    Variant(backend="ort", threads=t0, optimization=o) for o in self.optimizations
                ]
                out += [Variant(backend="ort", threads=t) for t in self.threads[1:]]
                for p in self.precisions:
                    if p == "fp32":
                        continue
                    qs = self.quant if p == "int8" else ("dynamic",)
                    out += [
                        Variant(backend="ort", threads=t, precision=p, quant=q)
                        for q in qs
                        for t in self.threads
                    ]
            elif name == "ort-cuda":
                out += [
                    Variant(backend="ort", device="cuda", precision=p) for p in ("fp32", "fp16")
                ]
            elif name == "torch-cuda":
                out.append(Variant(backend="torch", device="cuda"))
            elif name == "triton":
                # the server owns threads and devices: no client-side thread count
                out.append(Variant(backend="triton", threads=0, url=self.extra.get("triton_url")))
            elif name == "tensorrt":
                out += [Variant(backend="tensorrt", device="cuda", precision=p) for p in ("fp16",)]
            else:
                out.append(Variant(backend=name))
        seen: set[str] = set()
        return [v for v in out if not (v.label in seen or seen.add(v.label))]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings."""
        return asdict(self)
