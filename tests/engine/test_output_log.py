"""OutputLog: the newest decision at or before a moment, over a ring that wrapped."""

from __future__ import annotations

import numpy as np
import pytest

from avfuse.engine.output_log import OutputLog


def _fill(log: OutputLog, times: list[int]) -> None:
    for t in times:
        log.push(t, np.array([t / 1000.0, 0.0]), ("audio",), t % 3 == 0)


@pytest.mark.timeout(10)
def test_lookups_find_the_newest_decision_at_or_before_the_moment_after_wrapping() -> None:
    log = OutputLog(2, capacity=4)
    _fill(log, [10, 20, 30, 40, 50, 60, 70])  # wrapped: 40, 50, 60, 70 are kept
    assert log.last_ns == 70
    for t, want in [(70, 70), (75, 70), (69, 60), (50, 50), (45, 40), (40, 40)]:
        i = log.at(t)
        assert i is not None and log.time_ns(i) == want
        assert log.probs(i)[0] == want / 1000.0
        assert log.degraded(i) == (want % 3 == 0)
    assert log.at(39) is None  # older than anything kept
    assert log.time_ns(log.oldest()) == 40


@pytest.mark.timeout(10)
def test_before_it_wraps_and_when_empty() -> None:
    log = OutputLog(2, capacity=8)
    assert log.last_ns is None and log.at(5) is None
    _fill(log, [5, 6])
    i = log.at(100)
    assert i is not None and log.time_ns(i) == 6
    assert log.time_ns(log.oldest()) == 5


@pytest.mark.timeout(10)
def test_a_step_back_in_time_starts_a_new_timeline() -> None:
    log = OutputLog(2, capacity=4)
    _fill(log, [100, 200, 300])
    _fill(log, [10])  # a reconnect: times start again
    assert log.last_ns == 10
    assert log.at(300) is not None and log.time_ns(log.at(300)) == 10  # type: ignore[arg-type]
    assert log.at(9) is None
