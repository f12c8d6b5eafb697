"""`PipelineConfig`: everything the pipeline's behaviour depends on, validated once."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Literal

from avfuse.engine.postprocess import PostprocessConfig
from avfuse.errors import UsageError

Mode = Literal["auto", "fused", "audio", "video"]

#: largest |A/V offset| and audio deadline the pipeline accepts (ring memory grows with them)
MAX_OFFSET_MS = 10_000.0


@dataclass(frozen=True, kw_only=True)
class PipelineConfig:
    """Everything the pipeline's behaviour depends on; validated once.

    Attributes:
        av_offset_ms: how much later the audio arrives than the video it belongs with
            (positive: audio late); |offset| <= 10 s.
        audio_deadline_ms: longest wait for late audio after a frame (live streams),
            0..10 s.
        realtime: play non-live sources at their own pace (otherwise as fast as possible).
        mode: "auto" (from the model's and the streams' modalities), "fused"
            (video-driven with audio), "video" (video-driven, no audio), "audio"
            (audio-driven, one window every `step_ms`).
        step_ms: window step of audio-driven streams.
        min_audio_coverage: fraction of a window that must be valid for audio to count.
        postprocess: smoothing and hysteresis for every model (None: each model's
            manifest decision block).
        max_batch: largest micro-batch across streams.
        max_wait_ms: longest a ready item waits for a batch to fill (several streams).
        queue_depth: queued items per stream; a full queue drops its oldest (live).
        max_latency_ms: live items still queued this long after capture are dropped
            (None: never).
        kernel_impl: pre-processing implementation ("auto", "numba", "reference", ...).
        streaming_mel: reuse log-mel frames between overlapping windows.
        audio_ring_s: audio held per stream (None: sized for the stream; a value too small
            for the model window and offset is refused, never enlarged).
        video_slots: frames held per stream (None: sized for the stream, see
            `avfuse.engine.stream_build`).
        stats_interval_s: how often sinks get `on_stats`.
        nonlive_audio_wait_s: longest a file's frame waits for its audio (a safety net;
            files normally deliver audio in time).
        sync_monitor: measure the residual A/V offset from content (fused streams) and
            warn when it exceeds `sync_tolerance_ms` (see avfuse.engine.sync).
        sync_tolerance_ms: residual offset that triggers the misalignment warning.
        sync_method: "onsets" (avfuse.engine.sync: cues that start together) or
            "content" (avfuse.engine.content_sync: a learned picture-sound
            correspondence, e.g. a talking face; EBU R37 tolerance).
        auto_offset: with "content", slew the applied offset towards the measured one.
    """

    av_offset_ms: float = 0.0
    audio_deadline_ms: float = 100.0
    realtime: bool = False
    mode: Mode = "auto"
    step_ms: float = 100.0
    min_audio_coverage: float = 0.5
    postprocess: PostprocessConfig | None = None
    max_batch: int = 8
    max_wait_ms: float = 2.0
    queue_depth: int = 2
    max_latency_ms: float | None = 1000.0
    kernel_impl: str = "auto"
    streaming_mel: bool = True
    audio_ring_s: float | None = None
    video_slots: int | None = None
    stats_interval_s: float = 1.0
    nonlive_audio_wait_s: float = 2.0
    sync_monitor: bool = True
    sync_tolerance_ms: float = 80.0
    sync_method: Literal["onsets", "content"] = "onsets"
    auto_offset: bool = False

    def __post_init__(self) -> None:
        if self.mode not in ("auto", "fused", "audio", "video"):
            raise UsageError(f"unknown mode {self.mode!r}; use auto, fused, audio or video")
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and not math.isfinite(v):
                raise UsageError(f"invalid pipeline setting: {f.name} must be finite, got {v}")
        checks = (
            (abs(self.av_offset_ms) <= MAX_OFFSET_MS, "av_offset_ms must be within +-10000"),
            (0 <= self.audio_deadline_ms <= MAX_OFFSET_MS, "audio_deadline_ms in 0..10000"),
            (0 < self.step_ms <= 60_000, "step_ms must be in (0, 60000]"),
            (0 < self.min_audio_coverage <= 1, "min_audio_coverage must be in (0, 1]"),
            (1 <= self.max_batch <= 1024, "max_batch must be in 1..1024"),
            (0 <= self.max_wait_ms <= 10_000, "max_wait_ms must be in 0..10000"),
            (1 <= self.queue_depth <= 1024, "queue_depth must be in 1..1024"),
            (self.max_latency_ms is None or self.max_latency_ms > 0, "max_latency_ms > 0"),
            (self.audio_ring_s is None or 0 < self.audio_ring_s <= 3600, "audio_ring_s 0..3600"),
            (self.video_slots is None or 4 <= self.video_slots <= 4096, "video_slots 4..4096"),
            (0 < self.stats_interval_s <= 3600, "stats_interval_s must be in (0, 3600]"),
            (self.nonlive_audio_wait_s > 0, "nonlive_audio_wait_s must be > 0"),
            (self.sync_tolerance_ms > 0, "sync_tolerance_ms must be > 0"),
            (self.sync_method in ("onsets", "content"), "sync_method: onsets or content"),
            (
                not self.auto_offset or (self.sync_monitor and self.sync_method == "content"),
                "auto_offset needs the content sync monitor (--sync-monitor content)",
            ),
        )
        for ok, msg in checks:
            if not ok:
                raise UsageError(f"invalid pipeline setting: {msg}")


__all__ = ["MAX_OFFSET_MS", "Mode", "PipelineConfig"]
