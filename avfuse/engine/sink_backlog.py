"""BacklogSink: records handed to a network endpoint from a sender thread, never blocking.

The base of the network sinks (webhook, MQTT). The pipeline's thread only appends the
record's JSON line to a bounded queue and returns; a sender thread delivers what is
queued (`_deliver`, a batch at a time), retrying with capped exponential back-off while
the endpoint is unreachable. When the backlog is full the OLDEST line is dropped and
counted, so a box that lost its network for a day keeps running, keeps its newest
records and says how many it lost.

A network sink is not `durable`: an endpoint that is down does not end the run (an
outage is expected on an edge box); deliveries, failures and drops are counted in the
summary's `sinks` figures. What is still queued at the end is sent for up to `timeout`
more seconds while the endpoint answers.
"""

from __future__ import annotations

import collections
import threading
from typing import Any

from avfuse.engine.records import Record, RunInfo
from avfuse.engine.sinks import Sink
from avfuse.errors import UsageError
from avfuse.redact import redact


class DeliveryError(Exception):
    """The endpoint did not take a batch (it is retried)."""


class BacklogSink(Sink):
    """Queue + sender thread + back-off (see the module docstring); subclasses deliver.

    Args:
        spec: the --sink text (for messages; credentials are masked).
        backlog: most records queued while the endpoint is slow or down.
        timeout: seconds per delivery, and the longest the end of the run waits.
        batch: most records per delivery.
    """

    durable = False
    thread_name = "avfuse-sink"

    def __init__(self, *, spec: str, backlog: int, timeout: float, batch: int) -> None:
        if not 1 <= backlog <= 10_000_000:
            raise UsageError(f"--sink {redact(spec)}: backlog must be 1..10000000")
        if not 0.05 <= timeout <= 300:
            raise UsageError(f"--sink {redact(spec)}: timeout must be 0.05..300 s")
        self.name = redact(spec)
        self.timeout = timeout
        self.batch = batch
        self._queue: collections.deque[str] = collections.deque(maxlen=backlog)
        self._cond = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        self.sent = 0
        self.dropped = 0
        self.failures = 0
        self._down = False
        self._idle = threading.Event()
        self._idle.set()

    # ------------------------------------------------------------------ subclass hooks
    def _open(self) -> None:
        """Called on the sender thread before the first delivery (connect, ...)."""

    def _deliver(self, lines: list[str]) -> None:
        """Deliver one batch; raise DeliveryError or OSError when it was not taken."""
        raise NotImplementedError

    def _shut(self) -> None:
        """Called on the sender thread when it ends (disconnect, ...)."""

    # ------------------------------------------------------------------ the pipeline's side
    def on_start(self, info: RunInfo) -> None:
        self._thread = threading.Thread(target=self._send_loop, daemon=True, name=self.thread_name)
        self._thread.start()

    def on_record(self, record: Record) -> None:
        line = record.json_line()
        with self._cond:
            if len(self._queue) == self._queue.maxlen:
                self.dropped += 1  # the deque drops the oldest line on append
            self._queue.append(line)
            self._idle.clear()
            self._cond.notify()

    # ------------------------------------------------------------------ the sender thread
    def _take(self) -> list[str]:
        out: list[str] = []
        while self._queue and len(out) < self.batch:
            out.append(self._queue.popleft())
        return out

    def _send_loop(self) -> None:
        delay = 0.1
        try:
            self._open()
            while True:
                with self._cond:
                    while not self._queue and not self._closing:
                        self._cond.wait()
                    if not self._queue and self._closing:
                        return
                    lines = self._take()
                try:
                    self._deliver(lines)
                except (OSError, DeliveryError, ValueError):
                    self.failures += 1
                    self._down = True
                    with self._cond:  # back in front (the newest are kept if it overflows)
                        for line in reversed(lines):
                            if len(self._queue) == self._queue.maxlen:
                                self.dropped += 1
                                continue
                            self._queue.appendleft(line)
                        if self._closing:
                            return
                        self._cond.wait(delay)
                    delay = min(delay * 2, 10.0)
                    continue
                self.sent += len(lines)
                self._down = False
                delay = 0.1
                with self._cond:
                    if not self._queue:
                        self._idle.set()
        finally:
            self._shut()

    @property
    def down(self) -> bool:
        """True while the last delivery failed."""
        return self._down

    def figures(self) -> dict[str, Any]:
        """Delivery figures (sent, dropped, failures, queued)."""
        return {
            "name": self.name,
            "sent": self.sent,
            "dropped": self.dropped,
            "failures": self.failures,
            "queued": len(self._queue),
        }

    def close(self) -> None:
        if not self._down:
            self._idle.wait(self.timeout)  # the sender finishes what is queued (bounded)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(self.timeout + 1.0)


__all__ = ["BacklogSink", "DeliveryError"]
