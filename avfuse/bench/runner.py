"""Run a benchmark: every variant side by side, every scenario asked for, one record.

`run_bench(config)` loads the model and the data once, then for each variant
(torch eager, ONNX Runtime settings, GPU backends) opens the backend, warms it
up, scores it on the test split and measures the model-level scenarios through
LoadGen; the end-to-end scenario runs the streaming pipeline (avfuse.bench.e2e).
The returned dict is the result JSON (see avfuse.bench.report for its schema).
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from avfuse.bench import loadgen
from avfuse.bench.config import BenchConfig, Variant
from avfuse.bench.data import BenchData, accuracy, load_bench_data, synthetic_data
from avfuse.bench.env import machine, versions
from avfuse.bench.stats import cdf_points, latency_summary, spread
from avfuse.bench.variants import VariantUnavailable, open_variant
from avfuse.manifest import Manifest, load_manifest

FORMAT = "avfuse-bench"
VERSION = 1
Progress = Callable[[str], None]


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _measure(
    be: Any, data: BenchData, cfg: BenchConfig, *, scenario: str, batch: int = 1, streams: int = 1
) -> dict[str, Any]:
    """Warm-up, then `cfg.repeats` LoadGen runs; pooled percentiles plus the repeat spread."""
    size = streams if scenario == "multi-stream" else batch
    warm = loadgen.warmup(be, data, batch=size, queries=cfg.warmup_queries)
    hint = loadgen.latency_hint_ms(warm, scenario=scenario, min_duration_ms=cfg.min_duration_ms)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(cfg.repeats):
            runs.append(
                loadgen.run_scenario(
                    be,
                    data,
                    scenario=scenario,
                    batch=batch,
                    streams=streams,
                    min_duration_ms=cfg.min_duration_ms,
                    min_query_count=cfg.min_queries(scenario),
                    seed=cfg.seed + r,
                    expected_ms=hint,
                    workdir=Path(tmp),
                )
            )
    pooled = np.concatenate([r["latencies_ms"] for r in runs])
    reps = []
    for r in runs:
        thr = r["loadgen"].get("samples_per_second") or r["throughput_per_s"]
        reps.append(
            {
                **{k: r["latency_ms"][k] for k in ("p50", "p90", "p99")},
                "throughput_per_s": thr,
                "queries": r["latency_ms"]["count"],
                "samples": r["samples"],
                "loadgen": r["loadgen"],
            }
        )
    entry: dict[str, Any] = {
        "warmup": warm,
        "loadgen_settings": {
            "expected_latency_ms": hint,
            "min_query_count": cfg.min_queries(scenario),
            "min_duration_ms": cfg.min_duration_ms,
        },
        "latency_ms": latency_summary(pooled),
        "throughput_per_s": float(np.median([x["throughput_per_s"] for x in reps])),
        "repeats": reps,
        "spread": {
            k: spread([x[k] for x in reps]) for k in ("p50", "p90", "p99", "throughput_per_s")
        },
        "cdf": cdf_points(pooled),
    }
    return entry


def in_scenario(v: Variant, scenario: str) -> bool:
    """Whether a scenario measures this variant.

    The optimisation-level sweep runs in single-stream only, offline adds the reduced
    precisions, and the multi-stream sweep runs the fp32 settings: every sweep where it
    answers a question, without multiplying the run time by every combination.
    """
    if scenario == "single-stream":
        return True
    if v.backend == "ort" and v.optimization != "all":
        return False
    return scenario == "offline" or v.precision == "fp32"


def _variant_results(
    v: Variant,
    m: Manifest,
    data: BenchData,
    cfg: BenchConfig,
    workdir: Path,
    say: Progress,
    acc_cache: dict[tuple[Any, ...], dict[str, Any]],
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """All model-level entries of one variant, plus its multi-stream/offline summaries."""
    base = {"level": "model", "variant": v.to_dict(), "label": v.label}
    model_scenarios = [s for s in cfg.scenarios() if s != "end-to-end" and in_scenario(v, s)]
    if not model_scenarios:
        return [], {}
    try:
        be, notes = open_variant(v, m, data, workdir)
    except VariantUnavailable as e:
        say(f"  {v.label:<32} {e.status}: {e}")
        return [
            {**base, "scenario": s, "status": e.status, "reason": str(e)} for s in model_scenarios
        ], {}
    out: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    with be:
        # the thread count does not change the arithmetic: score each model once
        key = (v.backend, v.device, v.precision, v.quant, v.optimization)
        if not cfg.accuracy:
            acc = {"top1": None, "samples": 0, "reason": "not measured (--no-accuracy)"}
        elif key in acc_cache:
            acc = {**acc_cache[key], "shared_with": acc_cache[key].get("shared_with", v.label)}
        else:
            acc = acc_cache[key] = {**accuracy(be, data), "shared_with": v.label}
        common = {**base, "status": "ok", "reason": None, "notes": notes, "accuracy": acc}
        for sc in model_scenarios:
            if sc == "single-stream":
                e = _measure(be, data, cfg, scenario=sc)
                out.append({**common, "scenario": sc, "batch": 1, "streams": 1, **e})
                say(
                    f"  {v.label:<32} single-stream p50 {e['latency_ms']['p50']:.3f} ms"
                    f"  p90 {e['latency_ms']['p90']:.3f} ms"
                )
            elif sc == "offline":
                best = None
                for b in cfg.batch_sizes:
                    e = _measure(be, data, cfg, scenario=sc, batch=b)
                    out.append({**common, "scenario": sc, "batch": b, "streams": None, **e})
                    if best is None or e["throughput_per_s"] > best[1]:
                        best = (b, e["throughput_per_s"])
                summary["offline"] = {"best_batch": best[0], "throughput_per_s": best[1]}
                say(f"  {v.label:<32} offline best batch {best[0]}: {best[1]:.0f} samples/s")
            elif sc == "multi-stream":
                summary["multi-stream"] = _stream_search(be, data, cfg, common, out)
                say(
                    f"  {v.label:<32} multi-stream (model) max streams "
                    f"{summary['multi-stream']['max_streams']}"
                )
        if hasattr(be, "server_statistics"):  # a remote backend: the server's side too
            server = server_figures(be)
            for e in out:
                e["server"] = server
    return out, summary


def server_figures(be: Any) -> dict[str, Any]:
    """A remote backend's side of the run: the server's statistics (Triton's statistics API,
    totals since the model loaded) and the client's round trips."""
    from avfuse.bench.stats import latency_summary

    stats = be.server_statistics()["model_stats"][0]
    inf = stats.get("inference_stats", {})
    per = {}
    for phase in ("queue", "compute_input", "compute_infer", "compute_output", "success"):
        d = inf.get(phase, {})
        n = int(d.get("count", 0))
        per[phase] = round(int(d.get("ns", 0)) / n / 1e3, 1) if n else None
    return {
        "model": stats.get("name"),
        "inference_count": int(stats.get("inference_count", 0)),
        "execution_count": int(stats.get("execution_count", 0)),
        "server_mean_us": per,
        "client_round_trip_ms": latency_summary(list(be.request_ms)) if be.request_ms else None,
        "client_retries": be.retried,
    }


def _stream_search(
    be: Any, data: BenchData, cfg: BenchConfig, common: dict[str, Any], out: list[dict[str, Any]]
) -> dict[str, Any]:
    """Largest N whose batch-of-N p99 fits the bound and one frame period (no backlog)."""
    limit = min(cfg.latency_bound_ms, 1000.0 / cfg.fps)
    best, tried = 0, []
    for n in cfg.streams:
        e = _measure(be, data, cfg, scenario="multi-stream", streams=n)
        out.append({**common, "scenario": "multi-stream", "batch": n, "streams": n, **e})
        p99 = e["latency_ms"]["p99"]
        tried.append({"streams": n, "p99_ms": p99})
        if p99 > limit:
            break
        best = n
    return {
        "max_streams": best,
        "limit_ms": limit,
        "bound_ms": cfg.latency_bound_ms,
        "fps": cfg.fps,
        "tried": tried,
        "criterion": "p99 of one batch of N (one frame per stream) <= min(bound, 1/fps)",
    }


def add_ratios(results: list[dict[str, Any]]) -> None:
    """Add `speedup_vs_torch` to every ok model-level entry.

    The reference is torch eager on CPU at the same scenario, batch and thread count (the
    first torch thread count measured where that one was not), so ratios compare like
    with like from one run on one machine.
    """
    torch = {
        (r["scenario"], r.get("batch"), r["variant"]["threads"]): r
        for r in results
        if r["status"] == "ok"
        and r["variant"]["backend"] == "torch"
        and r["variant"]["device"] == "cpu"
        and r["level"] == "model"
    }
    for r in results:
        if r["status"] != "ok" or r["level"] != "model":
            continue
        key = (r["scenario"], r.get("batch"), r["variant"]["threads"])
        ref = torch.get(key) or next((t for k, t in torch.items() if k[:2] == key[:2]), None)
        if ref is None:
            r["speedup_vs_torch"] = None
            continue
        sp = {
            k: ref["latency_ms"][k] / r["latency_ms"][k]
            for k in ("p50", "p90", "p99")
            if r["latency_ms"][k]
        }
        sp["throughput"] = r["throughput_per_s"] / ref["throughput_per_s"]
        sp["torch_label"] = ref["label"]
        r["speedup_vs_torch"] = sp


def run_bench(config: BenchConfig, *, progress: Progress | None = None) -> dict[str, Any]:
    """Run every variant and scenario of `config`; returns the complete result record."""
    from avfuse.assets import default_model_path

    say = progress or (lambda s: None)
    t0, started = time.perf_counter(), _now()
    m = load_manifest(config.model or default_model_path())
    model_level = [s for s in config.scenarios() if s != "end-to-end"]
    results: list[dict[str, Any]] = []
    summaries: dict[str, dict[str, Any]] = {"multi-stream": {}, "offline": {}}
    acc_cache: dict[tuple[Any, ...], dict[str, Any]] = {}
    data_info: dict[str, Any] = {"source": None, "samples": 0, "reason": "no model-level scenario"}
    with tempfile.TemporaryDirectory() as tmp:
        if model_level:
            if config.data == "synthetic":
                data = synthetic_data(m, n=64, seed=config.seed, reason="--data synthetic")
            else:
                data = load_bench_data(m, limit=config.accuracy_limit, seed=config.seed)
            data_info = data.describe()
            say(
                f"model {m.name} ({m.model_path}); data {data.source}, {data.n} samples"
                + (f" ({data.reason})" if data.reason else "")
            )
        for v in config.variants() if model_level else []:
            rs, summ = _variant_results(v, m, data, config, Path(tmp), say, acc_cache)
            results += rs
            for k, s in summ.items():
                summaries[k][v.label] = s
    add_ratios(results)
    record: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "run": {
            "started_utc": started,
            "finished_utc": None,
            "duration_s": None,
            "command": " ".join(shlex.quote(a) for a in sys.argv),
        },
        "config": config.to_dict(),
        "machine": machine(),
        "versions": versions(),
        "model": {
            "name": m.name,
            "path": str(m.model_path),
            "sha256": m.sha256,
            "fusion": m.fusion,
            "inputs": [s.name for s in m.inputs],
        },
        "data": data_info,
        "results": results,
        "multi_stream": summaries["multi-stream"],
        "offline": summaries["offline"],
        "end_to_end": None,
    }
    if "end-to-end" in config.scenarios() or config.scenario == "multi-stream":
        from avfuse.bench import e2e

        record["end_to_end"] = e2e.run_e2e(config, m, say)
    record["run"]["finished_utc"] = _now()
    record["run"]["load_avg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    record["run"]["duration_s"] = round(time.perf_counter() - t0, 2)
    return record
