"""From per-frame logits to events: softmax, temporal smoothing, hysteresis.

`PostProcessor` is a streaming object in the house shape: ``push(decision) ->
list[event]``, ``push(None)`` flushes the open segment. One instance per stream.

Rules:
    * probabilities are the softmax of the logits, smoothed over frames by an
      exponential moving average (``ema``, weight `ema_alpha` on the newest
      frame) or a moving average of the last `mean_frames` frames (``mean``);
    * a segment opens when the top smoothed label is not the "none" label and its
      score reaches `on_threshold`; it stays open while its own score is at least
      `off_threshold` (hysteresis) and no other label reaches `on_threshold`;
    * a segment closes when its score falls below `off_threshold`, another label
      takes over, or the stream ends (flush). Segments shorter than
      `min_duration_s` are discarded; the "none" label never makes an event.

An event record (the public contract):
    start       stream time (s) of the frame that opened the segment
    end         stream time (s) of the frame that closed it (at a flush: the last frame)
    score       mean smoothed probability of the label over the segment's frames
    modalities  modalities present in any frame of the segment (mask order)
    degraded    True when any frame of the segment lacked a modality the model takes
    latency_ms  capture -> decision latency of the frame that closed the segment, i.e.
                how late after its capture the event became known; it is the figure
                a user waiting for the event experiences
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np


@dataclass(frozen=True, kw_only=True)
class PostprocessConfig:
    """Smoothing and hysteresis parameters.

    Attributes:
        smoothing: "ema", "mean" or "none".
        ema_alpha: weight of the newest frame in the EMA, in (0, 1].
        mean_frames: frames in the moving average.
        on_threshold: smoothed score that opens a segment.
        off_threshold: score below which an open segment closes (<= on_threshold).
        min_duration_s: shorter segments are not reported (a spoken digit stays in the
            1 s window for about a second, so 0.4 s removes blips, not words).
        none_label: the label that means "nothing there"; never an event.
    """

    smoothing: Literal["ema", "mean", "none"] = "ema"
    ema_alpha: float = 0.4
    mean_frames: int = 5
    on_threshold: float = 0.6
    off_threshold: float = 0.4
    min_duration_s: float = 0.4
    none_label: str = "none"

    def __post_init__(self) -> None:
        if self.smoothing not in ("ema", "mean", "none"):
            raise ValueError("smoothing must be 'ema', 'mean' or 'none'")
        if not 0 < self.ema_alpha <= 1:
            raise ValueError("ema_alpha must be in (0, 1]")
        if self.mean_frames < 1:
            raise ValueError("mean_frames must be >= 1")
        if not 0 <= self.off_threshold <= self.on_threshold <= 1:
            raise ValueError("need 0 <= off_threshold <= on_threshold <= 1")
        if self.min_duration_s < 0:
            raise ValueError("min_duration_s must be >= 0")


@dataclass(slots=True)
class Decision:
    """One model output for one frame (or audio window) of a stream.

    Attributes:
        stream_time_s: stream time of the frame (s since the source's first timestamp).
        logits: 1-D scores over the labels (not yet softmaxed).
        modalities: modalities present for this frame.
        degraded: True when a modality the model takes was missing.
        latency_ms: capture -> decision latency of this frame.
    """

    stream_time_s: float
    logits: np.ndarray
    modalities: tuple[str, ...]
    degraded: bool
    latency_ms: float


def softmax(logits: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Numerically stable softmax of a 1-D array into `out` (no allocation)."""
    np.subtract(logits, logits.max(), out=out)
    np.exp(out, out=out)
    out /= out.sum()
    return out


class PostProcessor:
    """Smoothing + hysteresis for one stream.

    Args:
        labels: the model's labels, in output order.
        config: thresholds and smoothing.
        stream: stream name added to events as "stream" (None: single-stream, no key).
        modality_order: order of `modalities` in events.
    """

    def __init__(
        self,
        *,
        labels: tuple[str, ...] | list[str],
        config: PostprocessConfig | None = None,
        stream: str | None = None,
        modality_order: tuple[str, ...] = ("audio", "video"),
    ) -> None:
        self.labels = tuple(labels)
        self.config = config or PostprocessConfig()
        self.stream = stream
        self._order = modality_order
        n = len(self.labels)
        self._none = (
            self.labels.index(self.config.none_label)
            if (self.config.none_label in self.labels)
            else -1
        )
        self._probs = np.zeros(n, np.float64)
        self._smooth = np.zeros(n, np.float64)
        self._hist = np.zeros((self.config.mean_frames, n), np.float64)
        self._reset()

    def _reset(self) -> None:
        self._frames = 0
        self._active = -1
        self._start = 0.0
        self._score_sum = 0.0
        self._seg_frames = 0
        self._seg_mods: set[str] = set()
        self._seg_degraded = False
        self._last_t = 0.0
        self._last_latency = 0.0
        self.top = -1
        self.top_score = 0.0

    # ------------------------------------------------------------------ state for overlays
    @property
    def current_label(self) -> str | None:
        """Label of the open segment, or None."""
        return self.labels[self._active] if self._active >= 0 else None

    @property
    def smoothed(self) -> np.ndarray:
        """The current smoothed probabilities (a view; do not keep it)."""
        return self._smooth

    # ------------------------------------------------------------------ streaming
    def push(self, decision: Decision | None) -> list[dict[str, Any]]:
        """Add one decision; returns the events it closed. `None` flushes the open segment."""
        if decision is None:
            out: list[dict[str, Any]] = []
            if self._active >= 0:
                ev = self._close(self._last_t)
                if ev is not None:
                    out.append(ev)
            self._reset()
            return out
        cfg = self.config
        softmax(np.asarray(decision.logits, dtype=np.float64), self._probs)
        if cfg.smoothing == "ema" and self._frames:
            self._smooth *= 1.0 - cfg.ema_alpha
            self._smooth += cfg.ema_alpha * self._probs
        elif cfg.smoothing == "mean":
            self._hist[self._frames % cfg.mean_frames] = self._probs
            k = min(self._frames + 1, cfg.mean_frames)
            np.mean(self._hist[:k], axis=0, out=self._smooth)
        else:
            self._smooth[:] = self._probs
        self._frames += 1
        t = decision.stream_time_s
        self._last_t = t
        self._last_latency = decision.latency_ms
        top = int(self._smooth.argmax())
        self.top = top
        self.top_score = float(self._smooth[top])
        events: list[dict[str, Any]] = []
        if self._active >= 0:
            s = float(self._smooth[self._active])
            takeover = (
                top != self._active and top != self._none and self.top_score >= (cfg.on_threshold)
            )
            if s < cfg.off_threshold or takeover:
                ev = self._close(t)
                if ev is not None:
                    events.append(ev)
            else:
                self._accumulate(s, decision)
        if self._active < 0 and top != self._none and self.top_score >= cfg.on_threshold:
            self._active = top
            self._start = t
            self._score_sum = 0.0
            self._seg_frames = 0
            self._seg_mods = set()
            self._seg_degraded = False
            self._accumulate(self.top_score, decision)
        return events

    def _accumulate(self, score: float, d: Decision) -> None:
        self._score_sum += score
        self._seg_frames += 1
        if d.modalities:
            self._seg_mods.update(d.modalities)
        self._seg_degraded = self._seg_degraded or d.degraded

    def _close(self, end: float) -> dict[str, Any] | None:
        label = self.labels[self._active]
        self._active = -1
        if end - self._start < self.config.min_duration_s or self._seg_frames == 0:
            return None
        ev: dict[str, Any] = {
            "type": "event",
            "label": label,
            "score": round(self._score_sum / self._seg_frames, 3),
            "start": round(self._start, 3),
            "end": round(end, 3),
            "modalities": [m for m in self._order if m in self._seg_mods],
            "degraded": self._seg_degraded,
            "latency_ms": round(self._last_latency, 1),
        }
        if self.stream is not None:
            ev["stream"] = self.stream
        return ev


__all__ = ["Decision", "PostProcessor", "PostprocessConfig", "softmax"]
