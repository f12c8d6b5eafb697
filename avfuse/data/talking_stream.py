"""Deliver a talking-mouth scene to a sync monitor as a device pair would, with known lag.

`offset_track` makes the device's audio: late by an offset (which may change at given
times, as when a device's latency changes mid-run) and drifting by some ppm; `true_lag`
says at each stream time how much later the audio carries what the picture shows.
`feed` pushes frames and audio blocks in the order they would arrive (a block once its
last sample is captured) and polls the monitor after each, collecting what it says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True, kw_only=True)
class OffsetPlan:
    """The audio's lateness over the run.

    Attributes:
        offset_ms: lateness at the start (positive: audio late).
        drift_ppm: the device clock's error; the lateness grows by this many us a second.
        steps: (stream time s, change ms) pairs: the lateness changes by that much then.
    """

    offset_ms: float = 0.0
    drift_ppm: float = 0.0
    steps: tuple[tuple[float, float], ...] = ()

    def offset_at(self, t: np.ndarray | float) -> np.ndarray:
        """The stepped offset (ms, no drift) at stream times `t`."""
        t = np.asarray(t, np.float64)
        out = np.full(t.shape, self.offset_ms)
        for ts, d in self.steps:
            out = out + np.where(t >= ts, d, 0.0)
        return out

    def true_lag_ms(self, t: np.ndarray | float) -> np.ndarray:
        """How much later than a frame shown at `t` its sound is in the audio (ms)."""
        return self.offset_at(t) + np.asarray(t) * self.drift_ppm * 1e-3


def offset_track(audio: np.ndarray, rate: int, plan: OffsetPlan) -> np.ndarray:
    """The audio as the device delivers it under `plan`, sample j at stream time j / rate."""
    n = len(audio)
    tau = np.arange(n) / rate
    # sample at stream time tau holds scene time t with t + lag(t) = tau; lag changes
    # slowly (drift) or in steps, so one fixed-point pass from t = tau is exact for the
    # steps away from their edges and within nanoseconds for the drift
    t = tau - plan.true_lag_ms(tau) / 1e3
    t = tau - plan.true_lag_ms(t) / 1e3
    out = np.interp(t * rate, np.arange(n), audio, left=0.0, right=0.0)
    return out.astype(np.float32)


@dataclass
class FeedResult:
    """What a monitor said during `feed`: per evaluation (time, estimate) and warnings."""

    evaluations: list[Any] = field(default_factory=list)
    warnings: list[Any] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    applied_ms: list[tuple[float, float]] = field(default_factory=list)


def feed(
    monitor: Any,
    frames: np.ndarray,
    fps: float,
    audio: np.ndarray,
    rate: int,
    *,
    block_s: float = 0.02,
) -> FeedResult:
    """Push the scene through `monitor` (push_video / push_audio / poll) in arrival order."""
    res = FeedResult()
    block = max(1, int(round(block_s * rate)))
    n_blocks = len(audio) // block
    na = nv = 0
    seen = 0
    while na < n_blocks or nv < len(frames):
        ta = (na + 1) * block / rate if na < n_blocks else np.inf
        tv = nv / fps if nv < len(frames) else np.inf
        if ta <= tv:
            chunk = audio[na * block : (na + 1) * block]
            monitor.push_audio(((na + 1) * block - 1) / rate, chunk)
            na += 1
        else:
            monitor.push_video(tv, frames[nv])
            nv += 1
        res.warnings.extend(monitor.poll())
        if monitor.evaluations != seen:
            seen = monitor.evaluations
            res.evaluations.append(monitor.last)
            res.statuses.append(monitor.status)
            res.applied_ms.append((monitor.last.stream_time, monitor.applied_offset_ms))
    return res


__all__ = ["FeedResult", "OffsetPlan", "feed", "offset_track"]
