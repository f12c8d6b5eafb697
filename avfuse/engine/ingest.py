"""Ingest: the pipeline's `FrameSink`. Sources deliver here; it fills the rings.

One `Ingest` per stream. It runs on the sources' threads (one for audio, one for
video when they come from two devices), so every call copies into a preallocated
ring and returns: no logging, and the consumer sees progress through the rings'
published head counters. After publishing it rings the pipeline's `Doorbell`, so
the pipeline sleeps until there is work instead of polling.

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
used as it is. A "reconnected" status resets the video clock fit (its PTS restart)
and bumps `video_epoch`; the audio sample index goes on across the break (with a gap
where time passed), and its clock fit restarts from the first block after it, since
the points before belong to another capture chain. A frame whose size or pixel
layout differs from the stream's (a resolution change mid-stream, a camera reopened
at another size) is converted to the stream's format, with one "format_changed"
warning per change.

Files and other non-live sources are read as fast as the pipeline allows: with
`backpressure` on, a write waits (bounded, blocking on a doorbell the consumer
rings when it releases data) while the consumer still needs the oldest data,
instead of overwriting it; `blocked_on` says which ring is full. Live sources never
wait.

Threads: fields written by the capture threads are plain values read whole
(ints, bools, immutable clock fits), so the pipeline never sees a half-made state;
stream time 0 is computed from published fit snapshots only.

Faults arrive as `SourceStatus` and are queued for the pipeline, which turns them
into warning/fault records and degraded masks.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

from avfuse.engine.clock import ClockFit, ClockModel, SampleClock, now_ns
from avfuse.engine.control import Doorbell
from avfuse.engine.frame_convert import FrameConverter, frame_shape
from avfuse.engine.metrics import LatencyHistogram
from avfuse.engine.records import FaultRecord, WarningRecord
from avfuse.engine.ring import FrameRing, SampleRing
from avfuse.engine.sources.base import AudioFormat, SourceStatus, VideoFormat

#: realtime playback of a file that does not pace itself (SourceInfo.paced) lets an audio
#: block in up to this long before its time, so
#: the reader serves the blocks demuxed between two frames in the frame's wake-up instead
#: of one wake-up each (a wake-up costs more than a block's work; benchmarks/cpu_usage.py).
#: Early audio only completes windows sooner; video keeps its exact pace.
AUDIO_EARLY_NS = 40_000_000


@dataclass(frozen=True, kw_only=True)
class IngestConfig:
    """Ring sizes and gap/back-pressure policy.

    Attributes:
        audio_ring_s: seconds of audio held.
        video_slots: frames held.
        gap_tolerance_ms: device-time discontinuity below this is jitter, not a gap.
        host_gap_s: without device time, a host-time step above this is a gap.
        clock_window: points per clock fit.
        arrival_stamped: host times are packet arrivals (network): fit the lower envelope.
        shared_timeline: audio and video come from one container whose PTS relate them:
            frames are timed through the audio's clock, so the A/V relation is the
            container's (not the difference of two arrival patterns).
        backpressure: wait for the consumer instead of overwriting (non-live sources).
        max_block_s: longest a back-pressured write waits before overwriting anyway.
        realtime: pace a non-live source to its own timestamps (wall clock).
        self_paced: a non-live source that delivers each frame at its host time itself
            (a file played in real time): its latency counts from that time, not from
            when the frame reached the ring (which may be later, never earlier).
    """

    audio_ring_s: float = 10.0
    video_slots: int = 8
    gap_tolerance_ms: float = 5.0
    host_gap_s: float = 0.25
    clock_window: int = 2048
    arrival_stamped: bool = False
    shared_timeline: bool = False
    backpressure: bool = False
    max_block_s: float = 1.0
    realtime: bool = False
    self_paced: bool = False


class Ingest:
    """`FrameSink` of one stream: rings, clock models, gap and jump detection.

    Args:
        name: stream name.
        audio: the stream's audio format, or None.
        video: the stream's video format, or None.
        live: whether the stream is paced by devices (latency is then measured from the
            capture time; for files, from arrival).
        config: ring sizes and policy.
        bell: rung after every publish the consumer may be waiting for (a frame reaching
            `wake_video_seq`, an audio block reaching `wake_audio_index`, a status, a
            blocked write).
    """

    def __init__(
        self,
        *,
        name: str,
        audio: AudioFormat | None,
        video: VideoFormat | None,
        live: bool,
        config: IngestConfig | None = None,
        bell: Doorbell | None = None,
    ) -> None:
        self.name = name
        self.config = cfg = config or IngestConfig()
        self.live = live
        self.audio_format = audio
        self.video_format = video
        self.bell = bell or Doorbell()
        #: rung by the consumer when it releases data (wakes a back-pressured writer)
        self.space = Doorbell()
        self.audio_ring: SampleRing | None = None
        self.audio_clock: SampleClock | None = None
        if audio is not None:
            self.audio_ring = SampleRing(capacity=int(cfg.audio_ring_s * audio.sample_rate))
            self.audio_clock = SampleClock(
                sample_rate=audio.sample_rate, model=self._clock_model(cfg)
            )
        self.frame_ring: FrameRing | None = None
        self.video_clock: ClockModel | None = None
        self._convert: FrameConverter | None = None
        if video is not None:
            self.frame_ring = FrameRing(slots=cfg.video_slots, shape=frame_shape(video))
            self.video_clock = self._clock_model(cfg)
            self._convert = FrameConverter(video)
        #: raw host ns of the first timestamp of either modality (pacing starts here)
        self.origin_ns: int | None = None
        self._origin_lock = threading.Lock()
        self._first_video_ns: int | None = None
        self._first_video_dev: float | None = None
        self._origin_vfit: ClockFit | None = None  # video fit of the first timeline
        self._origin_fixed: int | None = None
        self._wall0 = 0
        self.statuses: deque[SourceStatus] = deque()
        #: earliest audio index the consumer still needs (None: never wait for it)
        self.audio_floor: int | None = 0
        #: the consumer wants a ring once the audio head reaches this index
        self.wake_audio_index = 0
        #: the consumer wants a ring once a frame with this sequence number is written
        #: (a model on every 3rd frame needs no wake-up for the two between)
        self.wake_video_seq = 0
        #: False while a lane of the stream reads audio on its own cadence: its audio is
        #: then wanted on time, not with the next frame a model runs on
        self.video_paces_audio = True
        #: the consumer takes every this-many-th frame from `wake_video_seq` on (1: each)
        self.video_cadence = 1
        self._closed = threading.Event()
        #: which ring a back-pressured write is waiting on ("audio", "video"), or None
        self.blocked_on: str | None = None
        self.audio_up = audio is not None
        self.video_up = video is not None
        self.audio_ended = audio is None
        self.video_ended = video is None
        self.ended = False
        self.audio_epoch = 0  # bumped at every audio gap/reconnect (invalidates mel caches)
        # (first missing index, first index after) of the last 64 audio gaps and
        # reconnects: a ring written by the audio thread, published by `gaps_total`
        self._gaps = np.zeros((64, 2), np.int64)
        self.gaps_total = 0
        self.video_epoch = 0  # bumped at every video reconnect (a new PTS timeline)
        self.capture_to_ring = LatencyHistogram()
        self.counters = {
            "audio_blocks": 0,
            "audio_gaps": 0,
            "audio_gap_samples": 0,
            "device_clock_jumps": 0,
            "video_frames": 0,
            "video_time_regressions": 0,
            "format_changes": 0,
            "format_errors": 0,
            "backpressure_timeouts": 0,
        }
        self._next_index = 0
        self._dev_end: float | None = None
        self._last_host = 0
        self._last_video_ns: int | None = None
        self._resync = False

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _clock_model(cfg: IngestConfig) -> ClockModel:
        return ClockModel(window=cfg.clock_window, envelope=0.02 if cfg.arrival_stamped else None)

    @property
    def closed(self) -> bool:
        """True once the stream is shut down (back-pressured writes stop waiting)."""
        return self._closed.is_set()

    def close(self) -> None:
        """Shut down: writers stop waiting for the consumer or for pacing."""
        self._closed.set()
        self.space.ring()

    @property
    def blocked(self) -> bool:
        """True while a back-pressured write is waiting for the consumer."""
        return self.blocked_on is not None

    def stream_time_s(self, host_ns: int) -> float:
        """Seconds since the stream's first timestamp, on the fitted clocks."""
        origin = self.fitted_origin_ns()
        return 0.0 if origin is None else (host_ns - origin) / 1e9

    def fitted_origin_ns(self) -> int | None:
        """Stream time 0: the *fitted* host time of the first sample or frame.

        A raw first arrival can be late (network streams deliver audio in bursts), and
        every later timestamp is a fitted one, so the origin is fitted too. It is frozen
        once the fits have settled (and at the first reconnect), so a device clock
        restarting cannot move it. Reads only published snapshots: safe against a
        reconnect on the capture thread at any moment.
        """
        fixed = self._origin_fixed
        if fixed is not None:
            return fixed
        origin = self.origin_ns
        if origin is None:
            return None
        cands = []
        settled = True
        ac = self.audio_clock
        if ac is not None:
            afit = ac.fit
            if afit is not None and self.counters["audio_blocks"]:
                cands.append(ac.index_to_host(0, afit))
            settled = ac.model.updates >= 150
        vfit = self._origin_vfit
        vdev = self._first_video_dev
        if vfit is not None and vdev is not None:
            cands.append(vfit.to_host(vdev))
        elif self._first_video_ns is not None:
            cands.append(self._first_video_ns)
        if self.video_clock is not None:
            settled = settled and self.video_clock.updates >= 150
        if not cands:
            return origin
        best = min(cands)
        if settled:
            self._origin_fixed = best
        return best

    def _freeze_origin(self) -> None:
        """Fix stream time 0 now (before a reconnect resets the fits it comes from)."""
        if self._origin_fixed is None and self.origin_ns is not None:
            self._origin_fixed = self.fitted_origin_ns()

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
            with self._origin_lock:  # two capture threads may both be first
                if self.origin_ns is None:
                    self._wall0 = now_ns()
                    self.origin_ns = host_ns

    def _pace(self, host_ns: int) -> None:
        """Realtime playback of a non-live source: sleep until its timestamp is due."""
        if self.live or not self.config.realtime or self.origin_ns is None:
            return
        wait = self._wall0 + (host_ns - self.origin_ns) - now_ns()
        if wait > 0:
            self._closed.wait(wait / 1e9)

    def _full(self, stop_index: int) -> bool:
        """Would writing up to `stop_index` (audio) or one more frame (-1) lose needed data?"""
        if stop_index < 0:
            ring = self.frame_ring
            return ring is not None and ring.unreleased >= ring.slots - 1
        floor = self.audio_floor
        ring_a = self.audio_ring
        return floor is not None and ring_a is not None and stop_index - ring_a.capacity > floor

    def _wait(self, stop_index: int) -> None:
        """Back-pressure for non-live sources: block (bounded) while the consumer lags."""
        if not self.config.backpressure or self.live or not self._full(stop_index):
            return
        give_up = now_ns() + int(self.config.max_block_s * 1e9)
        self.blocked_on = "video" if stop_index < 0 else "audio"
        self.bell.ring()  # the consumer may be waiting to learn that we wait
        while not self.closed:
            self.space.clear()
            if not self._full(stop_index):
                break
            left = give_up - now_ns()
            if left <= 0:
                self.counters["backpressure_timeouts"] += 1
                break
            self.space.wait(left / 1e9)
        self.blocked_on = None

    def released(self) -> None:
        """The consumer released data: wake a writer blocked by back-pressure."""
        if self.blocked_on is not None:
            self.space.ring()

    def source_finished(self) -> None:
        """A source's thread ended (after its last status): the consumer may be done."""
        self.bell.ring()

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
        self._pace(host_ns - AUDIO_EARLY_NS)
        idx = self._next_index
        rate = clock.sample_rate
        if self.counters["audio_blocks"]:
            host_step = (host_ns - clock.index_to_host(idx)) / 1e9
            if self._resync:  # after a reconnect the device clock restarted: trust host time
                self._resync = False
                if host_step > self.config.gap_tolerance_ms / 1e3:
                    idx = self._gap(idx, int(round(host_step * rate)))
                clock.model.restart()  # the new chain's points only, from this block on
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
        if self._next_index >= self.wake_audio_index:
            self.bell.ring()

    def _gap(self, idx: int, missing: int) -> int:
        self.counters["audio_gaps"] += 1
        self.counters["audio_gap_samples"] += missing
        self.audio_epoch += 1
        self._add_gap(idx, idx + missing)
        return idx + missing

    def _add_gap(self, start: int, end: int) -> None:
        k = self.gaps_total % self._gaps.shape[0]
        self._gaps[k, 0], self._gaps[k, 1] = start, end
        self.gaps_total += 1  # published after the slot is written

    def gap_end(self, n: int) -> int | None:
        """Where the n-th audio gap (0-based, over the stream) ends, or None when it has not
        happened or is too old to be held."""
        total = self.gaps_total
        if n >= total or n < total - self._gaps.shape[0]:
            return None
        return int(self._gaps[n % self._gaps.shape[0], 1])

    def video(self, frame: np.ndarray, *, device_time_s: float | None, host_ns: int) -> None:
        """One frame, captured at `host_ns`."""
        ring, conv = self.frame_ring, self._convert
        if ring is None or conv is None:
            return
        self._first(host_ns)
        self._pace(host_ns)
        t = host_ns
        if self._first_video_ns is None:
            self._first_video_ns, self._first_video_dev = host_ns, device_time_s
        vc = self.video_clock
        if device_time_s is not None and vc is not None:
            vc.update(device_time_s, host_ns)
            fit = vc.fit
            if fit is not None:
                t = fit.to_host(device_time_s)
                if self.video_epoch == 0:
                    self._origin_vfit = fit
            shared = self._through_audio(device_time_s)
            if shared is not None:
                t = shared
        if self._last_video_ns is not None and t <= self._last_video_ns:
            self.counters["video_time_regressions"] += 1
        self._last_video_ns = t
        if frame.shape != ring.shape or frame.dtype != np.uint8:
            frame = self._converted(frame, t)
            if frame is None:
                return
        self._wait(-1)
        # a file's latency starts when it is let in: at its time when paced, else now
        base = host_ns if self.live or self.config.self_paced else now_ns()
        seq = ring.write(frame, host_ns=t, base_ns=base)
        self.counters["video_frames"] += 1
        self.capture_to_ring.record_ns(now_ns() - base)
        if seq >= self.wake_video_seq:
            self.bell.ring()

    def frames_not_awaited(self) -> int:
        """How many of the next frames no consumer wakes up for (`wake_video_seq`).

        A file played in real time may hand them over with the frame after them: late by
        at most that many frame intervals, never early, and with one wake-up of the
        reader for the group instead of one per frame. 0 (each frame on time) when a
        lane wants every frame, or audio on its own cadence, or the stream is not paced.
        Read on the source's thread: a stale `wake_video_seq` (the consumer has not
        pulled the awaited frame yet) is moved on by `video_cadence`; a wrong guess only
        costs a wake-up, as no frame is ever delivered before its time.
        """
        ring = self.frame_ring
        if ring is None or not self.video_paces_audio:
            return 0
        wake, head, every = self.wake_video_seq, ring.head, self.video_cadence
        if head > wake and every > 1:
            # the awaited frame is written and the consumer has not said the next one
            # yet (it runs on another thread): it is a cadence further on
            wake += -(-(head - wake) // every) * every
        return max(0, wake - head)

    def _through_audio(self, device_time_s: float) -> int | None:
        """A frame's host time through the audio clock (one container's PTS timeline).

        Called on the thread that also delivers the audio (one demuxer), so the audio's
        last index and device time are this thread's own.
        """
        if not self.config.shared_timeline or self._dev_end is None:
            return None
        clock = self.audio_clock
        fit = clock.fit if clock is not None else None
        if clock is None or fit is None:
            return None
        idx = self._next_index - (self._dev_end - device_time_s) * clock.sample_rate
        return clock.index_to_host(idx, fit)

    def _converted(self, frame: np.ndarray, t: int) -> np.ndarray | None:
        """The frame in the stream's format, or None (counted) when it cannot be converted."""
        assert self._convert is not None  # with the frame ring
        changed = self._convert.changed(frame)
        try:
            out = self._convert(frame)
        except ValueError as e:
            self.counters["format_errors"] += 1
            if self.counters["format_errors"] == 1:
                self._status(SourceStatus(kind="warning", source=self.name, modality="video",
                                          message=f"{e}; such frames are dropped"))  # fmt: skip
            return None
        if changed:
            self.counters["format_changes"] += 1
            self._status(
                SourceStatus(
                    kind="format_changed",  # type: ignore[arg-type]
                    source=self.name,
                    modality="video",
                    message=self._convert.describe(frame),
                )
            )
        return out

    def _status(self, status: SourceStatus) -> None:
        self.statuses.append(status)
        self.bell.ring()

    def status(self, status: SourceStatus) -> None:
        """A lifecycle change or fault: update modality state and queue it for the pipeline."""
        mods = (status.modality,) if status.modality else ("audio", "video")
        final = status.kind == "eos" or (status.kind == "error" and not status.recoverable)
        if final or status.kind == "disconnected":
            for m in mods:
                if m == "audio" and self.audio_format is not None:
                    self.audio_up = False
                    self.audio_ended = self.audio_ended or final
                elif m == "video" and self.video_format is not None:
                    self.video_up = False
                    self.video_ended = self.video_ended or final
            self.ended = self.audio_ended and self.video_ended
        elif status.kind == "reconnected":
            self._freeze_origin()
            for m in mods:
                if m == "audio" and self.audio_ring is not None:
                    self.audio_up = True
                    self.audio_epoch += 1
                    self._add_gap(self._next_index, self._next_index)
                    self._resync = True
                    self._dev_end = None
                elif m == "video" and self.frame_ring is not None and self.video_clock is not None:
                    self.video_up = True
                    self.video_epoch += 1
                    self.video_clock.reset()
                    self._last_video_ns = None
        self._status(status)

    @property
    def last_ns(self) -> int:
        """Host time of the newest audio block or frame (0 before any)."""
        return max(self._last_host, self._last_video_ns or 0)

    @property
    def last_video_ns(self) -> int | None:
        """Fitted host time of the newest frame (None before any, or since a reconnect)."""
        return self._last_video_ns

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


def status_record(
    s: SourceStatus, *, stream: str, model: str | None, stream_time: float
) -> WarningRecord | FaultRecord | None:
    """The warning/fault record for a source status (None for "opened" and "eos")."""
    if s.kind in ("opened", "eos"):
        return None
    common = {
        "source": s.source,
        "kind": s.kind,
        "modality": s.modality,
        "message": s.message,
        "stream": stream,
        "model": model,
        "stream_time": round(stream_time, 3),
    }
    if s.kind == "error":
        return FaultRecord(recoverable=s.recoverable, **common)
    return WarningRecord(**common)


__all__ = ["Ingest", "IngestConfig", "frame_shape", "status_record"]
