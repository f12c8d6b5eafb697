"""Result files: JSON per run (named by machine and date), validation, the Markdown table.

Schema (``format: "avfuse-bench"``, ``version: 1``), top level:
    run        started/finished (UTC), duration, the command line
    config     every BenchConfig setting
    machine    host, CPU, cores, memory, GPUs, load, git commit
    versions   python and the packages that decide the numbers
    model      name, path, sha256, fusion, inputs
    data       where inputs came from (AV-digits test split or synthetic + why)
    results    one entry per (variant, scenario, batch/streams): status ok/skipped/failed
               (+ reason), warmup, loadgen_settings (the expected latency, minimum
               query count and duration LoadGen was given), latency_ms {count, mean,
               p50, p90, p99, max},
               throughput_per_s, repeats (per-repeat figures + LoadGen's summary),
               spread (median/min/max/rel_spread over repeats), cdf, accuracy,
               speedup_vs_torch
    multi_stream  per variant: largest stream count under the bound (model level)
    offline       per variant: best batch size and its throughput
    end_to_end    the streaming-pipeline scenario, or null when the run did not ask for it
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from avfuse.bench.env import machine_slug
from avfuse.errors import UsageError

TOP_KEYS = (
    "format",
    "version",
    "run",
    "config",
    "machine",
    "versions",
    "model",
    "data",
    "results",
    "multi_stream",
    "offline",
    "end_to_end",
)
OK_KEYS = (
    "scenario",
    "level",
    "label",
    "variant",
    "status",
    "warmup",
    "latency_ms",
    "throughput_per_s",
    "repeats",
    "spread",
    "accuracy",
)
LAT_KEYS = ("count", "mean", "p50", "p90", "p99", "max")


def validate(record: Any) -> list[str]:
    """Problems that make a result file incomplete (empty list: valid and complete)."""
    if not isinstance(record, dict):
        return ["not a JSON object"]
    problems = [f"missing top-level key {k!r}" for k in TOP_KEYS if k not in record]
    if record.get("format") != "avfuse-bench":
        problems.append("format is not 'avfuse-bench'")
    results = record.get("results")
    e2e = record.get("end_to_end") or {}
    if not isinstance(results, list):
        return [*problems, "results must be a list"]
    if not results:
        if e2e.get("status") == "ok" and e2e.get("runs"):
            return problems
        return [*problems, "results is empty and there is no end-to-end run"]
    for i, r in enumerate(results):
        status = r.get("status")
        if status not in ("ok", "skipped", "failed"):
            problems.append(f"results[{i}].status must be ok, skipped or failed")
        elif status != "ok":
            if not r.get("reason"):
                problems.append(f"results[{i}] is {status} without a reason")
            continue
        problems += [f"results[{i}] lacks {k!r}" for k in OK_KEYS if k not in r]
        lat = r.get("latency_ms", {})
        problems += [f"results[{i}].latency_ms lacks {k!r}" for k in LAT_KEYS if k not in lat]
        if lat.get("count", 0) < 1:
            problems.append(f"results[{i}] measured no queries")
    if not any(r.get("status") == "ok" for r in results):
        problems.append("no result has status ok")
    return problems


def result_path(record: dict[str, Any], out_dir: str | Path) -> Path:
    """`<out_dir>/<machine>-<YYYYmmdd-HHMMSS>-<scenario>.json` (UTC)."""
    started = record["run"].get("started_utc") or dt.datetime.now(dt.timezone.utc).isoformat()
    stamp = dt.datetime.fromisoformat(started).strftime("%Y%m%d-%H%M%S")
    scenario = record["config"].get("scenario", "run")
    return Path(out_dir) / f"{machine_slug(record['machine'])}-{stamp}-{scenario}.json"


def write_result(record: dict[str, Any], out_dir: str | Path) -> Path:
    """Validate and write the record as JSON; returns its path."""
    problems = validate(record)
    if problems:
        raise UsageError(f"refusing to write an incomplete result: {problems[0]}")
    path = result_path(record, out_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_rounded(record), indent=1, default=_json_default) + "\n")
    return path


def load_result(path: str | Path) -> dict[str, Any]:
    """Read and validate a result file; UsageError naming the first problem."""
    p = Path(path)
    try:
        record = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UsageError(
            f"cannot read result {p}: {e}; pass a JSON file from `avfuse bench`"
        ) from e
    problems = validate(record)
    if problems:
        raise UsageError(f"result {p} is incomplete ({problems[0]}); re-run `avfuse bench`")
    return record


def _rounded(o: Any) -> Any:
    """Floats to 6 significant digits (latencies to < 1 us): smaller files, same figures."""
    if isinstance(o, float):
        return float(f"{o:.6g}")
    if isinstance(o, dict):
        return {k: _rounded(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_rounded(v) for v in o]
    return o


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


def _f(x: Any, nd: int = 3) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def _acc(r: dict[str, Any]) -> str:
    top1 = (r.get("accuracy") or {}).get("top1")
    return "n/a" if top1 is None else f"{100 * top1:.1f}%"


def summary_table(record: dict[str, Any]) -> str:
    """The Markdown summary: one table per scenario, plus the machine and skipped variants."""
    m, v = record["machine"], record["versions"]
    lines = [
        f"Machine: {m.get('cpu')}, {m.get('cores_usable') or m.get('cores')} cores"
        + (f", GPUs: {', '.join(m['gpus'])}" if m.get("gpus") else ", no GPU")
        + (f", load average {m['load_avg'][0]:.1f} at start" if m.get("load_avg") else "")
        + f"; onnxruntime {v.get('onnxruntime')}, torch {v.get('torch')}; "
        f"run {record['run']['started_utc']}; data {record['data']['source'] or 'not used'}.",
        "",
    ]
    res = record["results"]
    ok = [r for r in res if r["status"] == "ok"]
    ss = [r for r in ok if r["scenario"] == "single-stream"]
    head = headline(record)
    if head:
        lines += [head, ""]
    if ss:
        lines += [
            "Single-stream, batch 1, model only (latency in ms; speed-up vs torch eager at p90):",
            "",
            "| variant | p50 | p90 | p99 | max | queries | spread p90 | speed-up | accuracy |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in ss:
            la, sp = r["latency_ms"], (r.get("speedup_vs_torch") or {})
            noise = 100 * (r["spread"]["p90"]["rel_spread"] or 0)
            lines.append(
                f"| {r['label']} | {_f(la['p50'])} | {_f(la['p90'])} | {_f(la['p99'])} | "
                f"{_f(la['max'])} | {la['count']} | {noise:.0f}% | "
                f"{_f(sp.get('p90'), 2) + 'x' if sp.get('p90') else '-'} | {_acc(r)} |"
            )
        lines.append("")
    off = record.get("offline") or {}
    if off:
        lines += [
            "Offline (throughput at the best batch size):",
            "",
            "| variant | best batch | samples/s | speed-up | accuracy |",
            "|---|---:|---:|---:|---:|",
        ]
        for label, s in off.items():
            r = next(
                x
                for x in ok
                if x["label"] == label
                and x["scenario"] == "offline"
                and x["batch"] == s["best_batch"]
            )
            sp = (r.get("speedup_vs_torch") or {}).get("throughput")
            lines.append(
                f"| {label} | {s['best_batch']} | {s['throughput_per_s']:.0f} | "
                f"{_f(sp, 2) + 'x' if sp else '-'} | {_acc(r)} |"
            )
        lines.append("")
    ms = record.get("multi_stream") or {}
    if ms:
        first = next(iter(ms.values()))
        lines += [
            f"Multi-stream, model level ({first['fps']:g} fps per stream; p99 of one batch "
            f"<= {first['limit_ms']:.1f} ms):",
            "",
            "| variant | max streams | p99 at each N (ms) |",
            "|---|---:|---|",
        ]
        for label, s in ms.items():
            tried = ", ".join(f"{t['streams']}: {t['p99_ms']:.2f}" for t in s["tried"])
            lines.append(f"| {label} | {s['max_streams']} | {tried} |")
        lines.append("")
    e2e = record.get("end_to_end")
    if e2e:
        lines += e2e_lines(e2e)
    skipped = [r for r in res if r["status"] != "ok"]
    seen: set[str] = set()
    for r in skipped:
        if r["label"] not in seen:
            seen.add(r["label"])
            lines.append(f"- {r['label']}: {r['status']} ({r['reason']})")
    return "\n".join(lines).rstrip() + "\n"


def headline(record: dict[str, Any]) -> str | None:
    """One line: ONNX Runtime CPU against torch eager at batch 1, or None without both.

    Uses the fastest fp32 optimisation level at the lowest thread count measured (the
    setting least disturbed by other work sharing the machine).
    """
    rows = [
        r
        for r in record["results"]
        if r["status"] == "ok"
        and r["scenario"] == "single-stream"
        and r["variant"]["backend"] == "ort"
        and r["variant"]["device"] == "cpu"
        and r["variant"]["precision"] == "fp32"
        and (r.get("speedup_vs_torch") or {}).get("p90")
    ]
    if not rows:
        return None
    low = min(r["variant"]["threads"] for r in rows)
    r = max(
        (r for r in rows if r["variant"]["threads"] == low),
        key=lambda r: r["speedup_vs_torch"]["p90"],
    )
    sp = r["speedup_vs_torch"]
    return (
        f"**ONNX Runtime CPU vs torch eager, batch 1:** {r['label']} is {sp['p50']:.2f}x "
        f"(p50) / {sp['p90']:.2f}x (p90) faster than {sp['torch_label']}, same run."
    )


def e2e_lines(e2e: dict[str, Any]) -> list[str]:
    """Markdown lines for the end-to-end block."""
    if e2e.get("status") != "ok":
        return [f"End-to-end: {e2e.get('status')} ({e2e.get('reason')})", ""]
    out = [
        "End-to-end (synthetic source through the pipeline; ms from capture timestamp):",
        "",
        "| streams | fps | p50 | p90 | p99 | max | frames | dropped | inference p99 "
        "| overhead p99 |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in e2e.get("runs", []):
        la = r["latency_ms"]
        out.append(
            f"| {r['streams']} | {r['fps']:g} | {_f(la['p50'], 2)} | {_f(la['p90'], 2)} | "
            f"{_f(la['p99'], 2)} | {_f(la['max'], 2)} | {la['count']} | "
            f"{100 * r.get('drop_fraction', 0):.1f}% | "
            f"{_f(r.get('inference_p99_ms'), 2)} | {_f(r.get('overhead_p99_ms'), 2)} |"
        )
    c = e2e.get("check")
    if c:
        out += [
            "",
            f"Single stream: end-to-end p99 {c['e2e_p99_ms']:.2f} ms vs model-only p99 "
            f"{c['model_p99_ms']:.2f} ms + algorithmic wait p99 {c['algorithmic_wait_p99_ms']:.2f}"
            f" ms = {c['expected_ms']:.2f} ms (difference {c['diff_ms']:+.2f} ms; "
            f"{'within' if c['within_2ms'] else 'NOT within'} 2 ms).",
        ]
    if e2e.get("max_streams") is not None:
        out += [
            "",
            f"Largest stream count with p99 <= {e2e['bound_ms']:g} ms: **{e2e['max_streams']}**",
        ]
    return [*out, ""]
