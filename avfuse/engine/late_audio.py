"""Live windows decided before their audio was all there, and the deadline that would fix it.

A live item waits for its audio up to the audio deadline (`--audio-deadline-ms`), then is
decided on what has come. A network stream's audio comes in bursts: an MPEG-TS muxer
packs ~0.3 s of it per packet, so at the default 100 ms deadline about half the windows
of such a stream are decided with their newest audio missing, and nothing said so.
`LateAudioWatch` counts them per lane and, once a run has shown a steady share of them,
says so once with the deadline that would make them whole (the source clock's 95th
percentile arrival lateness, `ClockModel.late_ms`) and what that costs in latency.
"""

from __future__ import annotations

import math

from avfuse.engine.records import WarningRecord

#: windows judged before the warning may be given (3 s of the bundled model's 10 decisions a
#: second; 1 s when a model runs on every frame of a 30 fps stream)
MIN_WINDOWS = 30
#: share of incomplete windows that makes the warning
WARN_FRACTION = 0.2


class LateAudioWatch:
    """Counts a live lane's windows decided with missing audio; warns once with advice.

    Args:
        stream: the stream's name (for the record).
        model: the model's name.
        deadline_ms: the audio deadline the run has.
    """

    def __init__(self, *, stream: str, model: str, deadline_ms: float) -> None:
        self.stream = stream
        self.model = model
        self.deadline_ms = deadline_ms
        self.windows = 0
        self.incomplete = 0
        self.warned = False

    def observe(
        self, *, complete: bool, late_ms: float, stream_time: float
    ) -> WarningRecord | None:
        """One window decided; returns the warning the first time it is due, else None."""
        self.windows += 1
        if not complete:
            self.incomplete += 1
        if self.warned or self.windows < MIN_WINDOWS:
            return None
        share = self.incomplete / self.windows
        if share < WARN_FRACTION or late_ms <= self.deadline_ms:
            return None
        self.warned = True
        advice = int(math.ceil((late_ms + 20.0) / 10.0) * 10)
        return WarningRecord(
            source=self.stream,
            kind="audio_late",
            modality="audio",
            message=(
                f"{share:.0%} of windows were decided before all their audio had come: this "
                f"stream's audio arrives up to {late_ms:.0f} ms after its frames (bursts), "
                f"past the {self.deadline_ms:g} ms audio deadline; --audio-deadline-ms "
                f"{advice} makes them whole, at up to that much latency"
            ),
            data={
                "incomplete_fraction": round(share, 3),
                "late_ms": round(late_ms, 1),
                "deadline_ms": self.deadline_ms,
                "advised_deadline_ms": advice,
            },  # fmt: skip
            stream=self.stream,
            model=self.model,
            stream_time=round(stream_time, 3),
        )

    def summary(self) -> dict[str, int]:
        """JSON-ready counts for the stream's summary."""
        return {"audio_incomplete": self.incomplete, "audio_windows": self.windows}


__all__ = ["LateAudioWatch"]
