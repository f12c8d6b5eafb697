"""Bounded per-stream queues, deadlines and cross-stream micro-batching.

Scheduling is kept apart from compute (as Holoscan does): the scheduler never
runs a kernel, it only decides what runs next and what is dropped.

Policy:
    * each stream has a queue of at most `depth` items (one depth for all, or one per
      stream); pushing into a full queue drops the OLDEST item (latest wins: a live view
      wants the newest frame, and the backlog, hence latency, stays bounded). Items that
      become ready together (a burst of late audio completes several waiting windows at
      once) are not a slow consumer: the owner sizes a stream's depth to hold them;
    * an item may carry a deadline (capture time + the latency budget); an item
      still queued past it is dropped;
    * `next_batch` gathers ready items across streams, oldest first per stream and
      round-robin between streams, up to `max_batch` (and at most `per_stream` items of
      one stream: 1 for stateful models, whose state must pass from one item of a
      stream to its next); with several streams it waits up to `max_wait_ms` after the
      oldest ready item for the batch to fill.
Every drop is counted by reason, and `on_drop` lets the owner release what the
item held.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Ticket:
    """One queued item.

    Attributes:
        stream: stream index.
        item: the payload (the pipeline's aligned work item).
        enqueued_ns: host time it was queued.
        deadline_ns: host time after which it is dropped, or None.
    """

    stream: int
    item: Any
    enqueued_ns: int
    deadline_ns: int | None


class Scheduler:
    """Latest-wins bounded queues with deadlines and micro-batching.

    Args:
        streams: number of streams.
        depth: queue length per stream (>= 1): one for every stream, or one per stream.
        max_batch: largest batch `next_batch` returns.
        max_wait_ms: how long a ready item may wait for a batch to fill (multi-stream).
        on_drop: called with (ticket, reason) for every dropped item.
        per_stream: most items of one stream in one batch (None: no limit).
    """

    def __init__(
        self,
        *,
        streams: int,
        depth: int | Sequence[int] = 2,
        max_batch: int = 8,
        max_wait_ms: float = 2.0,
        on_drop: Callable[[Ticket, str], None] | None = None,
        per_stream: int | None = None,
    ) -> None:
        if per_stream is not None and per_stream < 1:
            raise ValueError("per_stream must be >= 1 (or None)")
        depths = [int(depth)] * streams if isinstance(depth, int) else [int(d) for d in depth]
        if len(depths) != streams:
            raise ValueError(f"need one depth per stream ({streams}), got {len(depths)}")
        if streams < 1 or min(depths) < 1 or max_batch < 1 or max_wait_ms < 0:
            raise ValueError("need streams >= 1, depth >= 1, max_batch >= 1, max_wait_ms >= 0")
        self.streams = streams
        #: queue length of each stream
        self.depths = depths
        self.max_batch = max_batch
        self.max_wait_ns = int(max_wait_ms * 1e6)
        self.per_stream = per_stream
        self._queues: list[deque[Ticket]] = [deque() for _ in range(streams)]
        self._on_drop = on_drop
        self._rr = 0
        #: reason -> items dropped
        self.dropped: dict[str, int] = {}
        self.pushed = 0
        self.batches = 0

    def _drop(self, t: Ticket, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        if self._on_drop is not None:
            self._on_drop(t, reason)

    def space(self, stream: int) -> int:
        """Free places in a stream's queue."""
        return self.depths[stream] - len(self._queues[stream])

    def pending(self, stream: int | None = None) -> int:
        """Items queued (in one stream, or in all)."""
        if stream is not None:
            return len(self._queues[stream])
        return sum(len(q) for q in self._queues)

    def push(
        self, stream: int, item: Any, *, now_ns: int, deadline_ns: int | None = None
    ) -> Ticket:
        """Queue an item; a full queue drops its oldest item ("queue_full")."""
        q = self._queues[stream]
        while len(q) >= self.depths[stream]:
            self._drop(q.popleft(), "queue_full")
        t = Ticket(stream=stream, item=item, enqueued_ns=now_ns, deadline_ns=deadline_ns)
        q.append(t)
        self.pushed += 1
        return t

    def expire(self, now_ns: int) -> int:
        """Drop queued items whose deadline has passed ("deadline"); returns how many."""
        n = 0
        for q in self._queues:
            keep = len(q)
            for _ in range(keep):
                t = q.popleft()
                if t.deadline_ns is not None and now_ns > t.deadline_ns:
                    self._drop(t, "deadline")
                    n += 1
                else:
                    q.append(t)
        return n

    def next_batch(
        self, now_ns: int, ready: Callable[[Ticket, int], bool] | None = None
    ) -> list[Ticket]:
        """Expire late items, then take up to `max_batch` ready items across streams.

        Args:
            now_ns: host time now.
            ready: predicate (ticket, now_ns) -> bool; an item that is not ready blocks
                the items behind it in its stream (order is kept within a stream).

        Returns:
            The batch (possibly empty when nothing is ready or the batch is still filling).
        """
        self.expire(now_ns)
        batch: list[Ticket] = []
        taken = [0] * self.streams
        oldest: int | None = None
        progress = True
        while progress and len(batch) < self.max_batch:
            progress = False
            for k in range(self.streams):
                s = (self._rr + k) % self.streams
                q = self._queues[s]
                if taken[s] >= len(q) or (self.per_stream and taken[s] >= self.per_stream):
                    continue
                t = q[taken[s]]
                if ready is not None and not ready(t, now_ns):
                    continue
                batch.append(t)
                taken[s] += 1
                progress = True
                if oldest is None or t.enqueued_ns < oldest:
                    oldest = t.enqueued_ns
                if len(batch) >= self.max_batch:
                    break
        if not batch:
            return batch
        if (
            self.streams > 1
            and len(batch) < self.max_batch
            and oldest is not None
            and now_ns - oldest < self.max_wait_ns
        ):
            return []
        for s, n in enumerate(taken):
            for _ in range(n):
                self._queues[s].popleft()
        self._rr = (self._rr + 1) % self.streams
        self.batches += 1
        return batch

    def next_fill_ns(self) -> int | None:
        """When a batch held back to fill up (several streams) must go anyway, or None."""
        if self.streams == 1:
            return None
        oldest = None
        for q in self._queues:
            if q and (oldest is None or q[0].enqueued_ns < oldest):
                oldest = q[0].enqueued_ns
        return None if oldest is None else oldest + self.max_wait_ns

    def drain(self) -> list[Ticket]:
        """Remove and return everything queued (oldest first per stream)."""
        out: list[Ticket] = []
        for q in self._queues:
            out.extend(q)
            q.clear()
        return out


__all__ = ["Scheduler", "Ticket"]
