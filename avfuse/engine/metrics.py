"""Per-stage latency histograms and drop/overrun counters.

Latency is measured per stage from the capture timestamp of each frame (see
DESIGN "Measuring"). A histogram is a fixed array of log-spaced bins (2 %
relative width from 1 us to 100 s), so recording allocates nothing and the
percentiles it reports are accurate to about 1 %; the maximum is exact.

Stages (per frame, or per micro-batch where marked):
    capture_to_ring  capture (or arrival, for files) -> written to the ring; a
                     source played out by the pipeline's own thread (a file or a
                     synthetic scene in real time) lets a frame no model runs on in
                     with the next one a model does, so up to two frame periods here
                     (p50 about 33 ms at 30 fps with a model on every 3rd frame)
    align_wait       frame taken from the ring -> its audio window complete (or the
                     deadline); for files it also holds the time spent queued behind
                     earlier frames
    preprocess       log-mel + image kernels (per batch)
    inference        backend.infer (per batch)
    postprocess      softmax, smoothing, hysteresis (per batch)
    sink             sink calls (per batch)
    end_to_end       capture -> decision handed to the sinks
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

STAGES = (
    "capture_to_ring",
    "align_wait",
    "preprocess",
    "inference",
    "postprocess",
    "sink",
    "end_to_end",
)

_LO_MS = 1e-3
_HI_MS = 1e5
_STEP = 1.02
_LOG_STEP = math.log(_STEP)
_NBINS = int(math.ceil(math.log(_HI_MS / _LO_MS) / _LOG_STEP)) + 2


class LatencyHistogram:
    """Log-binned latency histogram in milliseconds; fixed memory."""

    def __init__(self) -> None:
        self._counts = np.zeros(_NBINS, np.int64)
        self.count = 0
        self.total_ms = 0.0
        self.max_ms = 0.0

    def record_ms(self, ms: float) -> None:
        """Add one latency (negative values, from clock noise, count as 0)."""
        if ms <= _LO_MS:
            b = 0
        else:
            b = min(_NBINS - 1, 1 + int(math.log(ms / _LO_MS) / _LOG_STEP))
        self._counts[b] += 1
        self.count += 1
        self.total_ms += max(ms, 0.0)
        if ms > self.max_ms:
            self.max_ms = ms

    def record_ns(self, ns: int) -> None:
        """Add one latency given in nanoseconds."""
        self.record_ms(ns / 1e6)

    def percentile(self, q: float) -> float:
        """The q-th percentile (0..100) in ms (0 when empty); geometric bin centre."""
        if self.count == 0:
            return 0.0
        rank = q / 100.0 * self.count
        acc = 0
        for b in range(_NBINS):
            c = int(self._counts[b])
            if c == 0:
                continue
            acc += c
            if acc >= rank:
                if b == 0:
                    return min(_LO_MS, self.max_ms)
                return min(_LO_MS * _STEP ** (b - 0.5), self.max_ms)
        return self.max_ms

    @property
    def mean_ms(self) -> float:
        """Mean latency in ms (0 when empty)."""
        return self.total_ms / self.count if self.count else 0.0

    def cumulative(self, bounds_ms: tuple[float, ...]) -> list[int]:
        """Counts of latencies at or below each bound (for Prometheus `le` buckets).

        A bin counts toward a bound when its upper edge is at or below it, so a count may
        lag by the one bin (2 %) that straddles the bound.
        """
        out = []
        csum = np.cumsum(self._counts)
        for b in bounds_ms:
            if b <= _LO_MS:
                k = 0
            else:
                k = min(_NBINS - 1, int(math.log(b / _LO_MS) / _LOG_STEP))
            out.append(int(csum[k]))
        return out

    def merge(self, other: LatencyHistogram) -> None:
        """Add another histogram's counts into this one."""
        self._counts += other._counts
        self.count += other.count
        self.total_ms += other.total_ms
        self.max_ms = max(self.max_ms, other.max_ms)

    def reset(self) -> None:
        """Forget everything (for interval statistics)."""
        self._counts[:] = 0
        self.count = 0
        self.total_ms = 0.0
        self.max_ms = 0.0

    def summary(self) -> dict[str, float | int]:
        """count, mean, p50, p90, p99, max (ms, rounded to 0.001)."""
        return {
            "count": self.count,
            "mean": round(self.mean_ms, 3),
            "p50": round(self.percentile(50), 3),
            "p90": round(self.percentile(90), 3),
            "p99": round(self.percentile(99), 3),
            "max": round(self.max_ms, 3),
        }


class Metrics:
    """Latency histograms per stage plus named counters (drops by reason, overruns...).

    Args:
        stages: stage names to keep histograms for.
    """

    def __init__(self, *, stages: Iterable[str] = STAGES) -> None:
        self.stages = tuple(stages)
        self.hist = {s: LatencyHistogram() for s in self.stages}
        self.counters: dict[str, int] = {}
        self.drops: dict[str, int] = {}

    def record(self, stage: str, ns: int) -> None:
        """Record a stage latency in ns."""
        self.hist[stage].record_ns(ns)

    def count(self, name: str, n: int = 1) -> None:
        """Add to a named counter."""
        self.counters[name] = self.counters.get(name, 0) + n

    def drop(self, reason: str, n: int = 1) -> None:
        """Count dropped items by reason ("queue_full", "deadline", "overwritten"...)."""
        self.drops[reason] = self.drops.get(reason, 0) + n

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: {"latency_ms": {stage: summary}, "drops": {...}, "counters": {...}}."""
        return {
            "latency_ms": {s: h.summary() for s, h in self.hist.items()},
            "drops": dict(self.drops),
            "counters": dict(self.counters),
        }

    def table(self) -> str:
        """A fixed-width text table of the stage latencies and counters, for exit."""
        lines = [f"{'stage':<16}{'count':>8}{'p50':>10}{'p90':>10}{'p99':>10}{'max':>10}  (ms)"]
        for s, h in self.hist.items():
            if h.count == 0:
                continue
            lines.append(
                f"{s:<16}{h.count:>8}{h.percentile(50):>10.2f}{h.percentile(90):>10.2f}"
                f"{h.percentile(99):>10.2f}{h.max_ms:>10.2f}"
            )
        if self.drops:
            lines.append("drops: " + ", ".join(f"{k}={v}" for k, v in sorted(self.drops.items())))
        if self.counters:
            lines.append(
                "counters: " + ", ".join(f"{k}={v}" for k, v in sorted(self.counters.items()))
            )
        return "\n".join(lines)


__all__ = ["STAGES", "LatencyHistogram", "Metrics"]
