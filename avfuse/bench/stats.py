"""Latency statistics: percentiles of one measurement and the spread over repeats."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

PERCENTILES = (50, 90, 99)


def latency_summary(ms: Sequence[float] | np.ndarray) -> dict[str, Any]:
    """count, mean, p50/p90/p99, max (ms) of a list of latencies; empty -> count 0."""
    a = np.asarray(ms, dtype=np.float64)
    if a.size == 0:
        return {"count": 0, "mean": None, "p50": None, "p90": None, "p99": None, "max": None}
    out: dict[str, Any] = {"count": int(a.size), "mean": float(a.mean())}
    for p in PERCENTILES:
        out[f"p{p}"] = float(np.percentile(a, p))
    out["max"] = float(a.max())
    return out


def spread(values: Sequence[float]) -> dict[str, Any]:
    """Median, min, max and relative spread ((max - min) / median) of repeat values."""
    v = [float(x) for x in values if x is not None]
    if not v:
        return {"n": 0, "median": None, "min": None, "max": None, "rel_spread": None}
    med = float(np.median(v))
    return {
        "n": len(v),
        "median": med,
        "min": min(v),
        "max": max(v),
        "rel_spread": (max(v) - min(v)) / med if med > 0 else 0.0,
    }


def cdf_points(ms: Sequence[float] | np.ndarray, n: int = 100) -> list[list[float]]:
    """Down-sampled empirical CDF [[latency_ms, fraction], ...] for plots (bounded size)."""
    a = np.sort(np.asarray(ms, dtype=np.float64))
    if a.size == 0:
        return []
    idx = np.unique(np.linspace(0, a.size - 1, min(n, a.size)).round().astype(int))
    return [[float(a[i]), float((i + 1) / a.size)] for i in idx]
