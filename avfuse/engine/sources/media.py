"""MediaSource: audio and video from any file or URL FFmpeg reads, through PyAV.

One container, demuxed on one thread, so audio and video keep the relation their
PTS give them: the stream's origin (its first timestamp) is shared by both
modalities and `device_time_s` is PTS minus that origin. Audio is resampled to the
requested rate, mono float32; video is decoded to bgr24.

Files are not live: they are delivered as fast as the sink takes them, stamped on a
virtual host clock (`origin_ns + PTS offset`, `origin_ns` the monotonic time at
start), or paced to wall time with `realtime=True`. Network URLs are live: each
frame is stamped with its arrival time and the pipeline's ClockModel fits PTS to
host time. PTS gaps and regressions are reported as warnings, never reordered.
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import av
import av.error
import numpy as np

from avfuse.engine.sources.base import (
    AudioFormat,
    FrameSink,
    Source,
    SourceInfo,
    SourceStatus,
    VideoFormat,
)
from avfuse.errors import SourceError, StreamFormatError, UsageError

#: URL schemes read as live network streams (stamped by arrival time).
LIVE_SCHEMES = ("udp", "rtp", "rtsp", "rtsps", "http", "https", "srt", "tcp", "rtmp", "rtmps")


def is_url(location: str) -> bool:
    """True when `location` looks like `scheme://...` (not a plain file path)."""
    scheme, sep, _ = location.partition("://")
    return bool(sep) and scheme.isalnum() and len(scheme) > 1


@dataclass(frozen=True, kw_only=True)
class MediaConfig:
    """How a MediaSource opens and delivers its input.

    Attributes:
        location: file path or URL.
        sample_rate: rate audio is resampled to (mono float32).
        audio: deliver the container's audio stream when it has one.
        video: deliver the container's video stream when it has one.
        realtime: pace a file to wall time instead of delivering it as fast as possible.
        live: stamp frames by arrival time; None decides from the URL scheme.
        open_timeout_s: longest wait for the input to open (connect, probe).
        read_timeout_s: longest wait for the next packet before the input counts as gone.
        reconnect_s: for live inputs, how long to keep trying to reopen after the
            stream went away (0: do not reconnect).
        options: extra FFmpeg options (e.g. {"rtsp_transport": "tcp"}).
    """

    location: str
    sample_rate: int = 16000
    audio: bool = True
    video: bool = True
    realtime: bool = False
    live: bool | None = None
    open_timeout_s: float = 5.0
    read_timeout_s: float = 5.0
    reconnect_s: float = 5.0
    options: dict[str, str] = field(default_factory=dict)


class MediaSource(Source):
    """Audio and/or video from one file or network stream (see the module docstring)."""

    def __init__(self, location: str | os.PathLike[str], *, name: str | None = None, **kw) -> None:
        """Create the source; nothing is opened until `open()`/`start()`.

        Args:
            location: file path or URL (udp://, rtp://, rtsp://, http(s)://, srt://...).
            name: name used in status records; defaults to the location.
            **kw: the remaining `MediaConfig` fields (sample_rate, audio, video, ...).
        """
        location = os.fspath(location)
        super().__init__(name=name or location)
        try:
            self.config = MediaConfig(location=location, **kw)
        except TypeError as e:
            raise UsageError(f"media source: {e}: use the fields of MediaConfig") from None
        if self.config.sample_rate <= 0:
            raise StreamFormatError(
                f"sample_rate {self.config.sample_rate} is not positive: ask for e.g. 16000"
            )
        if not (self.config.audio or self.config.video):
            raise StreamFormatError(
                f"{location}: both audio=False and video=False: enable at least one modality"
            )
        url = is_url(location)
        self.live = self.config.live if self.config.live is not None else url
        self._is_url = url
        self._container: av.container.InputContainer | None = None
        self._astream: av.AudioStream | None = None
        self._vstream: av.VideoStream | None = None
        self._lock = threading.Lock()
        self._reading = False

    # ------------------------------------------------------------------ opening
    def _open_container(self) -> av.container.InputContainer:
        cfg = self.config
        loc = cfg.location
        if not self._is_url and not Path(loc).is_file():
            what = "is a directory" if Path(loc).is_dir() else "does not exist"
            raise SourceError(f"media file '{loc}' {what}: check the path")
        options = dict(cfg.options)
        if self.live:
            options.setdefault("fflags", "nobuffer")
        if "listen" in options.get("rtsp_flags", ""):  # we are the RTSP server: bound the wait
            options.setdefault("listen_timeout", str(max(1, math.ceil(cfg.open_timeout_s))))
        try:
            return av.open(
                loc, mode="r", options=options, timeout=(cfg.open_timeout_s, cfg.read_timeout_s)
            )
        except av.error.ExitError as e:
            raise SourceError(
                f"'{loc}' sent nothing within {cfg.open_timeout_s:g} s: check that the sender "
                "is running and the address and port are right"
            ) from e
        except av.error.ProtocolNotFoundError as e:
            raise SourceError(
                f"'{loc}': this FFmpeg build has no protocol for it: use udp://, rtp://, "
                "rtsp://, http(s):// or a file"
            ) from e
        except (av.error.InvalidDataError, av.error.EOFError) as e:
            raise StreamFormatError(
                f"'{loc}' is not readable media (corrupt, truncated or not audio/video): "
                "check the file plays with `ffprobe`"
            ) from e
        except ConnectionError as e:
            raise SourceError(
                f"'{loc}': {e.strerror or e}: check that the server is running and the URL is right"
            ) from e
        except av.error.FFmpegError as e:
            raise SourceError(
                f"'{loc}' cannot be opened ({e.strerror or e}): check the path or URL"
            ) from e

    def _open(self) -> SourceInfo:
        cfg = self.config
        container = self._open_container()
        astream = container.streams.audio[0] if container.streams.audio and cfg.audio else None
        vstream = container.streams.video[0] if container.streams.video and cfg.video else None
        if astream is None and vstream is None:
            has = [s.type for s in container.streams]
            container.close()
            wanted = [m for m, on in (("audio", cfg.audio), ("video", cfg.video)) if on]
            raise StreamFormatError(
                f"'{cfg.location}' has no {' or '.join(wanted)} stream (it has: "
                f"{', '.join(has) or 'nothing'}): give a file or URL with "
                f"{' or '.join(wanted)}"
            )
        video_fmt = None
        if vstream is not None:
            ctx = vstream.codec_context
            if not ctx.width or not ctx.height:
                container.close()
                raise StreamFormatError(
                    f"'{cfg.location}': the video size is unknown after probing: raise "
                    "options probesize/analyzeduration or send keyframes more often"
                )
            rate = vstream.average_rate or vstream.guessed_rate or vstream.base_rate
            video_fmt = VideoFormat(width=ctx.width, height=ctx.height, fps=float(rate or 30.0))
            vstream.thread_type = "AUTO"
        audio_fmt = AudioFormat(sample_rate=cfg.sample_rate) if astream is not None else None
        self._container, self._astream, self._vstream = container, astream, vstream
        return SourceInfo(name=self.name, audio=audio_fmt, video=video_fmt, live=self.live)

    def start(self, sink: FrameSink) -> None:
        """Start reading on the source's thread (which then owns the container)."""
        self.open()
        self._reading = True
        super().start(sink)

    def _close(self) -> None:
        # The reading thread closes the container itself when it ends; close here only
        # when no thread reads it (never started, or finished), never under a reader.
        if not self._reading or self.finished.is_set():
            self._release()

    def _release(self) -> None:
        with self._lock:
            if self._container is not None:
                self._container.close()
                self._container = None

    # ------------------------------------------------------------------ reading
    def _run(self, sink: FrameSink) -> None:
        try:
            reader = _Reader(self, sink)
            while True:
                ended = reader.read_all()
                if ended == "eos" or self.stopping.is_set():
                    return
                sink.status(
                    SourceStatus(
                        kind="disconnected",
                        source=self.name,
                        message=f"stream lost: {ended}",
                        recoverable=self.config.reconnect_s > 0,
                    )
                )
                if not self._reconnect():
                    return
                sink.status(SourceStatus(kind="reconnected", source=self.name))
                reader.reset_after_reconnect()
        finally:
            self._release()

    def _reconnect(self) -> bool:
        """Reopen a live input for up to `reconnect_s`; True when it came back."""
        deadline = time.monotonic() + self.config.reconnect_s
        self._release()
        while not self.stopping.is_set() and time.monotonic() < deadline:
            try:
                container = self._open_container()
            except SourceError:
                self.stopping.wait(0.2)
                continue
            streams = container.streams  # deliver only what info promised
            a = streams.audio[0] if streams.audio and self.info.audio is not None else None
            v = streams.video[0] if streams.video and self.info.video is not None else None
            with self._lock:
                self._container, self._astream, self._vstream = container, a, v
            return True
        return False


def pace_until(target_ns: int, stopping: threading.Event) -> bool:
    """Sleep until monotonic time reaches `target_ns` (never earlier); False if stopped."""
    while (left := target_ns - time.monotonic_ns()) > 0:
        if stopping.wait(left / 1e9 + 1e-4):
            return False
    return True


class PtsChecker:
    """Checks that one stream's timestamps increase without holes (PyAV-style continuity).

    A gap is a step larger than expected by more than half a frame; a regression is a
    step backwards (or a repeat). Both are reported, never repaired or reordered.
    """

    def __init__(self, *, modality: str, nominal_step_s: float | None) -> None:
        self.modality = modality
        self.nominal_step_s = nominal_step_s
        self.gaps = 0
        self.regressions = 0
        self.reset()

    def reset(self) -> None:
        """Forget the previous frame (a new timeline starts)."""
        self._expected: float | None = None
        self._last: float | None = None

    def check(self, t: float, duration_s: float | None) -> str | None:
        """Record a frame at `t` lasting `duration_s`; return a warning message or None."""
        step = duration_s if duration_s is not None else self.nominal_step_s or 0.0
        problem = None
        if self._last is not None and self._expected is not None:
            if t <= self._last or t < self._expected - 0.5 * step:
                self.regressions += 1
                problem = (
                    f"{self.modality} timestamp went back from {self._last:.3f} s to {t:.3f} s "
                    f"(regression {self.regressions}); frames are kept in arrival order"
                )
            elif t > self._expected + 0.5 * step:
                self.gaps += 1
                problem = (
                    f"{self.modality} gap of {t - self._expected:.3f} s before {t:.3f} s "
                    f"(gap {self.gaps}); the missing span is not filled"
                )
        self._last = t
        self._expected = t + step
        return problem


class _Reader:
    """The demux/decode loop of one MediaSource, with its timing state."""

    def __init__(self, source: MediaSource, sink: FrameSink) -> None:
        self.src = source
        self.sink = sink
        cfg = source.config
        self.resampler = av.AudioResampler(format="flt", layout="mono", rate=cfg.sample_rate)
        self.origin_s: float | None = None
        self.origin_ns = time.monotonic_ns()
        container = source._container
        if not source.live and container is not None and container.start_time is not None:
            self.origin_s = container.start_time / av.time_base
        fps = source.info.video.fps if source.info.video else 30.0
        self.video_pts = PtsChecker(modality="video", nominal_step_s=1.0 / fps)
        self.audio_pts = PtsChecker(modality="audio", nominal_step_s=None)

    def reset_after_reconnect(self) -> None:
        """A reconnected live stream starts a new timeline: rebase origin and checks."""
        self.resampler = av.AudioResampler(
            format="flt", layout="mono", rate=self.src.config.sample_rate
        )
        self.video_pts.reset()
        self.audio_pts.reset()
        self.origin_s = None
        self.origin_ns = time.monotonic_ns()

    def _warn(self, modality: str, message: str) -> None:
        self.sink.status(
            SourceStatus(kind="warning", source=self.src.name, modality=modality, message=message)
        )

    def _stamp(self, t: float) -> tuple[float, int]:
        """(device_time_s, host_ns) of a frame at stream time `t` (seconds of PTS)."""
        if self.origin_s is None:
            self.origin_s = t
        dev = t - self.origin_s
        if self.src.live:
            return dev, time.monotonic_ns()
        host_ns = self.origin_ns + round(dev * 1e9)
        if self.src.config.realtime:
            pace_until(host_ns, self.src.stopping)
        return dev, host_ns

    def read_all(self) -> str:
        """Demux until the end, a stop request or a read failure; returns why it stopped."""
        src = self.src
        streams = [s for s in (src._astream, src._vstream) if s is not None]
        container = src._container
        if container is None:
            return "eos"
        try:
            for packet in container.demux(streams):
                if src.stopping.is_set():
                    return "stopped"
                try:
                    frames = packet.decode()
                except av.error.InvalidDataError as e:
                    self._warn(packet.stream.type, f"undecodable packet skipped: {e}")
                    continue
                for frame in frames:
                    if isinstance(frame, av.AudioFrame):
                        self._on_audio(frame)
                    else:
                        self._on_video(frame)
        except (av.error.ExitError, av.error.EOFError, OSError) as e:
            if not src.live:
                raise
            return f"{type(e).__name__}: {e}"
        if src._astream is not None:
            self._deliver_audio(self.resampler.resample(None))
        return "eos" if not src.live else "stream ended"

    def _on_audio(self, frame: av.AudioFrame) -> None:
        if frame.pts is None:
            self._warn("audio", "audio frame without a timestamp dropped")
            return
        problem = self.audio_pts.check(frame.time, frame.samples / frame.sample_rate)
        if problem:
            self._warn("audio", problem)
        self._deliver_audio(self.resampler.resample(frame))

    def _deliver_audio(self, frames: list[av.AudioFrame]) -> None:
        for out in frames:
            if out.pts is None or out.samples == 0:
                continue
            dev, host_ns = self._stamp(float(out.time))
            samples = out.to_ndarray().reshape(-1)
            self.sink.audio(samples, device_time_s=dev, host_ns=host_ns)

    def _on_video(self, frame: av.VideoFrame) -> None:
        if frame.pts is None:
            self._warn("video", "video frame without a timestamp dropped")
            return
        t = float(frame.time)
        problem = self.video_pts.check(t, None)
        if problem:
            self._warn("video", problem)
        image = frame.to_ndarray(format="bgr24")
        dev, host_ns = self._stamp(t)
        self.sink.video(np.ascontiguousarray(image), device_time_s=dev, host_ns=host_ns)
