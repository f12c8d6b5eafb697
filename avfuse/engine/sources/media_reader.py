"""The demux/decode loop of one `MediaSource`, with its timing and format state.

`MediaReader.read_all` demuxes and decodes until the end, a stop or a read failure,
stamps every frame (`media_timing`), converts frames to the size and format the
stream opened with and resamples audio to the asked rate. A file played in real time
goes through a `PlayoutBuffer` (decoded in bursts, each frame delivered at its time);
its audio is then resampled `AUDIO_BATCH` frames at a time.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING

import av
import av.error
import numpy as np
from av.video.reformatter import VideoReformatter

from avfuse.engine.sources.base import FrameSink, SourceStatus
from avfuse.engine.sources.media_errors import file_read_error, read_error, truncated_warning
from avfuse.engine.sources.media_timing import HeldVideo, PtsChecker, SampleClock
from avfuse.engine.sources.playout import PlayoutBuffer

if TYPE_CHECKING:
    from avfuse.engine.sources.media import MediaSource

#: a live input's PTS going back by more than this is a new timeline (a sender restarted
#: on the same connection, a wrapped 33-bit MPEG-TS clock), not B-frame reordering
TIMELINE_RESTART_S = 1.0
#: a file played in real time resamples its audio this many decoded frames at a time
AUDIO_BATCH = 8


class MediaReader:
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
