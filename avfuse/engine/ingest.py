"""Ingest: the pipeline's `FrameSink`. Sources deliver here; it fills the rings.

One `Ingest` per stream. It runs on the sources' threads, so every call copies
into a preallocated ring and returns: no locks, no logging, and the consumer sees
progress through the rings' published head counters.

Audio. Blocks get consecutive absolute sample indices (the sample counter IS the
audio device's clock). When the source gives a device time, each block's device
time is checked against where the previous block ended:
    * later by more than `gap_tolerance_ms`, and the host time agrees -> a capture
      gap: the index advances by the missing samples and the ring holds a hole
      that reads report as missing;
    * earlier, or later while the host time disagrees -> a device clock jump: it
      is counted and the index stays continuous (samples are never reordered).
Without a device time, a host-time step larger than `host_gap_s` is a gap, and so is
the outage before a "reconnected" status (the device clock restarts then). The
`SampleClock` then fits (first index of the block, host ns) robustly, so any
sample index maps to host time and back.

Video. Frames with a device time (PTS) go through their own `ClockModel`; the
fitted host time is what the aligner uses. Without one, the source's host time is
used as it is. A "reconnected" status resets the video clock fit (its PTS restart).

Files and other non-live sources are read as fast as the pipeline allows: with
`backpressure` on, a write waits (bounded) while the consumer still needs the
oldest data, instead of overwriting it. Live sources never wait.

Faults arrive as `SourceStatus` and are queued for the pipeline, which turns them
into warning/fault records and degraded masks.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from avfuse.engine.clock import ClockModel, SampleClock, now_ns
from avfuse.engine.metrics import LatencyHistogram
from avfuse.engine.ring import FrameRing, SampleRing
from avfuse.engine.sources.base import AudioFormat, SourceStatus, VideoFormat


@dataclass(frozen=True, kw_only=True)
class IngestConfig:
    """Ring sizes and gap/back-pressure policy.

    Attributes:
        audio_ring_s: seconds of audio held.
        video_slots: frames held.
        gap_tolerance_ms: device-time discontinuity below this is jitter, not a gap.
        host_gap_s: without device time, a host-time step above this is a gap.
        clock_window: points per clock fit.
        backpressure: wait for the consumer instead of overwriting (non-live sources).
        max_block_s: longest a back-pressured write waits before overwriting anyway.
        realtime: pace a non-live source to its own timestamps (wall clock).
    """

    audio_ring_s: float = 10.0
    video_slots: int = 8
    gap_tolerance_ms: float = 5.0
    host_gap_s: float = 0.25
    clock_window: int = 2048
    backpressure: bool = False
    max_block_s: float = 1.0
    realtime: bool = False


def frame_shape(fmt: VideoFormat) -> tuple[int, ...]:
    """Array shape of one frame in `fmt.pixel_format`."""
    if fmt.pixel_format in ("bgr24", "rgb24"):
        return (fmt.height, fmt.width, 3)
    if fmt.pixel_format == "gray":
        return (fmt.height, fmt.width)
    return (fmt.height * 3 // 2, fmt.width)  # nv12 / i420 planar buffers


class Ingest:
    """`FrameSink` of one stream: rings, clock models, gap and jump detection.

    Args:
        name: stream name.
        audio: the stream's audio format, or None.
        video: the stream's video format, or None.
        live: whether the stream is paced by devices (latency is then measured from the
            capture time; for files, from arrival).
        config: ring sizes and policy.
    """

    def __init__(
        self,
        *,
        name: str,
        audio: AudioFormat | None,
        video: VideoFormat | None,
        live: bool,
        config: IngestConfig | None = None,
    ) -> None:
        self.name = name
        self.config = cfg = config or IngestConfig()
        self.live = live
        self.audio_format = audio
        self.video_format = video
        self.audio_ring: SampleRing | None = None
        self.audio_clock: SampleClock | None = None
        if audio is not None:
            self.audio_ring = SampleRing(capacity=int(cfg.audio_ring_s * audio.sample_rate))
            self.audio_clock = SampleClock(
                sample_rate=audio.sample_rate, model=ClockModel(window=cfg.clock_window)
            )
        self.frame_ring: FrameRing | None = None
        self.video_clock: ClockModel | None = None
        if video is not None:
            self.frame_ring = FrameRing(slots=cfg.video_slots, shape=frame_shape(video))
            self.video_clock = ClockModel(window=cfg.clock_window)
        #: raw host ns of the first timestamp of either modality (pacing starts here)
        self.origin_ns: int | None = None
        self._first_video_dev: float | None = None
        self._first_video_ns: int | None = None
        self._origin_fixed: int | None = None
        self._wall0 = 0
        self.statuses: deque[SourceStatus] = deque()
        #: earliest audio index the consumer still needs (None: never wait for it)
        self.audio_floor: int | None = 0
        #: set on shutdown: back-pressured writes stop waiting
        self.closed = False
        #: True while a back-pressured write is waiting for the consumer
        self.blocked = False
        self.audio_up = audio is not None
        self.video_up = video is not None
        self.ended = False
        self.audio_epoch = 0  # bumped at every audio gap/reconnect (invalidates mel caches)
        self.capture_to_ring = LatencyHistogram()
        self.counters = {
            "audio_blocks": 0,
            "audio_gaps": 0,
            "audio_gap_samples": 0,
            "device_clock_jumps": 0,
            "video_frames": 0,
            "video_time_regressions": 0,
            "format_errors": 0,
            "backpressure_timeouts": 0,
        }
        self._next_index = 0
        self._dev_end: float | None = None
        self._last_host = 0
        self._last_video_ns: int | None = None
        self._ended_mods: set[str] = set()
        self._resync = False

    # ------------------------------------------------------------------ helpers
    def stream_time_s(self, host_ns: int) -> float:
        """Seconds since the stream's first timestamp, on the fitted clocks."""
        origin = self.fitted_origin_ns()
        return 0.0 if origin is None else (host_ns - origin) / 1e9

    def fitted_origin_ns(self) -> int | None:
        """Stream time 0: the *fitted* host time of the first sample or frame.

        A raw first arrival can be late (network streams deliver audio in bursts), and
        every later timestamp is a fitted one, so the origin is fitted too. It is frozen
        once the fits have settled, so a device clock restarting after a reconnect cannot
        move it.
        """
        if self._origin_fixed is not None or self.origin_ns is None:
            return self._origin_fixed if self._origin_fixed is not None else self.origin_ns
        cands = []
        ac = self.audio_clock
        if ac is not None and self.counters["audio_blocks"]:
            cands.append(ac.index_to_host(0))
        vc = self.video_clock
        if self._first_video_dev is not None and vc is not None and vc.updates:
            cands.append(vc.to_host(self._first_video_dev))
        elif self._first_video_ns is not None:
            cands.append(self._first_video_ns)
        origin = min(cands) if cands else self.origin_ns
        settled = (ac is None or ac.model.updates >= 150) and (vc is None or vc.updates >= 150)
        if settled and cands:
            self._origin_fixed = origin
        return origin

    @property
    def clock_jumps(self) -> int:
        """Device clock jumps plus steps the clock models refitted after."""
        n = self.counters["device_clock_jumps"]
        if self.audio_clock is not None:
            n += self.audio_clock.model.jumps
        if self.video_clock is not None:
            n += self.video_clock.jumps
        return n

    def _first(self, host_ns: int) -> None:
        if self.origin_ns is None:
            self.origin_ns = host_ns
            self._wall0 = now_ns()

    def _pace(self, host_ns: int) -> None:
        """Realtime playback of a non-live source: wait until its timestamp is due."""
        if self.live or not self.config.realtime or self.origin_ns is None:
            return
        due = self._wall0 + (host_ns - self.origin_ns)
        while not self.closed:
            wait = due - now_ns()
            if wait <= 0:
                return
            time.sleep(min(wait / 1e9, 0.05))

    def _full(self, stop_index: int) -> bool:
        """Would writing up to `stop_index` (audio) or one more frame (-1) lose needed data?"""
        if stop_index < 0:
            ring = self.frame_ring
            return ring is not None and ring.unreleased >= ring.slots - 1
        floor = self.audio_floor
        ring_a = self.audio_ring
        return floor is not None and ring_a is not None and stop_index - ring_a.capacity > floor

    def _wait(self, stop_index: int) -> None:
        """Back-pressure for non-live sources: wait (bounded) while the consumer lags."""
        if not self.config.backpressure or self.live or not self._full(stop_index):
            return
        give_up = now_ns() + int(self.config.max_block_s * 1e9)
        self.blocked = True
        while self._full(stop_index) and not self.closed:
            if now_ns() > give_up:
                self.counters["backpressure_timeouts"] += 1
                break
            time.sleep(0.0005)
        self.blocked = False

    # ------------------------------------------------------------------ FrameSink
    def audio(self, samples: np.ndarray, *, device_time_s: float | None, host_ns: int) -> None:
        """A block of float32 mono samples, the first captured at `host_ns`."""
        ring, clock = self.audio_ring, self.audio_clock
        if ring is None or clock is None:
            return
        if samples.ndim == 2:
            samples = samples[:, 0] if samples.shape[1] == 1 else samples.mean(axis=1)
        n = samples.shape[0]
        if n == 0:
            return
        self._first(host_ns)
        self._pace(host_ns)
        idx = self._next_index
        rate = clock.sample_rate
        if self.counters["audio_blocks"]:
            host_step = (host_ns - clock.index_to_host(idx)) / 1e9
            if self._resync:  # after a reconnect the device clock restarted: trust host time
                self._resync = False
                if host_step > self.config.gap_tolerance_ms / 1e3:
                    idx = self._gap(idx, int(round(host_step * rate)))
            elif device_time_s is not None and self._dev_end is not None:
                dev_step = device_time_s - self._dev_end
                if dev_step > self.config.gap_tolerance_ms / 1e3:
                    if abs(dev_step - host_step) < max(0.5 * dev_step, 0.05):
                        idx = self._gap(idx, int(round(dev_step * rate)))
                    else:
                        self.counters["device_clock_jumps"] += 1
                elif dev_step < -self.config.gap_tolerance_ms / 1e3:
                    self.counters["device_clock_jumps"] += 1
            elif device_time_s is None and host_step > self.config.host_gap_s:
                idx = self._gap(idx, int(round(host_step * rate)))
        self._wait(idx + n)
        ring.write(samples, idx)
        self._next_index = idx + n
        clock.update(idx, host_ns)
        if device_time_s is not None:
            self._dev_end = device_time_s + n / rate
        self._last_host = host_ns
        self.counters["audio_blocks"] += 1

    def _gap(self, idx: int, missing: int) -> int:
        self.counters["audio_gaps"] += 1
        self.counters["audio_gap_samples"] += missing
        self.audio_epoch += 1
        return idx + missing

    def video(self, frame: np.ndarray, *, device_time_s: float | None, host_ns: int) -> None:
        """One frame, captured at `host_ns`."""
        ring = self.frame_ring
        if ring is None:
            return
        self._first(host_ns)
        self._pace(host_ns)
        t = host_ns
        if self._first_video_ns is None:
            self._first_video_ns, self._first_video_dev = host_ns, device_time_s
        if device_time_s is not None and self.video_clock is not None:
            self.video_clock.update(device_time_s, host_ns)
            t = self.video_clock.to_host(device_time_s)
        if self._last_video_ns is not None and t <= self._last_video_ns:
            self.counters["video_time_regressions"] += 1
        self._last_video_ns = t
        self._wait(-1)
        base = host_ns if self.live else now_ns()  # a file's latency starts when it is let in
        try:
            ring.write(frame, host_ns=t, base_ns=base)
        except ValueError as e:
            self.counters["format_errors"] += 1
            if self.counters["format_errors"] == 1:
                self.statuses.append(
                    SourceStatus(kind="warning", source=self.name, modality="video", message=str(e))
                )
            return
        self.counters["video_frames"] += 1
        self.capture_to_ring.record_ns(now_ns() - base)

    def status(self, status: SourceStatus) -> None:
        """A lifecycle change or fault: update modality state and queue it for the pipeline."""
        mods = (status.modality,) if status.modality else ("audio", "video")
        final = status.kind == "eos" or (status.kind == "error" and not status.recoverable)
        if final or status.kind == "disconnected":
            for m in mods:
                if m == "audio":
                    self.audio_up = False
                elif m == "video":
                    self.video_up = False
                if final:
                    self._ended_mods.add(m)
            self.ended = all(
                m in self._ended_mods
                for m, fmt in (("audio", self.audio_format), ("video", self.video_format))
                if fmt is not None
            )
        elif status.kind == "reconnected":
            for m in mods:
                if m == "audio" and self.audio_ring is not None:
                    self.audio_up = True
                    self.audio_epoch += 1
                    self._resync = True
                    self._dev_end = None
                elif m == "video" and self.frame_ring is not None and self.video_clock is not None:
                    self.video_up = True
                    self.video_clock.reset()
                    self._last_video_ns = None
        self.statuses.append(status)

    @property
    def last_ns(self) -> int:
        """Host time of the newest audio block or frame (0 before any)."""
        return max(self._last_host, self._last_video_ns or 0)

    def stats(self) -> dict[str, object]:
        """JSON-ready counters and clock state for the summary."""
        d: dict[str, object] = dict(self.counters)
        d["clock_jumps"] = self.clock_jumps
        if self.audio_ring is not None and self.audio_clock is not None:
            d["audio_overruns"] = self.audio_ring.overruns + self.audio_ring.late_reads
            d["audio_clock"] = self.audio_clock.model.stats()
        if self.frame_ring is not None and self.video_clock is not None:
            d["video_overruns"] = self.frame_ring.overruns
            d["video_clock"] = self.video_clock.stats()
        return d


class IngestPort:
    """FrameSink of one source of a stream: forwards only what the stream takes from it.

    A source giving one modality to the stream gets that modality named on its lifecycle
    statuses, so a camera's "eos" ends the stream's video, not its audio.
    """

    def __init__(self, ingest: Ingest, *, audio: bool, video: bool) -> None:
        self._ingest = ingest
        self._audio = audio
        self._video = video
        self._only = "audio" if audio and not video else "video" if video and not audio else None

    def audio(self, samples: np.ndarray, *, device_time_s: float | None, host_ns: int) -> None:
        if self._audio:
            self._ingest.audio(samples, device_time_s=device_time_s, host_ns=host_ns)

    def video(self, frame: np.ndarray, *, device_time_s: float | None, host_ns: int) -> None:
        if self._video:
            self._ingest.video(frame, device_time_s=device_time_s, host_ns=host_ns)

    def status(self, status: SourceStatus) -> None:
        if status.modality is None and self._only is not None:
            status = replace(status, modality=self._only)  # type: ignore[arg-type]
        self._ingest.status(status)


def status_record(s: SourceStatus, stream_time: float) -> dict[str, Any] | None:
    """The warning/fault record for a source status (None for "opened" and "eos")."""
    if s.kind in ("opened", "eos"):
        return None
    fault = s.kind == "error"
    rec: dict[str, Any] = {
        "type": "fault" if fault else "warning",
        "source": s.source,
        "kind": s.kind,
        "modality": s.modality,
        "message": s.message,
        "stream_time": round(stream_time, 3),
    }
    if fault:
        rec["recoverable"] = s.recoverable
    return rec


__all__ = ["Ingest", "IngestConfig", "IngestPort", "frame_shape", "status_record"]
