"""PushSource: an application hands avfuse its own frames and audio, with their timestamps.

For avfuse inside an application that already owns its camera and microphone (as
MediaPipe's live-stream mode and DeepStream's appsrc are used): the app calls
`push_video(frame, timestamp_s)` and `push_audio(samples, timestamp_s)` from its own
threads, and gets the same alignment, models and records as any other source.

Time. A timestamp is seconds on the app's own media timeline (a camera's PTS, a
sample counter / rate, ...) and must increase per modality; a step back is a
`ValueError`, never silently reordered. Audio and video timestamps are on ONE timeline
(the app says how they relate). For a live source (`live=True`, the default) each push
is also stamped with the host clock at arrival, and ONE clock fit over both modalities'
(timestamp, arrival) pairs maps the app's timeline to host time: data never arrives
before it was captured, so the fit follows the lower envelope of the arrivals (as for a
network stream). Arrival jitter and bursts are averaged out, and audio that an app
hands over later than the frames it belongs with (a callback with a deeper buffer)
still lands where its timestamps say. `audio_latency_s`, `video_latency_s` say how long
before the push the data was captured, when the app knows. A non-live push
source (the app replays recorded media as fast as it likes) is stamped on a virtual
host clock from the timestamps, and the pipeline reads it without dropping anything:
a push then blocks while the pipeline catches up (back-pressure).

Audio blocks are float32 (or int16) mono or [n, channels] at `sample_rate`; frames are
uint8 in `video.pixel_format` ("bgr24" (H, W, 3) by default) at the declared size.
A gap in the timestamps (a dropped camera frame, a microphone hiccup) is seen by the
pipeline as a gap and marked, as for any source.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from avfuse.engine.clock import ClockModel
from avfuse.engine.sources.base import (
    AudioFormat,
    FrameSink,
    Source,
    SourceInfo,
    VideoFormat,
)
from avfuse.errors import UsageError


class PushSource(Source):
    """A source the application pushes into (see the module docstring).

    Args:
        name: the stream's name in records.
        sample_rate: rate of the pushed audio (None: no audio).
        video: format of the pushed frames (None: no video).
        live: the pushes come at capture pace (stamped on arrival) or are a replay.
        audio_latency_s / video_latency_s: capture-to-push delay of a live app.
    """

    def __init__(
        self,
        *,
        name: str = "app",
        sample_rate: int | None = 16000,
        video: VideoFormat | None = None,
        live: bool = True,
        audio_latency_s: float = 0.0,
        video_latency_s: float = 0.0,
    ) -> None:
        super().__init__(name=name)
        if sample_rate is None and video is None:
            raise UsageError("a push source needs audio (sample_rate) or video (a VideoFormat)")
        if sample_rate is not None and sample_rate <= 0:
            raise UsageError(f"sample_rate must be positive, got {sample_rate}")
        for what, v in (("audio_latency_s", audio_latency_s), ("video_latency_s", video_latency_s)):
            if not 0 <= v < 10:
                raise UsageError(f"{what} must be in [0, 10) s, got {v}")
        self.sample_rate = sample_rate
        self.video_format = video
        self.live = live
        self._lat_a = int(audio_latency_s * 1e9)
        self._lat_v = int(video_latency_s * 1e9)
        self._sink: FrameSink | None = None
        self._ready = threading.Event()
        self._ended = threading.Event()
        self._origin_ns: int | None = None
        self._origin_t: float | None = None
        self._last = {"audio": -np.inf, "video": -np.inf}
        self._lock = threading.Lock()
        self._fit = ClockModel(envelope=0.02) if live else None  # app timeline -> host

    def _open(self) -> SourceInfo:
        audio = AudioFormat(sample_rate=self.sample_rate) if self.sample_rate else None
        return SourceInfo(name=self.name, audio=audio, video=self.video_format, live=self.live)

    def _run(self, sink: FrameSink) -> None:
        self._sink = sink
        self._ready.set()
        self._ended.wait()  # set by end() or stop(): the app's threads do the delivering

    def stop(self, timeout: float = 2.0) -> None:
        """Stop (the pipeline ends): later pushes are refused."""
        self._ended.set()
        super().stop(timeout)

    # ------------------------------------------------------------------ the app's side
    def _stamp(self, modality: str, t: float, latency_ns: int) -> tuple[float, int]:
        if not np.isfinite(t):
            raise ValueError(f"{modality} timestamp {t!r} is not a finite number of seconds")
        if t <= self._last[modality]:
            raise ValueError(
                f"{modality} timestamp {t:.6f} s does not increase (the last was "
                f"{self._last[modality]:.6f} s): timestamps must increase per modality"
            )
        self._last[modality] = t
        with self._lock:  # audio and video may be pushed from two threads
            if self._origin_t is None:
                self._origin_t, self._origin_ns = t, time.monotonic_ns()
            assert self._origin_ns is not None and self._origin_t is not None
            if self._fit is None:
                return t, self._origin_ns + round((t - self._origin_t) * 1e9)
            arrival = time.monotonic_ns() - latency_ns
            self._fit.update(t, arrival)
            fit = self._fit.fit
            # captured no later than it arrived: the fit only ever moves a push earlier
            return t, arrival if fit is None else min(arrival, fit.to_host(t))

    def _target(self) -> FrameSink:
        if self._ended.is_set():
            raise UsageError(f"push source {self.name!r} was ended; make a new one")
        # not started at all: refuse now; started: wait (bounded) for its thread to run
        never_started = self._thread is None and not self._ready.is_set()
        if never_started or not self._ready.wait(10.0) or self._sink is None:
            raise UsageError(
                f"push source {self.name!r} is not running: start the pipeline before pushing"
            )
        return self._sink

    def push_audio(self, samples: np.ndarray, timestamp_s: float) -> None:
        """A block of audio whose first sample is at `timestamp_s` (the app's timeline)."""
        if self.sample_rate is None:
            raise UsageError(f"push source {self.name!r} has no audio")
        a = np.asarray(samples)
        if a.ndim not in (1, 2) or a.size == 0:
            raise ValueError(
                f"audio must be a non-empty (n,) or (n, channels) array, got {a.shape}"
            )
        if a.dtype == np.int16:
            a = a.astype(np.float32) / 32768.0
        elif a.dtype != np.float32:
            a = a.astype(np.float32)
        if not np.all(np.isfinite(a)):
            raise ValueError("audio samples must be finite")
        sink = self._target()
        dev, host = self._stamp("audio", float(timestamp_s), self._lat_a)
        sink.audio(a, device_time_s=dev, host_ns=host)

    def push_video(self, frame: np.ndarray, timestamp_s: float) -> None:
        """A frame shown at `timestamp_s` (the app's timeline)."""
        if self.video_format is None:
            raise UsageError(f"push source {self.name!r} has no video")
        f = np.asarray(frame)
        if f.dtype != np.uint8:
            raise ValueError(
                f"frames must be uint8 {self.video_format.pixel_format}, got {f.dtype}"
            )
        sink = self._target()
        dev, host = self._stamp("video", float(timestamp_s), self._lat_v)
        sink.video(f, device_time_s=dev, host_ns=host)

    def end(self) -> None:
        """No more pushes: the stream ends once the pipeline has processed what it got."""
        self._ended.set()


__all__ = ["PushSource"]
