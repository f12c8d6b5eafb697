"""OutputLog: a lane's recent decisions by time, for the gates and late fusions that read it.

A gate or a fusion must use another model's output for the SAME moment, not its latest
one: on a file one model may run seconds ahead of another (its modality is read ahead),
and live the models of one stream finish their batches at different times. So each
lane that is read keeps its last `capacity` decisions (capture time, probabilities,
modalities, degraded) in preallocated arrays, and `at(t)` finds the newest one at or
before `t`.

The arrays are written twice (at `k % C` and `k % C + C`), so the last C entries are
always one contiguous, time-ordered slice and a lookup is one binary search, without
copying or allocating.
"""

from __future__ import annotations

import numpy as np


class OutputLog:
    """The last `capacity` decisions of one lane (see the module docstring).

    Args:
        labels: width of a probability row.
        capacity: decisions kept (a few seconds of outputs is enough: a lane that runs
            further ahead than its rings hold cannot happen).
    """

    def __init__(self, labels: int, capacity: int = 512) -> None:
        if capacity < 2:
            raise ValueError("capacity must be at least 2")
        self.capacity = capacity
        self._t = np.zeros(2 * capacity, np.int64)
        self._p = np.zeros((2 * capacity, max(1, labels)), np.float64)
        self._deg = np.zeros(2 * capacity, np.bool_)
        self._mods: list[tuple[str, ...]] = [()] * (2 * capacity)
        self.count = 0  # decisions pushed so far

    def push(
        self, time_ns: int, probs: np.ndarray, modalities: tuple[str, ...], degraded: bool
    ) -> None:
        """Append a decision (times increase; an older one restarts the log)."""
        if self.count and time_ns < self.last_ns:  # type: ignore[operator]
            self.count = 0  # a new timeline (a reconnect): what came before no longer applies
        c = self.capacity
        for k in (self.count % c, self.count % c + c):
            self._t[k] = time_ns
            self._p[k] = probs
            self._deg[k] = degraded
            self._mods[k] = modalities
        self.count += 1

    def _window(self) -> tuple[int, int]:
        """[start, stop) of the ordered slice holding the kept entries."""
        n, c = self.count, self.capacity
        if n <= c:
            return 0, n
        s = n % c
        return s, s + c

    @property
    def last_ns(self) -> int | None:
        """Time of the newest decision, or None before the first."""
        if not self.count:
            return None
        _, stop = self._window()
        return int(self._t[stop - 1])

    def at(self, time_ns: int) -> int | None:
        """Index of the newest decision at or before `time_ns` (None: none kept is)."""
        start, stop = self._window()
        if start == stop:
            return None
        k = int(np.searchsorted(self._t[start:stop], time_ns, side="right"))
        return start + k - 1 if k > 0 else None

    def oldest(self) -> int:
        """Index of the oldest decision kept (call only when there is one)."""
        return self._window()[0]

    def time_ns(self, i: int) -> int:
        return int(self._t[i])

    def probs(self, i: int) -> np.ndarray:
        """The probabilities of entry `i` (a view: read it before the next push)."""
        return self._p[i]

    def degraded(self, i: int) -> bool:
        return bool(self._deg[i])

    def modalities(self, i: int) -> tuple[str, ...]:
        return self._mods[i]


__all__ = ["OutputLog"]
