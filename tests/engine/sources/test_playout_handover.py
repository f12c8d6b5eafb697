"""PlayoutBuffer handed over: the consumer's thread delivers, the reader only decodes.

The same controlled clock as test_playout.py. The consumer is simulated inside the
reader's sleeps: while the reader sleeps to some time, the consumer wakes at each
`next_due()` up to it and calls `deliver_due` (a consumer thread that wakes exactly when
asked). The reader's own sleeps are then counted apart from the consumer's wake-ups.
"""

from __future__ import annotations

import numpy as np
import pytest

from avfuse.engine.sources.base import WAKE_SLACK_NS, SourceStatus
from avfuse.engine.sources.playout import HIGH_S, LOW_S, STALL_NS, PlayoutBuffer
from tests.engine.sources.test_playout import (
    BLOCK,
    FRAME,
    FRAME_NS,
    SR,
    Arrivals,
    FakeTime,
    check_audio,
    decode_order,
)
from tests.engine.sources.test_playout import play as base_play

pytestmark = pytest.mark.timeout(30)


class ConsumerTime(FakeTime):
    """The reader's clock; while the reader sleeps, a consumer delivers (unless stalled)."""

    def __init__(self, *, stalled: bool = False) -> None:
        super().__init__()
        self.buf: PlayoutBuffer | None = None
        self.stalled = stalled
        self.consumer_wakes = 0
        self.rings = 0

    def ring(self) -> None:
        self.rings += 1

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None and timeout > 0
        self.sleeps += 1
        until = self.now + round(timeout * 1e9)
        buf = self.buf
        for _ in range(100_000):  # bounded: a consumer that never gets ahead fails below
            if buf is None or self.stalled:
                break
            due = buf.next_due()
            if due is None or due > until:
                break
            self.now = max(self.now, due)
            self.consumer_wakes += 1
            buf.deliver_due(self.now)
        else:
            raise AssertionError("the consumer made no progress")
        self.now = until
        return self.is_set()


def play(seconds: float, clock: ConsumerTime, **kw):
    """test_playout's `play`, handed over to the simulated consumer; also returns the
    queue's length after every item."""
    queued: list[int] = []

    def hand_over(buf: PlayoutBuffer) -> None:
        buf.hand_over(clock.ring)
        clock.buf = buf

    sink, buf = base_play(
        seconds, clock, setup=hand_over, on_pump=lambda b: queued.append(len(b._queue)), **kw
    )
    return sink, buf, queued


def test_the_consumer_delivers_each_frame_on_time_and_the_reader_sleeps_per_burst() -> None:
    """Handed over, the reader never wakes for a frame: it sleeps once per burst, and the
    consumer's wake-ups deliver what frame-by-frame pacing would (audio with each frame,
    every frame on time, nothing early)."""
    clock = ConsumerTime()
    sink, buf, _ = play(3.0, clock)
    check_audio(sink, blocks=int(3.0 * SR) // BLOCK)
    for host, arrival, _ in sink.chunks:
        assert arrival - host <= FRAME_NS + WAKE_SLACK_NS, (host, arrival)
    video = [(h, a) for k, h, a in sink.got if k == "video"]
    assert len(video) == 90
    assert all(h <= a <= h + WAKE_SLACK_NS for h, a in video)
    per_burst = HIGH_S - LOW_S
    assert clock.sleeps <= 3.0 / per_burst + 3, clock.sleeps  # not one per frame (90)
    assert clock.consumer_wakes <= 95
    assert buf.queued_bytes == 0


def test_frames_nobody_waits_for_cost_the_consumer_no_wake_up() -> None:
    clock = ConsumerTime()
    sink = Arrivals(clock)

    def not_awaited() -> int:  # frames 2, 5, 8, ... are the awaited ones
        return 2 - sum(kind == "video" for kind, _, _ in sink.got) % 3

    buf = PlayoutBuffer(sink, clock, sample_rate=SR, clock=clock, not_awaited=not_awaited)
    buf.hand_over(clock.ring)
    clock.buf = buf
    for kind, host in decode_order(3.0):
        if kind == "audio":
            buf.audio(np.zeros(BLOCK, np.float32), device_time_s=None, host_ns=host)
        else:
            buf.video(FRAME, device_time_s=None, host_ns=host)
        assert buf.pump()
    assert buf.finish()
    video = [(h, a) for k, h, a in sink.got if k == "video"]
    assert len(video) == 90
    assert all(h <= a <= h + 2 * FRAME_NS + WAKE_SLACK_NS for h, a in video)
    assert all(a <= h + WAKE_SLACK_NS for h, a in video[2::3])  # the awaited: on time
    assert clock.consumer_wakes <= 35, clock.consumer_wakes  # one per awaited frame


def test_a_stalled_consumer_leaves_the_reader_to_deliver_late_and_bounded() -> None:
    """A consumer that stops looking must not make the queue grow with the file or lose
    what is queued: the reader delivers what is STALL_NS late itself, never early."""
    clock = ConsumerTime(stalled=True)
    sink, buf, queued = play(4.0, clock)
    check_audio(sink, blocks=int(4.0 * SR) // BLOCK)
    video = [(h, a) for k, h, a in sink.got if k == "video"]
    assert len(video) == 120
    assert all(h <= a for h, a in video)
    assert max(a - h for h, a in video) <= STALL_NS + HIGH_S * 1e9
    items_per_s = 30 + SR / BLOCK
    assert max(queued) <= (HIGH_S + STALL_NS / 1e9 + 0.2) * items_per_s
    assert buf.queued_bytes == 0


def test_an_item_due_before_the_consumers_plan_rings_it_once() -> None:
    clock = ConsumerTime(stalled=True)
    buf = PlayoutBuffer(Arrivals(clock), clock, sample_rate=SR, clock=clock)
    buf.hand_over(clock.ring)
    buf.video(FRAME, device_time_s=None, host_ns=5 * FRAME_NS)
    assert clock.rings == 1  # no plan yet: the consumer must look
    buf.video(FRAME, device_time_s=None, host_ns=6 * FRAME_NS)
    assert clock.rings == 1  # later than what it was told: no ring
    assert buf.next_due() == 5 * FRAME_NS
    buf.video(FRAME, device_time_s=None, host_ns=7 * FRAME_NS)
    assert clock.rings == 1
    buf.status(SourceStatus(kind="warning", source="f", message="m"))
    assert clock.rings == 2  # a status goes out as soon as what is before it has


def test_handed_over_the_reader_delivers_nothing_while_the_consumer_keeps_up() -> None:
    """Every item reaches the sink on the consumer's wake-ups, none from the reader's
    own pumping (which would put the reader back on a per-frame schedule)."""
    clock = ConsumerTime()
    sink = Arrivals(clock)
    buf = PlayoutBuffer(sink, clock, sample_rate=SR, clock=clock)
    buf.hand_over(clock.ring)
    clock.buf = buf
    from_reader = 0
    for k in range(45):
        clock.now = k * FRAME_NS + FRAME_NS // 2  # the reader runs late; items are due
        before = len(sink.got)
        buf.video(FRAME, device_time_s=None, host_ns=k * FRAME_NS)
        assert buf.pump()
        from_reader += len(sink.got) - before
    assert from_reader == 0
    assert buf.next_due() is not None and buf.next_due() <= clock.now
    buf.deliver_due(clock.now)
    assert len(sink.got) == 45
