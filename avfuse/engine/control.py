"""Waking and stopping threads without polling: `Doorbell` and `StopToken`.

The pipeline's worker sleeps until there is work: a capture thread that wrote a
frame, a source that ended, a consumer that freed ring space, a stop request, or
the next deadline it computed itself. `Doorbell` is that wake-up: producers `ring()`,
the sleeper `wait(timeout)`s. It is built on `queue.SimpleQueue`, whose `put` is
reentrant (it may be called from a signal handler or while the sleeper is inside
`get`), so a signal handler can stop a run without risking a deadlock on a lock its
own thread holds.

Protocol (no lost wake-up): the sleeper calls `clear()` BEFORE it looks for work and
`wait()` only after finding none; a producer publishes its data BEFORE `ring()`. A
ring that comes between `clear()` and `wait()` leaves a token, so `wait()` returns at
once; redundant rings while a token is pending cost one attribute read.
"""

from __future__ import annotations

import queue


class Doorbell:
    """A wake-up for one sleeping thread, rung by any number of producers."""

    __slots__ = ("_pending", "_q")

    def __init__(self) -> None:
        self._q: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._pending = False

    def ring(self) -> None:
        """Wake the sleeper (or make its next `wait` return at once). Never blocks."""
        if not self._pending:
            self._pending = True
            self._q.put(None)

    def clear(self) -> None:
        """Forget earlier rings; call before looking for work."""
        self._pending = False
        try:
            while True:
                self._q.get_nowait()
        except queue.Empty:
            pass

    def wait(self, timeout: float | None) -> bool:
        """Sleep until rung or `timeout` seconds passed; True when rung."""
        try:
            self._q.get(timeout=None if timeout is None else max(0.0, timeout))
        except queue.Empty:
            return False
        self._pending = False
        return True


class StopToken:
    """A request to end a run, from any thread or a signal handler.

    The first reason given wins (e.g. "SIGTERM", "duration", "stdout_closed"); every
    attached doorbell is rung so the sleeper notices at once.
    """

    def __init__(self) -> None:
        self.reason: str | None = None
        self._bells: list[Doorbell] = []

    def request(self, reason: str) -> None:
        """Ask the run to end (idempotent: later reasons are ignored)."""
        if self.reason is None:
            self.reason = reason
        for bell in tuple(self._bells):
            bell.ring()

    @property
    def requested(self) -> bool:
        """True once a stop was requested."""
        return self.reason is not None

    def attach(self, bell: Doorbell) -> None:
        """Ring `bell` on a stop request (at once if one is pending)."""
        self._bells.append(bell)
        if self.reason is not None:
            bell.ring()

    def detach(self, bell: Doorbell) -> None:
        """Stop ringing `bell`."""
        if bell in self._bells:
            self._bells.remove(bell)


__all__ = ["Doorbell", "StopToken"]
