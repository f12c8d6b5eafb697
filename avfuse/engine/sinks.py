"""Sinks: where records (events, warnings, faults, summary) and annotated frames go.

A sink receives JSON-ready dicts with a "type" ("event", "warning", "fault",
"summary", ...), optionally every processed frame with its overlay, and a stats
dict about once a second. Sinks run on the pipeline's worker thread, after
inference; a slow sink shows up in the "sink" latency stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, kw_only=True)
class FrameOverlay:
    """What an annotated-video or window sink draws on a frame."""

    stream_time_s: float
    label: str | None  # current top label after smoothing, None when below threshold
    score: float
    audio_level_dbfs: float
    modalities: tuple[str, ...]
    degraded: bool


class Sink:
    """Base sink: every hook is optional; override what the sink needs."""

    #: True when the sink wants `on_frame` calls (they cost a frame copy/draw)
    wants_frames: bool = False

    def on_record(self, record: dict[str, Any]) -> None:
        """An event, warning, fault or summary record."""

    def on_frame(self, frame: np.ndarray, overlay: FrameOverlay) -> None:
        """A processed frame (bgr24) with its overlay; only when `wants_frames`."""

    def on_stats(self, stats: dict[str, Any]) -> None:
        """Live statistics, about once a second: fps, latency p50/p99 (ms), drops."""

    def close(self) -> None:
        """Flush and release; called once at the end of the run, also after Ctrl-C."""
