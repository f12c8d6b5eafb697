"""From per-frame model outputs to onsets and events: smoothing, hysteresis.

`PostProcessor` is a streaming object in the house shape: ``push(decision) ->
list[record]``, ``push(None)`` flushes the open segment. One instance per stream.

Rules:
    * probabilities come from the model's driving output by its kind: the softmax of
      `logits`, `probabilities` as they are, a `score` as one label's probability
      (`sigmoid` outputs get one single-label processor per label, see
      `MultiLabelPostProcessor`); they are smoothed over frames by an
      exponential moving average (``ema``, weight `ema_alpha` on the newest
      frame) or a moving average of the last `mean_frames` frames (``mean``);
    * a segment opens when the top smoothed label is not the "none" label and its
      score reaches `on_threshold`; it stays open while its own score is at least
      `off_threshold` (hysteresis) and no other label reaches `on_threshold`;
    * a segment closes when its score falls below `off_threshold`, another label
      takes over, or the stream ends (flush). Segments shorter than
      `min_duration_s` are discarded; the "none" label never makes an event;
    * an `Onset` record is returned the moment an open segment has lasted
      `min_duration_s` (so an onset is never withdrawn), the `Event` when it closes;
      both carry the segment's `event_id`.

An event record (the public contract; `avfuse.engine.records.Event`):
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

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from avfuse.engine.records import Event, Onset, Record
from avfuse.errors import UsageError

_EPS_S = 1e-6  # stream times are sums of frame periods: compare durations with slack


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
        none_label: the label that means "nothing there"; never an event (None: none).
        thresholds: per-label (on, off) overriding on_threshold/off_threshold.
    """

    smoothing: Literal["ema", "mean", "none"] = "ema"
    ema_alpha: float = 0.4
    mean_frames: int = 5
    on_threshold: float = 0.6
    off_threshold: float = 0.4
    min_duration_s: float = 0.4
    none_label: str | None = "none"
    thresholds: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.smoothing not in ("ema", "mean", "none"):
            raise UsageError("smoothing must be 'ema', 'mean' or 'none'")
        if not 0 < self.ema_alpha <= 1:
            raise UsageError("ema_alpha must be in (0, 1]")
        if self.mean_frames < 1:
            raise UsageError("mean_frames must be >= 1")
        if not 0 <= self.off_threshold <= self.on_threshold <= 1:
            raise UsageError("need 0 <= off_threshold <= on_threshold <= 1")
        if not 0 <= self.min_duration_s < float("inf"):
            raise UsageError("min_duration_s must be >= 0 and finite")
        for label, (on, off) in self.thresholds.items():
            if not 0 <= off <= on <= 1:
                raise UsageError(f"threshold of {label!r}: need 0 <= off <= on <= 1")

    def on_off(self, label: str) -> tuple[float, float]:
        """The (on, off) thresholds of one label."""
        return self.thresholds.get(label, (self.on_threshold, self.off_threshold))


@dataclass(slots=True)
class Decision:
    """One model output for one frame (or audio window) of a stream.

    Attributes:
        stream_time_s: stream time of the frame (s since the source's first timestamp).
        scores: 1-D scores over the labels, of the processor's `kind`.
        modalities: modalities present for this frame.
        degraded: True when a modality the model takes was missing.
        latency_ms: capture -> decision latency of this frame.
    """

    stream_time_s: float
    scores: np.ndarray
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
        stream: stream id of the records.
        model: model id of the records.
        modality_order: order of `modalities` in records.
        kind: what `Decision.scores` are: "logits" (softmax applied), "probabilities"
            or "score" (one label's probability).
    """

    def __init__(
        self,
        *,
        labels: tuple[str, ...] | list[str],
        config: PostprocessConfig | None = None,
        stream: str | None = None,
        model: str | None = None,
        modality_order: tuple[str, ...] = ("audio", "video"),
        kind: str = "logits",
    ) -> None:
        if kind not in ("logits", "probabilities", "score"):
            raise UsageError(f"unknown score kind {kind!r}")
        self.kind = kind
        self.labels = tuple(labels)
        self.config = config or PostprocessConfig()
        self.stream = stream
        self.model = model
        self._order = modality_order
        self._event_id = 0
        n = len(self.labels)
        self._on = np.array([self.config.on_off(x)[0] for x in self.labels])
        self._off = np.array([self.config.on_off(x)[1] for x in self.labels])
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
        self._onset_sent = False
        self._last_t = 0.0
        self._last_latency = 0.0
        self.top = -1
        self.top_score = 0.0

    def reconfigure(self, config: PostprocessConfig) -> None:
        """New thresholds / smoothing from the next decision on; an open segment stays open
        (it closes by the new off-threshold)."""
        self.config = config
        self._on[:] = [config.on_off(x)[0] for x in self.labels]
        self._off[:] = [config.on_off(x)[1] for x in self.labels]
        if self._hist.shape[0] != config.mean_frames:
            self._hist = np.zeros((config.mean_frames, len(self.labels)), np.float64)

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
    def push(self, decision: Decision | None) -> list[Record]:
        """Add one decision; returns the onsets it confirmed and the events it closed.

        `None` flushes the open segment (its event, if long enough, is returned).
        """
        if decision is None:
            out: list[Record] = []
            if self._active >= 0:
                out.extend(self._close(self._last_t))
            self._reset()
            return out
        cfg = self.config
        if self.kind == "logits":
            softmax(np.asarray(decision.scores, dtype=np.float64), self._probs)
        else:
            np.copyto(self._probs, decision.scores, casting="unsafe")
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
        events: list[Record] = []
        if self._active >= 0:
            s = float(self._smooth[self._active])
            takeover = top != self._active and top != self._none and self.top_score >= self._on[top]
            if s < self._off[self._active] or takeover:
                events.extend(self._close(t))
            else:
                self._accumulate(s, decision)
        if self._active < 0 and top != self._none and self.top_score >= self._on[top]:
            self._active = top
            self._start = t
            self._score_sum = 0.0
            self._seg_frames = 0
            self._seg_mods = set()
            self._seg_degraded = False
            self._onset_sent = False
            self._event_id += 1
            self._accumulate(self.top_score, decision)
        if (
            self._active >= 0
            and not self._onset_sent
            and t - self._start >= self.config.min_duration_s - _EPS_S
        ):
            self._onset_sent = True
            events.append(self._onset(t))
        return events

    def _onset(self, t: float) -> Onset:
        return Onset(
            event_id=self._event_id,
            label=self.labels[self._active],
            score=round(self._score_sum / max(self._seg_frames, 1), 3),
            start=round(self._start, 3),
            modalities=tuple(m for m in self._order if m in self._seg_mods),
            degraded=self._seg_degraded,
            latency_ms=round(self._last_latency, 1),
            stream=self.stream,
            model=self.model,
            stream_time=round(t, 3),
        )

    def _accumulate(self, score: float, d: Decision) -> None:
        self._score_sum += score
        self._seg_frames += 1
        if d.modalities:
            self._seg_mods.update(d.modalities)
        self._seg_degraded = self._seg_degraded or d.degraded

    def _close(self, end: float) -> list[Record]:
        """The open segment's records: its event, preceded by its onset if not yet sent."""
        if end - self._start < self.config.min_duration_s - _EPS_S or self._seg_frames == 0:
            self._active = -1
            return []
        out: list[Record] = [] if self._onset_sent else [self._onset(end)]
        label = self.labels[self._active]
        self._active = -1
        out.append(
            Event(
                event_id=self._event_id,
                label=label,
                score=round(self._score_sum / self._seg_frames, 3),
                start=round(self._start, 3),
                end=round(end, 3),
                modalities=tuple(m for m in self._order if m in self._seg_mods),
                degraded=self._seg_degraded,
                latency_ms=round(self._last_latency, 1),
                stream=self.stream,
                model=self.model,
                stream_time=round(end, 3),
            )
        )
        return out


class MultiLabelPostProcessor:
    """Independent decisions per label (a `sigmoid` output): one single-label processor
    each, so two labels can be on at once. Same streaming shape as `PostProcessor`."""

    def __init__(
        self,
        *,
        labels: tuple[str, ...] | list[str],
        config: PostprocessConfig | None = None,
        stream: str | None = None,
        model: str | None = None,
    ) -> None:
        cfg = config or PostprocessConfig()
        self.labels = tuple(labels)
        self._one = np.zeros(1, np.float64)
        self._procs = [
            PostProcessor(labels=(lab,), config=cfg, stream=stream, model=model, kind="score")
            for lab in self.labels
            if lab != cfg.none_label
        ]
        self._cols = [i for i, lab in enumerate(self.labels) if lab != cfg.none_label]

    def reconfigure(self, config: PostprocessConfig) -> None:
        """New thresholds for every label (see `PostProcessor.reconfigure`)."""
        for proc in self._procs:
            proc.reconfigure(config)

    def push(self, decision: Decision | None) -> list[Record]:
        out: list[Record] = []
        for col, proc in zip(self._cols, self._procs, strict=True):
            if decision is None:
                out.extend(proc.push(None))
                continue
            self._one[0] = decision.scores[col]
            d = Decision(
                stream_time_s=decision.stream_time_s,
                scores=self._one,
                modalities=decision.modalities,
                degraded=decision.degraded,
                latency_ms=decision.latency_ms,
            )
            out.extend(proc.push(d))
        return out

    @property
    def current_label(self) -> str | None:
        """The labels on now, joined with "+" (None when none)."""
        on = [p.current_label for p in self._procs if p.current_label]
        return "+".join(x for x in on if x) or None

    @property
    def top_score(self) -> float:
        return max((p.top_score for p in self._procs), default=0.0)


__all__ = ["Decision", "MultiLabelPostProcessor", "PostProcessor", "PostprocessConfig", "softmax"]
