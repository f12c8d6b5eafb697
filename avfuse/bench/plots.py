"""PNG plots of a result: latency CDF per backend, stage breakdown, streams vs p99, and
the time line of a soak run.

matplotlib is imported here only (the `bench` extra), with the Agg backend, so
plots work on headless machines and the rest of the harness needs no matplotlib.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from avfuse.errors import BackendUnavailable


def _plt() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise BackendUnavailable("plots need matplotlib: pip install 'avfuse[bench]'") from e
    return plt


def latency_cdf(record: dict[str, Any], path: Path) -> Path | None:
    """Single-stream latency CDF, one line per variant (log-scale latency axis)."""
    rows = [
        r for r in record["results"] if r["status"] == "ok" and r["scenario"] == "single-stream"
    ]
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for r in rows:
        xs = [p[0] for p in r["cdf"]]
        ys = [p[1] for p in r["cdf"]]
        ax.plot(xs, ys, label=r["label"], lw=1.4)
    ax.set_xscale("log")
    ax.set_xlabel("latency per query (ms, log scale)")
    ax.set_ylabel("fraction of queries")
    ax.set_title("Single-stream latency CDF, batch 1, model only")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def stage_breakdown(record: dict[str, Any], path: Path) -> Path | None:
    """Stacked p50 bars of the pipeline stages for each end-to-end run."""
    e2e = record.get("end_to_end") or {}
    runs = [r for r in e2e.get("runs", []) if r.get("stages_ms")]
    if not runs:
        return None
    plt = _plt()
    stages = list(runs[0]["stages_ms"])
    fig, ax = plt.subplots(figsize=(7, 4.2))
    labels = [f"{r['streams']} x {r['fps']:g} fps" for r in runs]
    bottom = [0.0] * len(runs)
    for s in stages:
        vals = [(r["stages_ms"].get(s) or {}).get("p50") or 0.0 for r in runs]
        ax.bar(labels, vals, bottom=bottom, label=s)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    e2e50 = [r["latency_ms"].get("p50") or 0.0 for r in runs]
    rest = [max(0.0, e - b) for e, b in zip(e2e50, bottom, strict=True)]
    ax.bar(
        labels,
        rest,
        bottom=bottom,
        color="none",
        edgecolor="grey",
        hatch="//",
        label="not in a stage (queueing, frame-to-audio wait)",
    )
    e2e99 = [r["latency_ms"].get("p99") or 0.0 for r in runs]
    ax.plot(labels, e2e50, "k_", ms=30, mew=2, ls="none", label="end-to-end p50")
    ax.plot(labels, e2e99, "kv", ls="none", label="end-to-end p99")
    ax.set_ylabel("p50 per stage (ms)")
    ax.set_title("End-to-end stage breakdown (from capture timestamp)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def streams_p99(record: dict[str, Any], path: Path) -> Path | None:
    """p99 latency against the number of streams, with the bound (e2e and model level)."""
    e2e = record.get("end_to_end") or {}
    ms = record.get("multi_stream") or {}
    if not e2e.get("search") and not ms:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    bound = e2e.get("bound_ms") or record["config"]["latency_bound_ms"]
    if e2e.get("search"):
        ax.plot(
            [t["streams"] for t in e2e["search"]],
            [t["p99_ms"] for t in e2e["search"]],
            "o-",
            lw=2,
            label="end-to-end (pipeline)",
        )
    for label, s in ms.items():
        ax.plot(
            [t["streams"] for t in s["tried"]],
            [t["p99_ms"] for t in s["tried"]],
            ".--",
            lw=1,
            label=f"model: {label}",
        )
    ax.axhline(bound, color="red", lw=1, ls=":", label=f"bound {bound:g} ms")
    ax.set_ylim(0, 3 * bound)  # points far past the bound are off the scale, not hidden
    if ms:
        period = 1000.0 / record["config"]["fps"]
        ax.axhline(period, color="grey", lw=1, ls=":", label=f"frame period {period:.1f} ms")
    ax.set_xlabel("concurrent streams")
    ax.set_ylabel("p99 latency (ms)")
    ax.set_title(
        f"Streams vs p99 at {record['config']['fps']:g} fps per stream "
        f"(y clipped at {3 * bound:g} ms)"
    )
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def soak_timeline(record: dict[str, Any], path: Path) -> Path:
    """A soak run over time: memory, fds and threads, latency, frame rate per stream;
    the warm-up and every fault's window shaded."""
    plt = _plt()
    s = record["series"]
    t = s["t"]
    fig, axes = plt.subplots(4, 1, figsize=(9, 9), sharex=True)
    mem, res, lat, fps = axes
    mem.plot(t, s["rss_mb"], label="VmRSS")
    mem.plot(t, s["anon_mb"], label="RssAnon")
    mem.set_ylabel("MB")
    res.plot(t, s["fds"], label="open fds")
    res.plot(t, s["threads_os"], label="threads (kernel)")
    res.plot(t, s["threads_py"], label="threads (Python)")
    res.set_ylabel("count")
    lat.plot(t, s["p99_ms"], label="p99 per interval")
    lat.plot(t, s["p50_ms"], label="p50 per interval")
    lat.set_yscale("log")
    lat.set_ylabel("end-to-end ms")
    tick = s["tick_t"]
    for st in record["streams"]:
        f = s[f"frames:{st['name']}"]
        rate = [None] + [
            (f[i] - f[i - 1]) / (tick[i] - tick[i - 1]) if tick[i] > tick[i - 1] else None
            for i in range(1, len(f))
        ]
        fps.plot(tick, rate, label=st["name"], lw=1)
    fps.set_ylabel("frames / s")
    fps.set_xlabel("seconds since the sources started")
    warm = record["config"]["warmup_s"]
    end = t[-1] if t else 0
    for ax in axes:
        ax.axvspan(0, warm, color="grey", alpha=0.15)
        for fault in record["faults"]:
            ax.axvspan(fault["t_inject"], fault["t_window_end"] or end, color="tab:red",
                       alpha=0.12 if fault["recovered"] else 0.35)  # fmt: skip
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="upper right")
    verdict = "pass" if record["verdicts"]["pass"] else "FAIL"
    mem.set_title(
        f"Soak: {record['config']['seconds']:g} s, {len(record['faults'])} faults "
        f"(red: fault windows, grey: warm-up), verdict {verdict}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_plots(record: dict[str, Any], stem: Path) -> list[Path]:
    """All plots that have data, as `<stem>-<kind>.png`; returns the files written."""
    out = []
    for kind, fn in (("cdf", latency_cdf), ("stages", stage_breakdown), ("streams", streams_p99)):
        p = fn(record, stem.with_name(f"{stem.name}-{kind}.png"))
        if p is not None:
            out.append(p)
    return out
