"""Model-level scenarios driven by the real MLPerf LoadGen (`mlperf_loadgen`).

LoadGen decides when queries are issued, how many, for how long, and whether
the run met its rules (minimum duration, minimum query count, early stopping);
this module is only the system under test: `backend.infer` on prepared inputs.
Quick runs lower `min_duration_ms` / `min_query_count`; LoadGen then often marks
the run INVALID for early stopping, which is recorded as it says, not hidden.

Scenarios:
    single-stream  one sample per query, next query after completion (p90 latency)
    multi-stream   N samples per query (one per stream), run as one batch (p99 latency)
    offline        every sample in one query, run at a batch size (throughput)
"""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from avfuse.backends.base import Backend
from avfuse.bench.data import BenchData
from avfuse.bench.stats import latency_summary
from avfuse.errors import BackendUnavailable

_SCENARIOS = {"single-stream": "SingleStream", "multi-stream": "MultiStream", "offline": "Offline"}

#: LoadGen's own minimum duration of the latency scenarios (min_duration_ms = 0)
LOADGEN_MIN_DURATION_MS = 600_000
#: the latency scenarios' hint is the fastest warm-up query divided by this
HINT_BELOW_FASTEST = 4.0
#: queries queued for one latency run beyond which the hint gives up its margin below the
#: fastest warm-up query (LoadGen held ~140 MB for 200 000 single-stream queries)
MAX_QUEUED = 200_000
#: an offline run's expected throughput is the fastest warm-up query's, times this
OFFLINE_MARGIN = 1.2


def _lg() -> Any:
    try:
        import mlperf_loadgen
    except ImportError as e:
        raise BackendUnavailable(
            "MLPerf LoadGen is not installed: pip install 'avfuse[bench]' (mlcommons-loadgen)"
        ) from e
    return mlperf_loadgen


def parse_summary(text: str) -> dict[str, Any]:
    """The numbers of an `mlperf_log_summary.txt` (latencies in ms)."""
    out: dict[str, Any] = {}
    m = re.search(r"Result is : (\w+)", text)
    out["result"] = m.group(1) if m else None
    for key, pat in (
        ("min_duration_satisfied", r"Min duration satisfied : (\w+)"),
        ("min_queries_satisfied", r"Min queries satisfied : (\w+)"),
        ("early_stopping_satisfied", r"Early stopping satisfied: (\w+)"),
    ):
        m = re.search(pat, text)
        out[key] = None if not m else m.group(1).lower() == "yes"
    lat: dict[str, float] = {}
    for m in re.finditer(r"(\d+\.\d+) percentile latency \(ns\)\s*: (\d+)", text):
        lat[f"p{float(m.group(1)):g}"] = int(m.group(2)) / 1e6
    for name in ("Min", "Max", "Mean"):
        m = re.search(rf"{name} latency \(ns\)\s*: (\d+)", text)
        if m:
            lat[name.lower()] = int(m.group(1)) / 1e6
    out["latency_ms"] = lat
    for key, pat in (
        ("samples_per_second", r"Samples per second\s*: ([\d.]+)"),
        ("qps_with_overhead", r"QPS w/ loadgen overhead\s*: ([\d.]+)"),
        ("qps_without_overhead", r"QPS w/o loadgen overhead\s*: ([\d.]+)"),
    ):
        m = re.search(pat, text)
        if m:
            out[key] = float(m.group(1))
    return out


def warmup(backend: Backend, data: BenchData, *, batch: int, queries: int) -> dict[str, Any]:
    """Untimed-for-results queries before a measurement; their times are reported apart."""
    idx = np.arange(batch) % data.n
    feeds = data.batch(idx)
    times = []
    for _ in range(max(queries, 1)):
        t0 = time.perf_counter_ns()
        backend.infer(feeds)
        times.append((time.perf_counter_ns() - t0) / 1e6)
    return {
        "queries": len(times),
        "total_ms": float(sum(times)),
        "first_ms": times[0],
        "last_ms": times[-1],
        "min_ms": float(min(times)),
        "mean_ms": float(np.mean(times)),
    }


def latency_hint_ms(warm: dict[str, Any], *, scenario: str, min_duration_ms: int) -> float:
    """The expected query latency to tell LoadGen, from a warm-up.

    LoadGen queues min_duration / expected latency queries (at least the minimum count)
    and cannot queue more once the run has started. Too high a hint leaves too few to
    last the minimum duration (INVALID), and the warm-up mean is too high: it holds the
    slow first query. Single- and multi-stream stop issuing once both minimums are met,
    so a hint well below the fastest warm-up query costs only queue memory: the margin
    shrinks where it would queue more than `MAX_QUEUED` queries (LoadGen's own 600 s
    minimum, a fast model), but the hint never exceeds the fastest warm-up query (so a
    model faster than 3 ms a query, under the 600 s rule, queues more). An
    offline run is one query that cannot stop early: its sample count follows the hint,
    so it gets the fastest warm-up query with a small margin (`OFFLINE_MARGIN`) and
    lasts about the minimum duration.
    """
    fastest = max(float(warm.get("min_ms", warm["mean_ms"])), 1e-6)
    if scenario == "offline":
        return fastest / OFFLINE_MARGIN
    duration = min_duration_ms or LOADGEN_MIN_DURATION_MS
    return max(fastest / HINT_BELOW_FASTEST, min(fastest, duration / MAX_QUEUED))


class _SUT:
    """System under test: gathers the queried rows into preallocated buffers and infers."""

    def __init__(self, lg: Any, backend: Backend, data: BenchData, batch: int) -> None:
        self.lg, self.backend, self.data, self.batch = lg, backend, data, batch
        self.buffers = {k: np.empty((batch, *v.shape[1:]), v.dtype) for k, v in data.feeds.items()}
        self.latencies_ns: list[int] = []
        self.samples = 0

    def _run(self, rows: np.ndarray) -> None:
        n = len(rows)
        if n == 1:  # a batch-1 row view is already contiguous: no copy on the timed path
            i = int(rows[0])
            feeds = {k: v[i : i + 1] for k, v in self.data.feeds.items()}
        else:
            feeds = {}
            for k, v in self.data.feeds.items():
                np.take(v, rows, axis=0, out=self.buffers[k][:n])
                feeds[k] = self.buffers[k][:n]
        self.backend.infer(feeds)

    def issue(self, query_samples: list[Any]) -> None:
        t0 = time.perf_counter_ns()
        ids = np.fromiter((q.index for q in query_samples), np.int64, len(query_samples))
        for start in range(0, len(ids), self.batch):
            chunk = ids[start : start + self.batch]
            self._run(chunk)
            done = query_samples[start : start + self.batch]
            self.lg.QuerySamplesComplete([self.lg.QuerySampleResponse(q.id, 0, 0) for q in done])
        self.latencies_ns.append(time.perf_counter_ns() - t0)
        self.samples += len(ids)

    def flush(self) -> None:
        pass


def run_scenario(
    backend: Backend,
    data: BenchData,
    *,
    scenario: str,
    batch: int = 1,
    streams: int = 1,
    min_duration_ms: int = 1000,
    min_query_count: int = 100,
    seed: int = 0,
    expected_ms: float = 1.0,
    workdir: Path | None = None,
) -> dict[str, Any]:
    """One LoadGen measurement; returns LoadGen's summary plus our per-query latencies.

    Args:
        scenario: "single-stream", "multi-stream" or "offline".
        batch: offline batch size (single-stream: 1; multi-stream: `streams`).
        streams: samples per multi-stream query.
        expected_ms: the expected latency of one query at this batch, LoadGen's hint for
            how many queries to queue (see `latency_hint_ms`).
    """
    lg = _lg()
    if scenario == "multi-stream":
        batch = streams
    elif scenario == "single-stream":
        batch = 1
    sut_impl = _SUT(lg, backend, data, batch)
    settings = lg.TestSettings()
    settings.scenario = getattr(lg.TestScenario, _SCENARIOS[scenario])
    settings.mode = lg.TestMode.PerformanceOnly
    if min_duration_ms > 0:  # 0 keeps LoadGen's own rule for the scenario
        settings.min_duration_ms = int(min_duration_ms)
    if min_query_count > 0:
        settings.min_query_count = int(min_query_count)
    settings.qsl_rng_seed = settings.sample_index_rng_seed = settings.schedule_rng_seed = seed
    exp_ns = max(int(expected_ms * 1e6), 1000)
    if scenario == "single-stream":
        settings.single_stream_expected_latency_ns = exp_ns
    elif scenario == "multi-stream":
        settings.multi_stream_samples_per_query = streams
        settings.multi_stream_expected_latency_ns = exp_ns
    else:  # enough samples that the offline query lasts the minimum duration
        qps = batch / max(expected_ms / 1e3, 1e-6)
        settings.offline_expected_qps = max(qps * 1.1, float(min_query_count))
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        log = lg.LogSettings()
        log.log_output.outdir = tmp
        log.log_output.copy_summary_to_stdout = False
        log.enable_trace = False
        sut = lg.ConstructSUT(sut_impl.issue, sut_impl.flush)
        qsl = lg.ConstructQSL(data.n, min(data.n, 1024), lambda s: None, lambda s: None)
        t0 = time.perf_counter()
        try:
            lg.StartTestWithLogSettings(sut, qsl, settings, log)
        finally:
            lg.DestroyQSL(qsl)
            lg.DestroySUT(sut)
        wall = time.perf_counter() - t0
        summary = parse_summary((Path(tmp) / "mlperf_log_summary.txt").read_text())
    lat = np.asarray(sut_impl.latencies_ns, dtype=np.float64) / 1e6
    return {
        "scenario": scenario,
        "batch": batch,
        "latencies_ms": lat,
        "latency_ms": latency_summary(lat),
        "samples": sut_impl.samples,
        "wall_s": wall,
        "throughput_per_s": sut_impl.samples / wall if wall > 0 else None,
        "loadgen": summary,
    }
