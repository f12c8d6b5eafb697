"""Soak analysis: sample the process, then judge whether a long run stayed healthy.

A box that runs for months dies of what grows a little per hour or per fault: memory,
file descriptors, threads, latency, frames quietly lost. `ProcessSampler` reads the
process's own figures (VmRSS, RssAnon and Threads from /proc/self/status, the open fds
in /proc/self/fd, Python's live threads, CPU time from `os.times`); `analyse` turns the
time series of a run and the faults injected into it into verdicts:

    rss      growth after the warm-up: median of the last few samples minus the median
             of the first few after it (goal < 5 MB), and the least-squares slope (MB/h)
    fds      the fewest open fds near the end equals the fewest right after the warm-up
             (a fault may open some for a while, and each sample is the floor of a few
             quick reads: minima ignore such transients, a leak of one per fault
             raises them)
    threads  the same for the threads (the kernel's count and Python's)
    p99      end-to-end p99 of the last third of the sample intervals outside faults
             over the first third (goal <= 1.2), from the pipeline's own histogram
    frames   per stream, frames lost outside the faults (expected at the stream's frame
             rate minus processed; goal <= 1 %), and per fault no more than it explains
    faults   every injected fault recovered

Samples are taken at a fixed period (times `t`, seconds from the start); frame counts
and latency come from the pipeline's stats ticks (times `tick_t`), the newest tick at
each sample. A fault's window runs from its injection until it recovered and the
latency settled (`t_window_end`); a tick interval overlapping it belongs to the fault.
Memory, fds and threads need no settled latency: they are judged from `settle_s` after
the recovery (a reconnected stream whose latency is still high holds its resources),
memory `rss_settle_s` later still where a fault says so (a reopened network stream's
receive buffer takes memory as it fills again).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

#: latency bounds (ms) the end-to-end histogram is read at: 5 % apart, 0.1 ms .. 10 s
LATENCY_BOUNDS_MS = tuple(round(0.1 * 1.05**k, 4) for k in range(237))


@dataclass(frozen=True, kw_only=True)
class SoakGoals:
    """What a healthy run stays within.

    Attributes:
        rss_growth_mb: largest RSS growth after the warm-up.
        p99_ratio: largest last-third / first-third end-to-end p99.
        loss_fraction: largest share of a stream's frames lost outside the faults.
        fault_slack_frames: frames a fault may lose per stream beyond what it explains.
        window_samples: samples at each end that the start and end figures come from.
    """

    rss_growth_mb: float = 5.0
    p99_ratio: float = 1.2
    loss_fraction: float = 0.01
    fault_slack_frames: int = 15
    window_samples: int = 5


class ProcessSampler:
    """Reads this process's memory, fds, threads and CPU time (Linux /proc).

    Args:
        reads: fds and threads are read this many times, `gap_s` apart, and the fewest
            kept: FFmpeg starts and ends threads around every frame it scales and the
            webhook opens a socket per request, so a single read often catches a few
            that live for a millisecond; the floor of a few reads does not.
        gap_s: time between those reads.
    """

    FIELDS = ("rss_mb", "anon_mb", "fds", "threads_os", "threads_py", "cpu_s")

    def __init__(self, *, reads: int = 10, gap_s: float = 0.01) -> None:
        self.reads, self.gap_s = reads, gap_s

    @staticmethod
    def _status() -> dict[str, int]:
        status: dict[str, int] = {}
        with open("/proc/self/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "RssAnon", "Threads"):
                    status[key] = int(value.split()[0])
        return status

    def sample(self) -> tuple[float, ...]:
        """(rss_mb, anon_mb, fds, threads_os, threads_py, cpu_s), in `FIELDS` order."""
        status = self._status()
        fds, threads, py = [], [], []
        for i in range(self.reads):
            if i:
                time.sleep(self.gap_s)
                status["Threads"] = self._status().get("Threads", 0)
            fds.append(len(os.listdir("/proc/self/fd")) - 1)  # less the one listdir holds
            threads.append(status.get("Threads", 0))
            py.append(threading.active_count())
        t = os.times()
        return (
            status.get("VmRSS", 0) / 1024,
            status.get("RssAnon", 0) / 1024,
            float(min(fds)),
            float(min(threads)),
            float(min(py)),
            t.user + t.system,
        )


def percentile(cumulative: np.ndarray, count: int, q: float) -> float | None:
    """The q-th percentile (ms) of latencies counted at `LATENCY_BOUNDS_MS`: the lowest bound
    holding q % of `count` (inf past the last bound; None without latencies)."""
    if count <= 0:
        return None
    k = int(np.searchsorted(cumulative, q / 100 * count, side="left"))
    return LATENCY_BOUNDS_MS[k] if k < len(LATENCY_BOUNDS_MS) else math.inf


def _slope_per_h(t: np.ndarray, y: np.ndarray) -> float | None:
    if len(t) < 3 or np.ptp(t) <= 0:
        return None
    return float(np.polyfit(t, y, 1)[0] * 3600)


def _spans(tick_t: np.ndarray, faults: Sequence[Mapping[str, Any]], t_end: float) -> list:
    """(first, last) tick indices around each fault's window (its intervals are first+1..last)."""
    out = []
    n = len(tick_t)
    for f in faults:
        a = f["t_inject"]
        b = f.get("t_window_end") or t_end
        i0 = max(0, int(np.searchsorted(tick_t, a, side="right")) - 1)
        i1 = min(n - 1, int(np.searchsorted(tick_t, b, side="left")))
        out.append((i0, i1))
    return out


def _flat(name: str, v: np.ndarray, keep: np.ndarray, k: int) -> dict[str, Any]:
    idx = np.flatnonzero(keep)
    if len(idx) < 2 * k:
        return {"pass": None, "reason": f"fewer than {2 * k} samples outside faults"}
    base, end = int(v[idx[:k]].min()), int(v[idx[-k:]].min())
    return {"pass": end <= base, f"baseline_{name}": base, f"end_{name}": end}


def analyse(
    series: Mapping[str, Sequence[float]],
    e2e_cumulative: np.ndarray,
    *,
    faults: Sequence[Mapping[str, Any]],
    streams: Sequence[Mapping[str, Any]],
    warmup_s: float,
    settle_s: float = 2.0,
    goals: SoakGoals | None = None,
) -> dict[str, Any]:
    """The verdicts of a run (see the module docstring).

    Args:
        series: per-sample columns: t, tick_t, e2e_count, `ProcessSampler.FIELDS` and
            "frames:NAME" per stream (all the same length, in time order).
        e2e_cumulative: per sample, the end-to-end latencies at or below each bound.
        faults: each {kind, t_inject, t_window_end (None: still open at the end),
            recovered, budget: {stream: frames it may lose}}.
        streams: each {name, fps}.
        warmup_s: samples before this are not judged.
        settle_s: memory, fds and threads are judged again this long after a fault
            recovered (latency and frames only after its whole window).
        goals: the bounds (default `SoakGoals()`).
    """
    g = goals or SoakGoals()
    col = {k: np.asarray(v, dtype=float) for k, v in series.items()}
    t, tick_t = col["t"], col["tick_t"]
    cum = np.asarray(e2e_cumulative, dtype=np.int64)
    spans = _spans(tick_t, faults, float(t[-1]) if len(t) else 0.0)
    in_fault = np.zeros(len(t), bool)  # a process sample taken before a fault recovered
    in_fault_rss = np.zeros(len(t), bool)  # ... or while its buffers fill again
    faulty = np.zeros(len(t), bool)  # the tick interval ending at j touches a fault window
    for f, (i0, i1) in zip(faults, spans, strict=True):
        rec = f.get("t_recovered")
        end = rec + settle_s if rec is not None else (f.get("t_window_end") or math.inf)
        in_fault |= (t >= f["t_inject"]) & (t <= end)
        in_fault_rss |= (t >= f["t_inject"]) & (t <= end + f.get("rss_settle_s", 0.0))
        faulty[i0 + 1 : i1 + 1] = True
    judged = t >= warmup_s
    calm = judged & ~in_fault
    k = g.window_samples
    out: dict[str, Any] = {}

    idx = np.flatnonzero(judged & ~in_fault_rss)
    if len(idx) >= 2 * k:
        base, end = (
            float(np.median(col["rss_mb"][idx[:k]])),
            float(np.median(col["rss_mb"][idx[-k:]])),
        )
        growth = end - base
        out["rss"] = {
            "pass": growth < g.rss_growth_mb,
            "baseline_mb": round(base, 2),
            "end_mb": round(end, 2),
            "growth_mb": round(growth, 2),
            "goal_mb": g.rss_growth_mb,
            "slope_mb_per_h": _round(_slope_per_h(t[judged], col["rss_mb"][judged])),
            "anon_growth_mb": round(
                float(np.median(col["anon_mb"][idx[-k:]]) - np.median(col["anon_mb"][idx[:k]])), 2
            ),
            "anon_slope_mb_per_h": _round(_slope_per_h(t[judged], col["anon_mb"][judged])),
        }
    else:
        out["rss"] = {"pass": None, "reason": f"fewer than {2 * k} samples outside faults"}
    out["fds"] = _flat("fds", col["fds"], calm, k)
    out["fds"]["max_during_faults"] = int(col["fds"][in_fault].max()) if in_fault.any() else None
    th_os, th_py = _flat("os", col["threads_os"], calm, k), _flat("py", col["threads_py"], calm, k)
    out["threads"] = {
        **th_os,
        **{key: v for key, v in th_py.items() if key != "pass"},
        "pass": None if th_os["pass"] is None else bool(th_os["pass"] and th_py["pass"]),
        "max_during_faults": int(col["threads_os"][in_fault].max()) if in_fault.any() else None,
    }
    out["p99"] = _p99(tick_t, cum, col["e2e_count"], faulty, warmup_s, g)
    out["frames"] = _frames(col, tick_t, faulty, spans, faults, streams, warmup_s, g)
    recovered = [bool(f.get("recovered")) for f in faults]
    kinds: dict[str, list[int]] = {}
    for f, ok in zip(faults, recovered, strict=True):
        kinds.setdefault(f["kind"], [0, 0])
        kinds[f["kind"]][0] += 1
        kinds[f["kind"]][1] += ok
    out["faults"] = {
        "pass": all(recovered) if faults else None,
        "injected": len(faults),
        "recovered": sum(recovered),
        "by_kind": {kind: {"injected": n, "recovered": r} for kind, (n, r) in kinds.items()},
    }
    out["goals"] = asdict(g)
    out["pass"] = all(v.get("pass") is True for key, v in out.items() if key != "goals")
    return out


def _round(v: float | None, nd: int = 3) -> float | None:
    return None if v is None else round(v, nd)


def _p99(
    tick_t: np.ndarray, cum: np.ndarray, count: np.ndarray, faulty: np.ndarray, warmup_s: float,
    g: SoakGoals,
) -> dict[str, Any]:  # fmt: skip
    """p50/p99 of the first, middle and last third of the intervals outside faults."""
    if len(tick_t) < 4:
        return {"pass": None, "reason": "too few samples"}
    d_cum = np.diff(cum, axis=0)
    d_n = np.diff(count)
    ok = np.flatnonzero((tick_t[:-1] >= warmup_s) & ~faulty[1:] & (d_n > 0))
    if len(ok) < 6:
        return {"pass": None, "reason": f"{len(ok)} intervals outside faults (6 needed)"}
    k = len(ok) // 3
    thirds = {}
    for name, sel in (("first", ok[:k]), ("middle", ok[k:-k]), ("last", ok[-k:])):
        c, m = d_cum[sel].sum(axis=0), int(d_n[sel].sum())
        thirds[name] = {
            "from_s": round(float(tick_t[sel[0]]), 1),
            "to_s": round(float(tick_t[sel[-1] + 1]), 1),
            "intervals": len(sel),
            "latencies": m,
            "p50_ms": percentile(c, m, 50),
            "p99_ms": percentile(c, m, 99),
        }
    first, last = thirds["first"]["p99_ms"], thirds["last"]["p99_ms"]
    ratio = last / first
    return {"pass": ratio <= g.p99_ratio, "ratio": round(ratio, 3), "goal_ratio": g.p99_ratio,
            **thirds}  # fmt: skip


def _frames(
    col: Mapping[str, np.ndarray], tick_t: np.ndarray, faulty: np.ndarray, spans: list,
    faults: Sequence[Mapping[str, Any]], streams: Sequence[Mapping[str, Any]], warmup_s: float,
    g: SoakGoals,
) -> dict[str, Any]:  # fmt: skip
    """Frames lost per stream outside faults, and within each fault against its budget."""
    dt = np.diff(tick_t)
    ok = (tick_t[:-1] >= warmup_s) & ~faulty[1:] & np.isfinite(dt)
    per: dict[str, Any] = {}
    passed = True
    for s in streams:
        name, fps = s["name"], float(s["fps"])
        frames = col[f"frames:{name}"]
        expected = float(fps * dt[ok].sum())
        processed = float(np.diff(frames)[ok].sum())
        loss = 1.0 - processed / expected if expected > 0 else None
        rows = []
        for f, (i0, i1) in zip(faults, spans, strict=True):
            if tick_t[i0] < warmup_s and f["t_inject"] < warmup_s:
                continue
            lost = fps * (tick_t[i1] - tick_t[i0]) - (frames[i1] - frames[i0])
            budget = float(f.get("budget", {}).get(name, 0.0)) + g.fault_slack_frames
            rows.append({"kind": f["kind"], "lost": round(float(lost)), "budget": round(budget),
                         "pass": bool(lost <= budget)})  # fmt: skip
        ok_stream = loss is not None and loss <= g.loss_fraction and all(r["pass"] for r in rows)
        passed = passed and ok_stream
        per[name] = {
            "pass": ok_stream,
            "fps": fps,
            "expected_outside_faults": round(expected),
            "processed_outside_faults": round(processed),
            "loss_fraction_outside_faults": _round(loss, 4),
            "faults": rows,
        }
    return {"pass": passed, "goal_loss_fraction": g.loss_fraction, "streams": per}


__all__ = ["LATENCY_BOUNDS_MS", "ProcessSampler", "SoakGoals", "analyse", "percentile"]
