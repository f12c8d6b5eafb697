"""Scheduler: latest-wins and deadline drops are counted; batches form across streams."""

from __future__ import annotations

import pytest

from avfuse.engine.schedule import Scheduler, Ticket

MS = 1_000_000


def test_full_queue_drops_the_oldest_and_counts_it() -> None:
    dropped: list[tuple[object, str]] = []
    s = Scheduler(streams=1, depth=2, max_batch=4, on_drop=lambda t, r: dropped.append((t.item, r)))
    for k in range(5):
        s.push(0, k, now_ns=k)
    assert s.dropped == {"queue_full": 3}
    assert [d[0] for d in dropped] == [0, 1, 2]
    assert [t.item for t in s.next_batch(10)] == [3, 4]
    assert s.pending() == 0


def test_items_past_their_deadline_are_dropped() -> None:
    s = Scheduler(streams=1, depth=8)
    s.push(0, "late", now_ns=0, deadline_ns=5 * MS)
    s.push(0, "ok", now_ns=0, deadline_ns=50 * MS)
    s.push(0, "none", now_ns=0)
    batch = s.next_batch(10 * MS)
    assert [t.item for t in batch] == ["ok", "none"]
    assert s.dropped == {"deadline": 1}


def test_batches_gather_across_streams_round_robin() -> None:
    s = Scheduler(streams=3, depth=4, max_batch=4, max_wait_ms=0)
    for st in range(3):
        for k in range(2):
            s.push(st, (st, k), now_ns=0)
    b1 = s.next_batch(1)
    assert len(b1) == 4
    assert {t.stream for t in b1} == {0, 1, 2}  # every stream is served before a second item
    assert sorted(t.item for t in b1 if t.stream == b1[0].stream) == [
        (b1[0].stream, 0),
        (b1[0].stream, 1),
    ]
    b2 = s.next_batch(2)
    assert len(b2) == 2 and s.pending() == 0
    assert s.batches == 2


def test_a_partial_batch_waits_up_to_max_wait_with_several_streams() -> None:
    s = Scheduler(streams=2, depth=4, max_batch=4, max_wait_ms=5)
    s.push(0, "a", now_ns=0)
    assert s.next_batch(1 * MS) == []  # may still fill
    s.push(1, "b", now_ns=2 * MS)
    assert s.next_batch(3 * MS) == []
    assert [t.item for t in s.next_batch(6 * MS)] == ["a", "b"]


def test_not_ready_items_keep_their_stream_order() -> None:
    s = Scheduler(streams=2, depth=4, max_batch=8, max_wait_ms=0)
    s.push(0, "wait", now_ns=0)
    s.push(0, "behind", now_ns=0)
    s.push(1, "go", now_ns=0)

    def ready(t: Ticket, now: int) -> bool:
        return t.item != "wait" or now > 100

    assert [t.item for t in s.next_batch(1, ready)] == ["go"]
    assert [t.item for t in s.next_batch(200, ready)] == ["wait", "behind"]


def test_drain_and_space() -> None:
    s = Scheduler(streams=2, depth=3)
    s.push(1, "x", now_ns=0)
    assert s.space(0) == 3 and s.space(1) == 2 and s.pending(1) == 1
    assert [t.item for t in s.drain()] == ["x"] and s.pending() == 0
    with pytest.raises(ValueError):
        Scheduler(streams=0)
