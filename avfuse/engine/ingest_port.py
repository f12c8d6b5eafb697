"""IngestPort: one source's door into its stream's ingest.

A stream can take its audio from one source and its video from another (a microphone
and a camera); each source delivers into its own port, which forwards only the
modalities the stream takes from it and names that modality on the source's statuses.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from avfuse.engine.sources.base import SourceStatus

if TYPE_CHECKING:
    from avfuse.engine.ingest import Ingest
    from avfuse.engine.sources.playout import PlayoutBuffer


class IngestPort:
    """FrameSink of one source of a stream: forwards only what the stream takes from it.

    A source giving one modality to the stream gets that modality named on its lifecycle
    statuses, so a camera's "eos" ends the stream's video, not its audio.
    """

    def __init__(
        self, ingest: Ingest, *, audio: bool, video: bool, takes_playout: bool = False
    ) -> None:
        self._ingest = ingest
        self._audio = audio
        self._video = video
        self._only = "audio" if audio and not video else "video" if video and not audio else None
        self._takes_playout = takes_playout
        #: the playout buffer of a file played in real time, delivered from the consumer's
        #: thread (`take_playout`); None until the source's reader hands it over
        self.playout: PlayoutBuffer | None = None

    def take_playout(self, playout: PlayoutBuffer) -> bool:
        """A file reader offers its playout: with `takes_playout` the consumer's thread
        delivers it (`Stream.play_out`), rung by the ingest's bell; True when taken."""
        if not self._takes_playout:
            return False
        playout.hand_over(self._ingest.bell.ring)
        self.playout = playout
        return True

    def audio(self, samples: np.ndarray, *, device_time_s: float | None, host_ns: int) -> None:
        if self._audio:
            self._ingest.audio(samples, device_time_s=device_time_s, host_ns=host_ns)

    def video(self, frame: np.ndarray, *, device_time_s: float | None, host_ns: int) -> None:
        if self._video:
            self._ingest.video(frame, device_time_s=device_time_s, host_ns=host_ns)

    def frames_not_awaited(self) -> int:
        """See `Ingest.frames_not_awaited` (0 when this port does not take video)."""
        return self._ingest.frames_not_awaited() if self._video else 0

    def status(self, status: SourceStatus) -> None:
        if status.modality is None and self._only is not None:
            status = replace(status, modality=self._only)  # type: ignore[arg-type]
        self._ingest.status(status)

    def source_finished(self) -> None:
        self._ingest.source_finished()


__all__ = ["IngestPort"]
