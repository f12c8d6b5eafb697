"""`Item`: one unit of work of a lane, shared by the lane, its pre-processing
(engine/lane_inputs.py), the scheduler and the pipeline."""

from __future__ import annotations

from dataclasses import dataclass

from avfuse.engine.align import Window


@dataclass(slots=True)
class Item:
    """One unit of work of a lane: a video frame, or an audio window.

    Attributes:
        lane: the lane's index in its model's lanes (its scheduler queue).
        seq: video frame sequence number in the frame ring, -1 when none.
        time_ns: host time the decision is about (frame time or window end).
        base_ns: latency origin (capture time for live streams, arrival for files).
        first_seen_ns: when the pipeline took it from the ring.
        window: its audio window, once the audio clock can place it.
        ready_ns: when it became ready (0: not yet).
        modalities: modalities present after pre-processing.
        degraded: a modality the model takes was missing.
        level_dbfs: audio level of the window's last 100 ms.
        reset: the stream's recurrent state starts afresh at this item (it follows a gap,
            a reconnect or a change between video- and audio-driven items).
        hist: for a chained model, the source's output count this item reads up to.
    """

    lane: int
    seq: int
    time_ns: int
    base_ns: int
    first_seen_ns: int
    window: Window | None = None
    ready_ns: int = 0
    modalities: tuple[str, ...] = ()
    degraded: bool = False
    level_dbfs: float = -120.0
    reset: bool = False
    hist: int = 0


__all__ = ["Item"]
