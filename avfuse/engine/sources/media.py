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

import math
import os
import threading
import time
from dataclasses import dataclass, field, fields

import av
import av.error

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
    open_error,
)
from avfuse.engine.sources.media_reader import MediaReader
from avfuse.engine.sources.playout import PlayoutBuffer
from avfuse.errors import SourceError, StreamFormatError, UsageError
from avfuse.redact import redact

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
            reader = MediaReader(self, sink)
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
