"""How MediaSource times a file's frames and gets them out of the decoder in order.

A file is not a clock: its frames carry timestamps that may have holes, run backwards,
or (after a rate change) disagree with the samples they hold, and its video decoder
keeps the last few frames until more video comes. These helpers make what MediaSource
delivers follow the media rather than the demuxer's quirks:

- `PtsChecker` counts and reports a stream's timestamp gaps and regressions (never
  reorders or fills them);
- `SampleClock` times a file's audio by its sample count from an anchor, so that
  misplaced PTS after a rate change do not read as gaps;
- `HeldVideo` drains the frames the video decoder holds when the video pauses or ends
  before the audio, and re-feeds the decoder so that video coming back decodes in full.

Each works on one stream's times (seconds of stream time); stamping them on the host
clock is MediaSource's.
"""

from __future__ import annotations

import av
import av.error


class PtsChecker:
    """Checks that one stream's timestamps increase without holes (PyAV-style continuity).

    A gap is a step larger than expected by more than half a frame; a regression is a
    step backwards, a repeat, or a frame that starts inside the previous one. All are
    counted and reported, never repaired or reordered. Past `report_limit` problems they
    are only counted (one message says so), so a stream with broken timestamps does not
    flood the status channel.
    """

    def __init__(
        self, *, modality: str, nominal_step_s: float | None, report_limit: int = 10
    ) -> None:
        self.modality = modality
        self.nominal_step_s = nominal_step_s
        self.report_limit = report_limit
        self.gaps = 0
        self.regressions = 0
        self.reset()

    def reset(self) -> None:
        """Forget the previous frame (a new timeline starts)."""
        self._expected: float | None = None
        self._last: float | None = None

    @property
    def last(self) -> float | None:
        """Start of the last frame checked (seconds of PTS), or None since a reset."""
        return self._last

    def check(self, t: float, duration_s: float | None) -> str | None:
        """Record a frame at `t` lasting `duration_s`; return a warning message or None."""
        step = duration_s if duration_s is not None else self.nominal_step_s or 0.0
        problem = None
        last, expected = self._last, self._expected
        if last is not None and expected is not None:
            if t <= last:
                self.regressions += 1
                problem = (
                    f"{self.modality} timestamp went back from {last:.3f} s to {t:.3f} s "
                    f"(regression {self.regressions}); frames are kept in arrival order"
                )
            elif t < expected - 0.5 * step:
                self.regressions += 1
                problem = (
                    f"{self.modality} frame at {t:.3f} s starts before the previous one ends "
                    f"({expected:.3f} s) (regression {self.regressions}); frames are kept "
                    "in arrival order"
                )
            elif t > expected + 0.5 * step:
                self.gaps += 1
                problem = (
                    f"{self.modality} gap of {t - expected:.3f} s before {t:.3f} s "
                    f"(gap {self.gaps}); the missing span is not filled"
                )
        self._last = t
        self._expected = t + step
        return self._limited(problem)

    def _limited(self, problem: str | None) -> str | None:
        """`problem`, or None past the report limit (the first one past it says so)."""
        n = self.gaps + self.regressions
        if problem is None or n <= self.report_limit:
            return problem
        if n == self.report_limit + 1:
            return f"{problem}; further {self.modality} timestamp faults are counted, not reported"
        return None


class SampleClock(PtsChecker):
    """Stream times of a file's delivered audio, counted in samples from an anchor.

    A block's time is `anchor + samples delivered since the anchor / rate`, not its PTS:
    demuxers that split one timestamped packet into several frames space those frames by
    the rate the stream opened with (MPEG-TS does, for AAC), so after a rate change the
    PTS run ahead of or behind the samples by up to a packet's length, and the pipeline
    would take that for gaps and overlaps. Only a fresh timestamp (`stamp(fresh=True)`:
    one the demuxer did not derive from the previous frame) is compared with the count;
    one that disagrees by more than `tolerance_s` is a real gap or overlap: it is
    reported (as `PtsChecker` does) and becomes the new anchor.
    """

    def __init__(self, *, rate: int, tolerance_s: float, report_limit: int = 10) -> None:
        self.rate = rate
        self.tolerance_s = tolerance_s
        super().__init__(modality="audio", nominal_step_s=None, report_limit=report_limit)

    def reset(self) -> None:
        """Forget the anchor (a new timeline starts)."""
        super().reset()
        self._anchor: float | None = None
        self._count = 0

    def stamp(self, t: float, samples: int, *, fresh: bool) -> tuple[float, str | None]:
        """Stream time of a block of `samples` whose PTS is `t` (s), and a warning or None."""
        if self._anchor is None:
            self._anchor, self._count = t, 0
        expected = self._anchor + self._count / self.rate
        problem = None
        if fresh and abs(t - expected) > self.tolerance_s:
            if t > expected:
                self.gaps += 1
                problem = (
                    f"audio gap of {t - expected:.3f} s before {t:.3f} s (gap {self.gaps}); "
                    "the missing span is not filled"
                )
            else:
                self.regressions += 1
                problem = (
                    f"audio timestamp went back from {expected:.3f} s to {t:.3f} s "
                    f"(regression {self.regressions}); blocks are kept in arrival order"
                )
            self._anchor, self._count, expected = t, 0, t
        self._count += samples
        return expected, self._limited(problem)


#: Most bytes of video packets kept to re-feed a decoder after a drain (one GOP, usually far
#: less); a longer GOP is not kept, and frames after a pause wait for the next keyframe.
_GOP_LIMIT_BYTES = 64 << 20


class HeldVideo:
    """Gets the frames a file's video decoder holds out of it when the video pauses or ends.

    A decoder with frame threading or B-frame reordering gives frame N only after a few
    more packets. While audio and video interleave that is a few frames' delay; when the
    video stops (a video track shorter than the audio, a pause in it) the held frames
    would come out only at the end of the file, after all the audio, too late for the
    pipeline. Once the audio has run far enough past them (see `MediaConfig`), the
    decoder is drained (decode(None)) and reset (flush_buffers) so that it takes packets
    again.

    A drained frame later than the last packet's decode time could still be preceded by
    a B-frame to come, so it is kept back: delivered once it would be late, or when the
    video ends or comes back with a keyframe. Resetting drops the decoder's reference
    frames, so before video that comes back with a non-keyframe (a pause rather than an
    end) the packets since the last keyframe are decoded again; the frames they give a
    second time are dropped (`keep`), and those kept back are given again in order.
    """

    def __init__(self, stream: av.VideoStream, *, after_s: float) -> None:
        self.stream = stream
        self.after_s = after_s
        self.newest: float | None = None  # newest frame time (pts) since the last keyframe
        self.decoded_to: float | None = None  # decode time (dts) of the last packet
        self.last_out: float | None = None  # time of the last frame delivered
        self.fed = False  # packets went in since the last drain
        self.drained = False  # the decoder was reset and has not had a packet since
        self.kept_back: list[av.VideoFrame] = []  # drained, not yet delivered
        self.gop: list[av.Packet] | None = []  # packets since the last keyframe
        self.gop_bytes = 0
        self.again: set[int] = set()  # pts of the frames re-fed packets give a second time

    def on_audio(self, audio_t: float) -> list[av.VideoFrame]:
        """Video frames to deliver before audio at stream time `audio_t` (s), in order.

        The decoder is drained when the video has paused (the audio half of `after_s`
        past the decode time of its last packet; files interleave far closer) and a
        frame it may hold (one newer than the last delivered) is `after_s` behind.
        """
        out = []
        last = self.last_out
        if (
            self.fed
            and self.newest is not None
            and self.decoded_to is not None
            and (last is None or last < self.newest)
            and audio_t - self.decoded_to > self.after_s / 2
            and (last is None or audio_t - last > self.after_s)
        ):
            out = self._drain()
        while self.kept_back and audio_t - self.kept_back[0].time > self.after_s:
            out.append(self.kept_back.pop(0))
        return [f for f in out if self.keep(f)]

    def _drain(self) -> list[av.VideoFrame]:
        """The held frames no later packet can precede; the rest go to `kept_back`."""
        ctx = self.stream.codec_context
        try:
            frames = ctx.decode(None)
        except av.error.InvalidDataError:
            frames = []  # damaged data: the held frames are lost, as at the end of a file
        ctx.flush_buffers()
        self.fed, self.drained = False, True
        safe = []
        for f in frames:
            f.time_base = self.stream.time_base  # a drain has no packet to take it from
            if f.time is None:  # no timestamp: delivered (and dropped there) as it is
                safe.append(f)
                continue
            later = bool(self.kept_back) or f.time > (self.decoded_to or 0.0) + 1e-6
            (self.kept_back if later else safe).append(f)
        return safe

    def on_video(self, packet: av.Packet) -> tuple[list[av.VideoFrame], bool]:
        """Note a video packet about to be decoded, re-feeding the decoder after a drain.

        Returns:
            Frames to deliver before the packet's own, in order, and whether the packet
            follows a drain without the packets it needs (its frames may be missing until
            the next keyframe).
        """
        out: list[av.VideoFrame] = []
        damaged = False
        if not packet.size:  # the end of the file: what was kept back is all there is
            out, self.kept_back = self.kept_back, []
            return [f for f in out if self.keep(f)], False
        if self.drained:
            self.again = set()  # the drain gave every frame; what is left never comes
            if packet.is_keyframe or self.gop is None:
                damaged = not packet.is_keyframe
                out, self.kept_back = self.kept_back, []
            else:  # decoded again from the keyframe, the kept-back frames come in order
                skip = {f.pts for f in self.kept_back}
                self.kept_back = []
                self.again = {p.pts for p in self.gop if p.pts is not None} - skip
                for p in self.gop:
                    try:
                        out += p.decode()
                    except av.error.InvalidDataError:
                        continue  # skipped the first time too
            self.drained = False
        self._note(packet)
        return [f for f in out if self.keep(f)], damaged

    def _note(self, packet: av.Packet) -> None:
        t = float(packet.pts * packet.time_base) if packet.pts is not None else None
        dts = packet.dts if packet.dts is not None else packet.pts
        if dts is not None:
            self.decoded_to = float(dts * packet.time_base)
        if packet.is_keyframe:
            self.gop, self.gop_bytes, self.newest = [packet], packet.size, t
        elif self.gop is not None:
            self.gop.append(packet)
            self.gop_bytes += packet.size
            if self.gop_bytes > _GOP_LIMIT_BYTES:
                self.gop = None
        if t is not None and (self.newest is None or t > self.newest):
            self.newest = t
        self.fed = True

    def keep(self, frame: av.VideoFrame) -> bool:
        """False for a frame a re-fed packet gave a second time; notes the ones kept."""
        if frame.pts in self.again:
            self.again.discard(frame.pts)
            return False
        if frame.pts is not None and frame.time is not None:
            self.last_out = float(frame.time)
        return True
