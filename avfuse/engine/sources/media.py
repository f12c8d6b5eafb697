"""MediaSource: audio and video from any file or URL FFmpeg reads, through PyAV.

One container, demuxed on one thread, so audio and video keep the relation their
PTS give them: the stream's origin (its first timestamp) is shared by both
modalities and `device_time_s` is PTS minus that origin. Audio is resampled to the
requested rate, mono float32; video is decoded to bgr24 at the size the stream opened
with. A stream whose format changes mid-way (a resolution switch, a new audio rate or
channel layout, as concatenated or adaptive streams do) is reported once per change
("format_changed") and converted back to that format, because the rings downstream
are sized once.

Files are not live: they are delivered as fast as the sink takes them, stamped on a
virtual host clock (`origin_ns + PTS offset`, `origin_ns` the monotonic time at
start), or paced to wall time with `realtime=True` (decoded in bursts, each frame
delivered at its time: `playout`). A file's audio is timed by its
sample count from the first timestamp, so that a demuxer's misplaced PTS after a
rate change do not read as gaps, and frames the video decoder holds are drained when
the video pauses or ends before the audio (both in `media_timing`). Network
URLs are live: each frame is stamped with its arrival time and the pipeline's
ClockModel fits PTS to host time. PTS gaps and regressions are reported as warnings,
never reordered.

The location is opened as given; everything printed (the source name, messages,
errors) shows it through `avfuse.redact`, so URL credentials never leave the process.
Why an input cannot be opened or read is worked out in `media_errors`.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from dataclasses import dataclass, field, fields

import av
import av.error
import numpy as np
from av.video.reformatter import VideoReformatter

from avfuse.engine.heap import trim_heap
from avfuse.engine.sources.base import (
    AudioFormat,
    FrameSink,
    Source,
    SourceInfo,
    SourceStatus,
    VideoFormat,
)
from avfuse.engine.sources.media_errors import (
    check_file,
    check_streams,
    file_read_error,
    open_error,
    read_error,
    truncated_warning,
)
from avfuse.engine.sources.media_timing import HeldVideo, PtsChecker, SampleClock
from avfuse.engine.sources.playout import PlayoutBuffer
from avfuse.errors import SourceError, StreamFormatError, UsageError
from avfuse.redact import redact

#: URL schemes read as live network streams (stamped by arrival time).
#: a live input's PTS going back by more than this is a new timeline (a sender restarted
#: on the same connection, a wrapped 33-bit MPEG-TS clock), not B-frame reordering
TIMELINE_RESTART_S = 1.0
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
        video_drain_after_s: for files, how far (in stream time) the audio read may run
            past a video frame the decoder still holds before the decoder is drained to
            give it up. Frame threading and B-frames keep the last few decoded frames
            until more video comes; when the video pauses or ends before the audio, they
            would otherwise arrive only at the end of the file, too late for the
            pipeline. The video counts as paused once the audio is half this past the
            decode time of its last packet.
        audio_gap_tolerance_s: for files, how far an audio timestamp may disagree with
            the time counted from the samples delivered before it is taken as a real gap
            or overlap (reported once; stamping goes on from that timestamp). Audio is
            stamped by sample count because demuxers space packets by the rate a stream
            opened with, which is wrong after a rate change; smaller disagreements are
            such spacing or timestamp rounding, not missing audio.
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
    video_drain_after_s: float = 1.0
    audio_gap_tolerance_s: float = 0.1

    def __repr__(self) -> str:
        """The fields, with credentials in `location` masked (configs end up in logs)."""
        items = (
            f"{f.name}={(redact(v) if f.name == 'location' else v)!r}"
            for f in fields(self)
            for v in [getattr(self, f.name)]
        )
        return f"MediaConfig({', '.join(items)})"


class MediaSource(Source):
    """Audio and/or video from one file or network stream (see the module docstring)."""

    def __init__(self, location: str | os.PathLike[str], *, name: str | None = None, **kw) -> None:
        """Create the source; nothing is opened until `open()`/`start()`.

        Args:
            location: file path or URL (udp://, rtp://, rtsp://, http(s)://, srt://...).
            name: name used in status records; defaults to the location, credentials
                masked (see `avfuse.redact`).
            **kw: the remaining `MediaConfig` fields (sample_rate, audio, video, ...).
        """
        location = os.fspath(location)
        #: the location as shown to people: URL passwords and secret query values masked
        self.shown = redact(location)
        super().__init__(name=redact(name) if name else self.shown)
        try:
            self.config = MediaConfig(location=location, **kw)
        except TypeError as e:
            raise UsageError(f"media source: {e}: use the fields of MediaConfig") from None
        if self.config.sample_rate <= 0:
            raise StreamFormatError(
                f"sample_rate {self.config.sample_rate} is not positive: ask for e.g. 16000"
            )
        for name in ("video_drain_after_s", "audio_gap_tolerance_s"):
            if not getattr(self.config, name) > 0:
                raise UsageError(
                    f"{name}={getattr(self.config, name)!r} is not a positive number of "
                    f"seconds: leave it out for the default ({getattr(MediaConfig, name)})"
                )
        if not (self.config.audio or self.config.video):
            raise StreamFormatError(
                f"{self.shown}: both audio=False and video=False: enable at least one modality"
            )
        url = is_url(location)
        self.live = self.config.live if self.config.live is not None else url
        self._is_url = url
        self._container: av.container.InputContainer | None = None
        self._astream: av.AudioStream | None = None
        self._vstream: av.VideoStream | None = None
        self._lock = threading.Lock()
        self._reading = False
        #: the reader's playout buffer (a file played in real time), once reading started
        self.playout: PlayoutBuffer | None = None

    # ------------------------------------------------------------------ opening
    def _open_container(self) -> av.container.InputContainer:
        cfg = self.config
        if not self._is_url:
            check_file(cfg.location, self.shown)
        options = dict(cfg.options)
        if self.live:
            options.setdefault("fflags", "nobuffer")
        if cfg.location.startswith(("udp://", "rtp://")):
            # a large socket buffer and FFmpeg's receive thread: packets that arrive
            # while this process is busy are kept, not dropped by the kernel (a lost
            # audio packet decodes as a glitch that looks like speech starting)
            options.setdefault("buffer_size", str(4 << 20))
            options.setdefault("fifo_size", str(50_000))
            options.setdefault("overrun_nonfatal", "1")
        if "listen" in options.get("rtsp_flags", ""):  # we are the RTSP server: bound the wait
            options.setdefault("listen_timeout", str(max(1, math.ceil(cfg.open_timeout_s))))
        try:
            return av.open(
                cfg.location,
                mode="r",
                options=options,
                timeout=(cfg.open_timeout_s, cfg.read_timeout_s),
            )
        except av.error.FFmpegError as e:
            err = open_error(e, cfg, self.shown, is_url=self._is_url)
            # The FFmpeg error names the location as given: chain it only when that is safe.
            raise err from (e if self.shown == cfg.location else None)

    def _open(self) -> SourceInfo:
        cfg = self.config
        container = self._open_container()
        astream = container.streams.audio[0] if container.streams.audio and cfg.audio else None
        vstream = container.streams.video[0] if container.streams.video and cfg.video else None
        try:
            check_streams(container, astream, vstream, cfg, self.shown)
        except SourceError:
            container.close()
            raise
        video_fmt = None
        if vstream is not None:
            ctx = vstream.codec_context
            rate = vstream.average_rate or vstream.guessed_rate or vstream.base_rate
            video_fmt = VideoFormat(width=ctx.width, height=ctx.height, fps=float(rate or 30.0))
            _set_decoder_threads(vstream, live=self.live, realtime=cfg.realtime)
        audio_fmt = AudioFormat(sample_rate=cfg.sample_rate) if astream is not None else None
        self._container, self._astream, self._vstream = container, astream, vstream
        return SourceInfo(
            name=self.name, audio=audio_fmt, video=video_fmt, live=self.live,
            arrival_stamped=self.live, paced=self.live or cfg.realtime,
        )  # fmt: skip

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
                wait_s = self.config.reconnect_s
                then = f"reconnecting for up to {wait_s:g} s" if wait_s > 0 else "not reconnecting"
                sink.status(
                    SourceStatus(
                        kind="disconnected",
                        source=self.name,
                        message=f"stream lost: {ended}; {then}",
                        recoverable=wait_s > 0,
                    )
                )
                if not self._reconnect():
                    return
                sink.status(SourceStatus(kind="reconnected", source=self.name))
                reader.reset_after_reconnect()
                # the old container's buffers are freed: give their pages back (see heap)
                trim_heap()
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
            if v is not None:
                _set_decoder_threads(v, live=True)
            with self._lock:
                self._container, self._astream, self._vstream = container, a, v
            return True
        return False


#: a file played in real time resamples its audio this many decoded frames at a time
AUDIO_BATCH = 8

#: a file played in real time is decoded on the reader's thread up to this many pixels
#: a frame (1280x720): one core decodes that well above real time, and FFmpeg's frame
#: and slice threads cost more CPU than they save at 1x speed
ONE_THREAD_MAX_PIXELS = 1280 * 720


def decoder_threading(*, live: bool, realtime: bool, width: int, height: int) -> str:
    """FFmpeg's thread type for a video decoder ("SLICE", "NONE" or "AUTO").

    Frame threading decodes N frames at once and so holds N - 1 of them back: on two cores
    a live stream's frames came out ~67 ms late, and only on its first connection (a
    reconnected one got FFmpeg's default), which moved its wait for audio by as much from
    one connection to the next; a live input gets slice threads. A file played at full
    speed wants the throughput (frame and slice threads). A file played in real time
    needs only 1x: a 320x240 H.264 file decoded in the playout's bursts cost 1.4 % of a
    core on the reader's thread alone against 1.7-2.0 % with FFmpeg's threads (2 cores,
    four runs each), so up to `ONE_THREAD_MAX_PIXELS` it gets none.
    """
    if live:
        return "SLICE"
    if realtime and width * height <= ONE_THREAD_MAX_PIXELS:
        return "NONE"
    return "AUTO"


def _set_decoder_threads(
    vstream: av.video.stream.VideoStream, *, live: bool, realtime: bool = False
) -> None:
    ctx = vstream.codec_context
    vstream.thread_type = decoder_threading(
        live=live, realtime=realtime, width=ctx.width or 0, height=ctx.height or 0
    )


class _Reader:
    """The demux/decode loop of one MediaSource, with its timing and format state."""

    def __init__(self, source: MediaSource, sink: FrameSink) -> None:
        self.src = source
        # A file played in real time goes through a playout buffer: decoded in bursts,
        # each frame still delivered at its host time (see `playout`).
        self.playout = (
            PlayoutBuffer(
                sink,
                source.stopping,
                sample_rate=source.config.sample_rate,
                not_awaited=getattr(sink, "frames_not_awaited", None),
                before_wait=self._flush_audio,
            )
            if source.config.realtime and not source.live
            else None
        )
        if self.playout is not None:
            take = getattr(sink, "take_playout", None)
            if take is not None:
                take(self.playout)  # the consumer's thread may deliver it
            source.playout = self.playout
        self.sink: FrameSink = self.playout if self.playout is not None else sink
        self.resampler: av.AudioResampler | None = None  # made for the first audio frame
        self.audio_in: tuple[int, str, str] | None = None  # (rate, layout, sample format)
        self.origin_s: float | None = None
        self.origin_ns = time.monotonic_ns()
        self.end_s = 0.0  # furthest stream time delivered (from the origin), for files
        container = source._container
        if not source.live and container is not None and container.start_time is not None:
            self.origin_s = container.start_time / av.time_base
        vfmt = source.info.video
        self.out_size = (vfmt.width, vfmt.height) if vfmt else (0, 0)
        self.in_size = self.out_size  # size of the last decoded frame
        # One scaler for the reader's life: `frame.reformat` makes a new SwsContext per
        # frame, and FFmpeg starts and joins its slice threads each time (~0.7 ms a frame).
        # One thread: frames this small convert faster than a thread pool wakes up.
        self.scaler = VideoReformatter()
        fps = vfmt.fps if vfmt else 30.0
        self.video_pts = PtsChecker(modality="video", nominal_step_s=1.0 / fps)
        cfg, vstream = source.config, source._vstream
        self.held = (  # files only: a live input's frames are stamped as they come
            HeldVideo(vstream, after_s=cfg.video_drain_after_s)
            if vstream is not None and source._astream is not None and not source.live
            else None
        )
        # Live audio is stamped by PTS (the pipeline fits them to arrival times); a file's
        # by sample count (see SampleClock), from the frames' PTS where they are fresh.
        self.audio_pts = PtsChecker(modality="audio", nominal_step_s=None)
        self.audio_clock = (
            None
            if source.live
            else SampleClock(rate=cfg.sample_rate, tolerance_s=cfg.audio_gap_tolerance_s)
        )
        self.audio_prev: tuple[int, int] | None = None  # (pts, duration) of the last frame in
        self.audio_fresh = False  # a fresh PTS came in that no delivered block has used yet
        # A file played out decodes ahead, so its audio is resampled `AUDIO_BATCH` frames
        # at a time (the same samples; `_flush_audio`); a live input's frame by frame.
        self.batching = self.playout is not None
        self._batch: list[av.AudioFrame] = []

    def reset_after_reconnect(self) -> None:
        """A reconnected live stream starts a new timeline: rebase origin and checks.

        The resampler's tail belongs to the old timeline and is dropped; the input
        formats seen are kept, so a stream that comes back changed is reported.
        """
        self.resampler = None
        self.video_pts.reset()
        self.audio_pts.reset()
        if self.audio_clock is not None:
            self.audio_clock.reset()
        self.audio_prev = None
        self.origin_s = None
        self.origin_ns = time.monotonic_ns()

    def _restarted(self, checker: PtsChecker, t: float) -> bool:
        """A live input whose PTS went back by more than `TIMELINE_RESTART_S` started a new
        timeline on the same connection (its sender restarted within the read timeout):
        handled as a reconnect, so the clocks refit from the new timeline's first points.
        Without this the old fit mapped the new PTS seconds into the past (negative stream
        times, a fitted drift of hundreds of ppm, false late-audio advice)."""
        last = checker.last
        if not self.src.live or last is None or last - t <= TIMELINE_RESTART_S:
            return False
        self._status(
            "reconnected",
            None,
            f"the {checker.modality} timestamps went back from {last:.3f} s to {t:.3f} s: "
            "the sender restarted its stream; its clocks are refitted from here",
        )
        self.reset_after_reconnect()
        return True

    def _status(self, kind: str, modality: str | None, message: str) -> None:
        self._flush_audio()  # a status keeps its place after the audio decoded before it
        self.sink.status(
            SourceStatus(
                kind=kind,  # type: ignore[arg-type]
                source=self.src.name,
                modality=modality,  # type: ignore[arg-type]
                message=message,
            )
        )

    def _warn(self, modality: str | None, message: str) -> None:
        self._status("warning", modality, message)

    def _stamp(self, t: float) -> tuple[float, int]:
        """(device_time_s, host_ns) of a frame at stream time `t` (seconds of PTS)."""
        if self.origin_s is None:
            self.origin_s = t
        dev = t - self.origin_s
        if self.src.live:
            return dev, time.monotonic_ns()
        return dev, self.origin_ns + round(dev * 1e9)

    def read_all(self) -> str:
        """Demux until the end, a stop request or a read failure; returns why it stopped.

        Raises:
            SourceError: a file cannot be read on (live inputs return the reason instead).
        """
        src = self.src
        streams = [s for s in (src._astream, src._vstream) if s is not None]
        container = src._container
        if container is None:
            return "eos"
        try:
            for packet in container.demux(streams):
                if src.stopping.is_set():
                    return "stopped"
                if self.held is not None:
                    self._before_packet(packet, self.held)
                try:
                    frames = packet.decode()
                except av.error.InvalidDataError:
                    pts, tb = packet.pts, packet.time_base
                    at = f" at {float(pts * tb):.3f} s" if pts is not None and tb else ""
                    kind = packet.stream.type
                    self._warn(kind, f"undecodable {kind} packet{at} skipped (damaged data)")
                    continue
                for frame in frames:
                    if isinstance(frame, av.AudioFrame):
                        self._on_audio(frame)
                    elif self.held is None or self.held.keep(frame):
                        self._on_video(frame)
                if self.playout is not None and not self.playout.pump():
                    return "stopped"
        except (av.error.FFmpegError, OSError) as e:
            if src.live:
                return read_error(e, src.config)
            if self.playout is not None:  # what was read before the error is delivered
                with contextlib.suppress(av.error.FFmpegError, ValueError):
                    self._flush_audio()
                self.playout.finish()
            raise file_read_error(e, src.shown, self.end_s) from None
        if self.resampler is not None:
            self._flush_audio()
            self._deliver_audio(self.resampler.resample(None))
        if self.playout is not None and not self.playout.finish():
            return "stopped"
        if src.live:
            return "the sender ended the stream"
        short = truncated_warning(streams, self.origin_s or 0.0, self.end_s, src.shown)
        if short:
            self._warn(None, short)
        return "eos"

    def _before_packet(self, packet: av.Packet, held: HeldVideo) -> None:
        """Deliver the frames the video decoder held, before audio or video past them."""
        damaged = False
        if packet.stream.type == "audio":
            if packet.pts is None:
                return
            frames = held.on_audio(float(packet.pts * packet.time_base))
        else:
            frames, damaged = held.on_video(packet)
        for frame in frames:
            self._on_video(frame)
        if damaged:
            at = float(packet.pts * packet.time_base) if packet.pts is not None else self.end_s
            self._warn(
                "video",
                f"video resumed at {at:.3f} s without a keyframe after a pause, and its "
                "keyframe is too far back to decode again: frames until the next keyframe "
                "may be missing",
            )

    # ------------------------------------------------------------------ audio
    def _on_audio(self, frame: av.AudioFrame) -> None:
        if frame.pts is None:
            self._warn("audio", "audio frame without a timestamp dropped")
            return
        if self.audio_clock is None:
            self._restarted(self.audio_pts, frame.time)
            problem = self.audio_pts.check(frame.time, frame.samples / frame.sample_rate)
            if problem:
                self._warn("audio", problem)
        else:  # fresh: not the demuxer's previous PTS + duration, so it says something new
            prev, self.audio_prev = self.audio_prev, (frame.pts, frame.duration)
            if prev is None or not prev[1] or frame.pts != prev[0] + prev[1]:
                self._flush_audio()  # the frames before the discontinuity go first
                self.audio_fresh = True
        fmt = (frame.sample_rate, frame.layout.name, frame.format.name)
        if fmt != self.audio_in:
            self._audio_changed(fmt)
        elif self.resampler is None:
            self.resampler = self._new_resampler()
        assert self.resampler is not None  # made just above
        if self.batching:
            self._batch.append(frame)
            if len(self._batch) >= AUDIO_BATCH:
                self._flush_audio()
            return
        self._deliver_audio(self.resampler.resample(frame), fresh=True)

    def _flush_audio(self) -> None:
        """Resample the held frames as one (they are contiguous and of one format).

        One resampler call for 8 AAC frames instead of 8: measured back to back on a
        48 kHz AAC track, 36 -> 18 us a frame, with the same output samples. Called
        when the batch is full, at a discontinuity, a format change, a status, the end
        of a burst (`PlayoutBuffer.before_wait`) and the end of the file.
        """
        batch = self._batch
        if not batch:
            return
        self._batch = []  # first: a warning raised below flushes nothing twice
        resampler = self.resampler
        assert resampler is not None  # a frame is held only once it exists
        first = batch[0]
        if len(batch) > 1:
            try:
                joined = av.AudioFrame.from_ndarray(
                    np.concatenate([f.to_ndarray() for f in batch], axis=1),
                    format=first.format.name,
                    layout=first.layout.name,
                )
            except (ValueError, TypeError, av.error.FFmpegError):
                joined = None  # a layout from_ndarray cannot build: one call each
            if joined is not None:
                joined.sample_rate = first.sample_rate
                joined.pts = first.pts
                joined.time_base = first.time_base
                batch = [joined]
        for frame in batch:
            self._deliver_audio(resampler.resample(frame), fresh=True)

    def _new_resampler(self) -> av.AudioResampler:
        return av.AudioResampler(format="flt", layout="mono", rate=self.src.config.sample_rate)

    def _audio_changed(self, fmt: tuple[int, str, str]) -> None:
        """A new input format: flush the old resampler and make one for the new format.

        PyAV's AudioResampler is fixed by its first frame: another rate or layout raises
        ValueError, and one that started as a passthrough passes every later frame on
        unconverted. A fresh resampler per input format keeps the output at the asked rate.
        """
        self._flush_audio()  # held frames are of the old format
        old, self.audio_in = self.audio_in, fmt
        if self.resampler is not None:
            self._deliver_audio(self.resampler.resample(None))
        self.resampler = self._new_resampler()
        if old is None:
            return
        same = old[:2] == fmt[:2]
        before, after = (f"{r} Hz {lay}" + (f" {f}" if same else "") for r, lay, f in (old, fmt))
        self._status(
            "format_changed",
            "audio",
            f"audio changed from {before} to {after}; it is resampled to "
            f"{self.src.config.sample_rate} Hz mono as before",
        )

    def _deliver_audio(self, frames: list[av.AudioFrame], *, fresh: bool = False) -> None:
        """Stamp and deliver resampled blocks; `fresh`: they come from the frame just in
        (not a resampler's flushed tail), so a fresh PTS it brought may be checked."""
        for out in frames:
            if out.pts is None or out.samples == 0:
                continue
            t = float(out.time)
            if self.audio_clock is not None:
                t, problem = self.audio_clock.stamp(
                    t, out.samples, fresh=fresh and self.audio_fresh
                )
                self.audio_fresh = self.audio_fresh and not fresh
                if problem:
                    self._warn("audio", problem)
            dev, host_ns = self._stamp(t)
            samples = out.to_ndarray().reshape(-1)
            self.end_s = max(self.end_s, dev + out.samples / out.sample_rate)
            self.sink.audio(samples, device_time_s=dev, host_ns=host_ns)

    # ------------------------------------------------------------------ video
    def _on_video(self, frame: av.VideoFrame) -> None:
        if frame.pts is None:
            self._warn("video", "video frame without a timestamp dropped")
            return
        t = float(frame.time)
        self._restarted(self.video_pts, t)
        problem = self.video_pts.check(t, None)
        if problem:
            self._warn("video", problem)
        size = (frame.width, frame.height)
        if size != self.in_size:
            self._video_changed(size)
        w, h = self.out_size
        # One swscale pass scales (when the size changed) and converts to bgr24.
        image = self.scaler.reformat(frame, width=w, height=h, format="bgr24", threads=1)
        image = image.to_ndarray()
        dev, host_ns = self._stamp(t)
        self.end_s = max(self.end_s, dev + self.video_pts.nominal_step_s)
        self.sink.video(np.ascontiguousarray(image), device_time_s=dev, host_ns=host_ns)

    def _video_changed(self, size: tuple[int, int]) -> None:
        (ow, oh), (nw, nh), (w, h) = self.in_size, size, self.out_size
        self.in_size = size
        scaled = (
            f"frames are scaled to {w}x{h}, the size the stream opened with"
            if size != self.out_size
            else "the size the stream opened with; frames are no longer scaled"
        )
        self._status(
            "format_changed", "video", f"video size changed from {ow}x{oh} to {nw}x{nh}; {scaled}"
        )
