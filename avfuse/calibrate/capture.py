"""Reading a source the way `avfuse run` does, keeping what the engine stamped on it.

The point of calibrating through avfuse rather than with ffprobe is to measure the
offset the engine itself sees: the sources are opened by the same code (`api.build_streams`
with the specs `avfuse run` takes), the stream is built by the engine's own
`build_stream` (its ring sizes, back-pressure for files, arrival-time fitting for
network streams, one timeline for a container's audio and video), and every sample and
frame goes through the engine's `Ingest` and its clock models. This module only plays
the pipeline's part at the other end of the rings: it takes each frame (its fitted host
time and mean brightness) and reads the audio as it arrives, and for each audio read
keeps the audio clock fit that was current when each frame was taken: the aligner
maps a frame's time to a sample index once, when it takes the frame, through the fit of
that moment, so that is the fit that decides which audio the frame is served.

No model is loaded and nothing is aligned: the A/V offset is set aside for the
measurement, which is of the raw chain.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from avfuse.engine.clock import ClockFit
from avfuse.engine.control import Doorbell, StopToken
from avfuse.engine.ingest import Ingest
from avfuse.engine.ingest_port import IngestPort
from avfuse.engine.pipeline_config import PipelineConfig
from avfuse.engine.sources.base import Source
from avfuse.engine.stream_build import build_stream
from avfuse.errors import SourceError, UsageError

#: audio rate the sources deliver (the bundled model's, which `avfuse run` opens them at)
SAMPLE_RATE = 16000
#: live sources are read this long unless told otherwise (s)
LIVE_DEFAULT_S = 20.0
#: every n-th pixel in each direction is averaged for a frame's brightness
_STRIDE = 4


@dataclass(frozen=True, kw_only=True)
class Capture:
    """What the engine delivered, on its own clock.

    Attributes:
        name: the stream's name (credentials masked).
        live: whether a device or network paced the stream.
        fps: the frame rate the video source declared.
        frame_ns: fitted host time (ns) of every frame taken, as the ring holds it.
        frame_fits: the audio clock fit current when each frame was taken (the first fit
            for frames taken before any audio).
        luma: each frame's mean brightness, 0 (black) to 1 (white).
        audio: the samples read, float32 mono, from absolute index `audio_start`.
        audio_valid: False where the ring had no sample (a capture gap).
        audio_start: absolute sample index of `audio[0]`.
        sample_rate: audio rate.
        read_stops: absolute index one past each audio read.
        read_fits: the audio clock fit current at each read.
        origin_ns: stream time 0 (fitted host time of the first sample or frame).
        notes: warnings and faults the sources reported, one line each.
        audio_lost: samples overwritten before they were read (should be 0).
        video_lost: frames overwritten before they were taken (live sources only).
    """

    name: str
    live: bool
    fps: float
    frame_ns: np.ndarray
    frame_fits: tuple[ClockFit, ...]
    luma: np.ndarray
    audio: np.ndarray
    audio_valid: np.ndarray
    audio_start: int
    sample_rate: int
    read_stops: np.ndarray
    read_fits: tuple[ClockFit, ...]
    origin_ns: int
    notes: tuple[str, ...] = field(default_factory=tuple)
    audio_lost: int = 0
    video_lost: int = 0

    def audio_host_ns(self, index: float) -> float:
        """Host ns of a fractional absolute sample index, through the fit current when it
        was read (the first read that reached it)."""
        k = int(np.searchsorted(self.read_stops, index, side="right"))
        fit = self.read_fits[min(k, len(self.read_fits) - 1)]
        return float(fit.to_host(index / self.sample_rate))

    def served_offset_ns(self, frame: int, index: float) -> float:
        """The A/V offset at which the aligner would end frame `frame`'s audio window at
        sample `index`: the sample's host time through the fit of the frame's moment,
        less the frame's time."""
        fit = self.frame_fits[frame]
        return float(fit.to_host(index / self.sample_rate)) - float(self.frame_ns[frame])

    @property
    def seconds(self) -> float:
        """Stream seconds covered by the frames taken."""
        if self.frame_ns.size == 0:
            return 0.0
        return float(self.frame_ns[-1] - self.origin_ns) / 1e9


class _Reader:
    """The consumer end of one stream's rings (the pipeline's part, without a model)."""

    def __init__(self, stream_ingest: Ingest) -> None:
        self.ing = stream_ingest
        self.frame_ns: list[int] = []
        self.frame_fits: list[ClockFit | None] = []
        self.luma: list[float] = []
        self.chunks: list[np.ndarray] = []
        self.valid: list[np.ndarray] = []
        self.stops: list[int] = []
        self.fits: list[ClockFit] = []
        self.next_index = 0
        fmt = stream_ingest.video_format
        self.rows = fmt.height if fmt.pixel_format in ("nv12", "i420") else None

    def drain(self) -> bool:
        """Take every new frame and audio sample; True when anything was new."""
        return self._frames() | self._audio()

    def _frames(self) -> bool:
        ring = self.ing.frame_ring
        got = False
        fit = self.ing.audio_clock.fit  # what the aligner would map these frames through
        while (seq := ring.take()) >= 0:
            view = ring.view(seq)
            plane = view[: self.rows] if self.rows is not None else view
            level = float(plane[::_STRIDE, ::_STRIDE].mean()) / 255.0
            if ring.valid(seq):  # not overwritten while it was read
                self.frame_ns.append(ring.host_ns(seq))
                self.frame_fits.append(fit)
                self.luma.append(level)
            ring.release(seq)
            got = True
        if got:
            self.ing.released()
        return got

    def _audio(self) -> bool:
        ring, clock = self.ing.audio_ring, self.ing.audio_clock
        head = ring.head
        if head <= self.next_index:
            return False
        fit = clock.fit
        out = np.empty(head - self.next_index, np.float32)
        res = ring.read(self.next_index, out)
        ok = np.zeros(out.shape[0], bool)
        span = res.last_valid - res.first_valid + 1
        if res.valid_samples and res.valid_samples == span:  # one valid run, holes around
            ok[res.first_valid - self.next_index : res.last_valid + 1 - self.next_index] = True
        self.chunks.append(out)
        self.valid.append(ok)
        if fit is not None:
            self.stops.append(head)
            self.fits.append(fit)
        self.next_index = head
        self.ing.audio_floor = head  # what a file's reader may overwrite now
        self.ing.released()
        return True


def _one_stream(sources: Sequence[str], audio: str | None, video: str | None) -> list[Source]:
    from avfuse.api import build_streams

    if len(sources) > 1 or (sources and (audio or video)):
        raise UsageError(
            "calibrate measures one capture chain: give one --source, or --audio with --video "
            "(or --camera with --mic)"
        )
    streams = build_streams(
        sources=list(sources), audio=audio, video=video, sample_rate=SAMPLE_RATE
    )
    entry = streams[0]
    return [entry] if isinstance(entry, Source) else list(entry)


def capture(
    *,
    sources: Sequence[str] = (),
    audio: str | None = None,
    video: str | None = None,
    duration_s: float | None = None,
    stop: StopToken | None = None,
) -> Capture:
    """Read one stream through the engine and keep its frame times, brightness and audio.

    Args:
        sources: one `avfuse run --source` spec (a file, a URL, camera:N, ...).
        audio, video: or the two halves of the stream (`--audio`, `--video`).
        duration_s: stream seconds to read (None: a file to its end, a live source
            `LIVE_DEFAULT_S`).
        stop: ends the read early (a signal); what was read is kept.

    Raises:
        UsageError: more than one stream, or a stream without both audio and video.
        SourceError: a source cannot be opened (the engine's own message and fix).
    """
    group = _one_stream(sources, audio, video)
    bell = Doorbell()
    stream = build_stream(
        index=0, sources=group, manifests=[], config=PipelineConfig(), bell=bell, capture_video=True
    )
    ing = stream.ingest
    infos = [s.info for s in group]
    a_src = next((i for i, inf in enumerate(infos) if inf.audio is not None), None)
    v_src = next((i for i, inf in enumerate(infos) if inf.video is not None), None)
    if a_src is None or v_src is None:
        missing = "audio" if a_src is None else "video"
        for s in group:
            s.stop()
        raise UsageError(
            f"{stream.name} has no {missing}: calibration needs the pattern's picture and its "
            f"sound; give a source with both, or add --{missing} SRC"
        )
    live = ing.live
    if duration_s is None and live:
        duration_s = LIVE_DEFAULT_S
    vfmt = ing.video_format
    reader = _Reader(ing)
    seen: dict[str, int] = {}  # source messages, counted (a stream may repeat one)
    token = stop or StopToken()
    token.attach(bell)
    ports = [IngestPort(ing, audio=i == a_src, video=i == v_src) for i in range(len(group))]
    started = time.monotonic()
    try:
        for s, p in zip(group, ports, strict=True):
            s.start(p)
        while True:
            bell.clear()
            worked = reader.drain()
            while ing.statuses:
                st = ing.statuses.popleft()
                if st.kind not in ("opened", "eos", "reconnected"):
                    key = f"{st.kind}: {st.message or st.kind}"
                    seen[key] = seen.get(key, 0) + 1
            if token.requested or all(s.finished.is_set() for s in group):
                reader.drain()
                break
            if duration_s is not None:
                if live and time.monotonic() - started >= duration_s:
                    break
                if reader.frame_ns and ing.stream_time_s(reader.frame_ns[-1]) >= duration_s:
                    break
            if not worked:
                bell.wait(1.0)
    finally:
        token.detach(bell)
        ing.close()
        for s in group:
            s.stop()
    notes = [m if n == 1 else f"{m} ({n} times)" for m, n in seen.items()]
    lost_a = ing.audio_ring.overruns + ing.audio_ring.late_reads
    if lost_a:
        notes.append(f"{lost_a} audio samples were overwritten before they were read")
    if not reader.fits:
        raise SourceError(
            f"{stream.name}: no audio arrived"
            + (f" ({notes[-1]})" if notes else "")
            + ": check that the source carries the pattern's soundtrack"
        )
    origin = ing.fitted_origin_ns()
    first_fit = reader.fits[0]
    return Capture(
        name=stream.name,
        live=live,
        fps=vfmt.fps,
        frame_ns=np.asarray(reader.frame_ns, np.int64),
        frame_fits=tuple(f or first_fit for f in reader.frame_fits),
        luma=np.asarray(reader.luma, np.float64),
        audio=np.concatenate(reader.chunks) if reader.chunks else np.zeros(0, np.float32),
        audio_valid=np.concatenate(reader.valid) if reader.valid else np.zeros(0, bool),
        audio_start=0,
        sample_rate=SAMPLE_RATE,
        read_stops=np.asarray(reader.stops, np.int64),
        read_fits=tuple(reader.fits),
        origin_ns=int(origin if origin is not None else 0),
        notes=tuple(notes),
        audio_lost=lost_a,
        video_lost=ing.frame_ring.overruns,
    )


__all__ = ["LIVE_DEFAULT_S", "SAMPLE_RATE", "Capture", "capture"]
