"""The Source interface every capture or demux unit implements.

A source owns its thread(s) and pushes what it captures into a `FrameSink` (the
pipeline's ingest stage, which writes the rings and fits the clock models). It
never blocks on the sink: sink calls copy into preallocated rings and return.

Time is explicit. For every audio block and video frame the source reports:
    device_time_s  the position on the *device's* clock (PortAudio ADC time, container
                   PTS, synthetic device clock), seconds, or None where the device has
                   no clock (a webcam through OpenCV)
    host_ns        its best raw estimate of when the first sample / the frame was
                   captured, in the host clock the pipeline runs on: time.monotonic_ns()
                   for live sources, a virtual clock for files and synthetic scenes run
                   faster than real time (origin + PTS)
The pipeline fits host = a + b * device per source (ClockModel) to remove jitter
and drift; a source never invents or reorders a timestamp.

Audio blocks are float32 mono in [-1, 1] at `info.audio.sample_rate` (sources
resample to the rate they were asked for). Video frames are uint8 arrays in
`info.video.pixel_format` ("bgr24" (H, W, 3) unless stated).

Faults travel as data: `sink.status(SourceStatus(...))` with a `recoverable`
verdict; a disconnected device is reported once, reconnects are reported, and the
pipeline goes on with the other modality.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

StatusKind = Literal[
    "opened", "eos", "disconnected", "reconnected", "warning", "format_changed", "error"
]


#: a source paced to wall time (a synthetic scene, a file with realtime=True) delivers an
#: item up to this late to serve it in the wake-up of the next one, as an OS timer slack
#: does (a 20 ms block and a 30 fps frame due 6.7 ms apart: 5 wake-ups per 100 ms, not 7):
#: on this VM a wake-up costs more than the work of delivering a block
WAKE_SLACK_NS = 8_000_000


@dataclass(frozen=True, kw_only=True)
class AudioFormat:
    """What an audio source delivers."""

    sample_rate: int
    channels: int = 1
    block_size: int | None = None  # samples per block when fixed (devices); None for files


@dataclass(frozen=True, kw_only=True)
class VideoFormat:
    """What a video source delivers (the size actually delivered, not the size requested)."""

    width: int
    height: int
    fps: float
    pixel_format: str = "bgr24"


@dataclass(frozen=True, kw_only=True)
class SourceInfo:
    """Description of an opened source."""

    name: str
    audio: AudioFormat | None
    video: VideoFormat | None
    live: bool  # paced by a device (True) or readable as fast as wanted (False)
    #: host times are arrival times of packets (a network stream): never early, often late
    arrival_stamped: bool = False
    #: delivers each item at its host time by itself (a file played with realtime=True):
    #: the pipeline must not pace it again. Pacing twice cost a second wake-up per frame,
    #: to the first item's delivery delay after its host time.
    paced: bool = False


@dataclass(frozen=True, kw_only=True)
class SourceStatus:
    """A fault or lifecycle change reported by a source (errors as data)."""

    kind: StatusKind
    source: str
    modality: Literal["audio", "video"] | None = None
    message: str = ""
    recoverable: bool = True


class FrameSink(Protocol):
    """Where a source delivers. Implemented by the pipeline; every call returns quickly."""

    def audio(self, samples: np.ndarray, *, device_time_s: float | None, host_ns: int) -> None:
        """A block of float32 mono samples, the first captured at `host_ns`."""

    def video(self, frame: np.ndarray, *, device_time_s: float | None, host_ns: int) -> None:
        """One frame, captured at `host_ns`."""

    def status(self, status: SourceStatus) -> None:
        """A lifecycle change or fault."""

    # optional: source_finished() -> None, called once after the source's thread ended
    # optional: frames_not_awaited() -> int, how many of the next frames no consumer
    #   wakes up for (a file's playout hands them over with the frame after them)


class Source(ABC):
    """Base of all sources. Subclasses implement `_open`, `_run` and optionally `_close`.

    `start` runs `_run` on a daemon thread; `_run` loops until `self.stopping` is set
    or the stream ends, then reports "eos" when it ended by itself. `stop` sets the
    flag and joins the thread with a bound, so a stuck device never hangs shutdown.
    """

    def __init__(self, *, name: str) -> None:
        self.name = name
        self._info: SourceInfo | None = None
        self._thread: threading.Thread | None = None
        self.stopping = threading.Event()
        self.finished = threading.Event()

    @property
    def info(self) -> SourceInfo:
        """What the opened source delivers; opens it on first access."""
        if self._info is None:
            self.open()
        assert self._info is not None  # set by open(); internal invariant
        return self._info

    def open(self) -> SourceInfo:
        """Open the device/file/URL and learn its format. Raises SourceError with a fix."""
        if self._info is None:
            self._info = self._open()
        return self._info

    def start(self, sink: FrameSink) -> None:
        """Start delivering into `sink` on the source's own thread."""
        self.open()
        if self._thread is not None:
            raise RuntimeError(f"source {self.name} already started")
        self.stopping.clear()
        self.finished.clear()
        self._thread = threading.Thread(
            target=self._main, args=(sink,), daemon=True, name=f"avfuse-src-{self.name}"
        )
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Ask the thread to end and wait up to `timeout` seconds; then release the device."""
        self.stopping.set()
        self._wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._thread = None
        self._close()

    def _wake(self) -> None:  # noqa: B027 (an optional hook: most sources sleep on `stopping`)
        """Wake a thread that sleeps on something other than `stopping` (a doorbell)."""

    def _main(self, sink: FrameSink) -> None:
        try:
            self._run(sink)
            if not self.stopping.is_set():
                sink.status(SourceStatus(kind="eos", source=self.name, recoverable=False))
        except Exception as e:  # a source thread never dies silently
            sink.status(
                SourceStatus(
                    kind="error",
                    source=self.name,
                    recoverable=False,
                    message=f"{type(e).__name__}: {e}",
                )
            )
        finally:
            self.finished.set()
            done = getattr(sink, "source_finished", None)
            if done is not None:  # wake a consumer that sleeps until sources end
                done()

    def __enter__(self) -> Source:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @abstractmethod
    def _open(self) -> SourceInfo: ...

    @abstractmethod
    def _run(self, sink: FrameSink) -> None: ...

    def _close(self) -> None:  # noqa: B027 - optional hook
        pass
