"""SampleRing and FrameRing: holes, overwrite, overruns, and no allocation after construction."""

from __future__ import annotations

import threading
import tracemalloc
from collections.abc import Callable

import numpy as np
import pytest

from avfuse.engine.ring import FrameRing, SampleRing

#: bytes a per-call path may hold at once (Python objects: results, array views, floats)
ALLOC_BOUND = 8192


def peak_allocation(step: Callable[[int], None], *, warmup: int, calls: int) -> tuple[int, int]:
    """Peak and retained bytes above the baseline over `calls` calls of `step`, after a warm-up.

    The peak, not the difference of two snapshots: a temporary freed before the call
    returns leaves nothing behind yet is exactly the allocation the rings must not make.
    """
    tracemalloc.start()
    try:
        for k in range(warmup):  # first calls, and tracing itself, may allocate once
            step(k)
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        for k in range(warmup, warmup + calls):
            step(k)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - base, current - base


def ramp(start: int, n: int) -> np.ndarray:
    return np.arange(start, start + n, dtype=np.float32)


def test_samples_round_trip_across_the_wrap() -> None:
    r = SampleRing(capacity=1000)
    for k in range(7):
        r.write(ramp(k * 300, 300), k * 300)
    assert r.head == 2100 and r.tail == 1100
    out = np.empty(500, np.float32)
    res = r.read(1500, out)
    assert res.valid_samples == 500 and res.missing == 0 and res.coverage == 1.0
    assert (res.first_valid, res.last_valid) == (1500, 1999)
    np.testing.assert_array_equal(out, ramp(1500, 500))


def test_a_gap_reads_back_missing_never_invented() -> None:
    r = SampleRing(capacity=1000)
    r.write(ramp(0, 100), 0)
    r.write(ramp(150, 100), 150)  # samples 100..149 were never captured
    assert r.gap_samples == 50
    out = np.full(250, 7.0, np.float32)
    res = r.read(0, out)
    assert res.valid_samples == 200 and res.missing == 50
    assert (res.first_valid, res.last_valid) == (0, 249)
    assert np.all(out[100:150] == 0) and out[99] == 99 and out[150] == 150
    # a window that lies inside the hole
    res = r.read(110, np.empty(20, np.float32))
    assert res.valid_samples == 0 and res.first_valid == -1


def test_a_hole_overwrites_stale_samples_of_the_previous_lap() -> None:
    r = SampleRing(capacity=100)
    r.write(np.ones(100, np.float32), 0)
    r.write(np.ones(10, np.float32), 150)  # hole 100..149 lands on old samples
    out = np.empty(60, np.float32)
    res = r.read(100, out)
    assert res.valid_samples == 10 and res.first_valid == 150
    assert np.all(out[:50] == 0)


def test_not_yet_written_and_overwritten_samples_are_missing() -> None:
    r = SampleRing(capacity=100)
    r.write(ramp(0, 250), 0)  # more than fits: the oldest 150 are lost
    assert r.overruns == 150 and r.head == 250
    out = np.empty(100, np.float32)
    res = r.read(120, out)  # 120..149 overwritten
    assert res.valid_samples == 70 and res.first_valid == 150 and r.late_reads == 1
    res = r.read(200, out)  # 250..299 not yet written
    assert res.valid_samples == 50 and res.last_valid == 249
    assert np.all(out[50:] == 0)


def test_writing_into_the_past_is_refused() -> None:
    r = SampleRing(capacity=100)
    r.write(ramp(0, 50), 0)
    with pytest.raises(ValueError, match="before the ring head"):
        r.write(ramp(0, 10), 40)


@pytest.mark.timeout(30)
def test_sample_ring_allocates_nothing_per_call() -> None:
    r = SampleRing(capacity=16000)
    block = np.ones(160, np.float32)
    out = np.empty(1600, np.float32)
    idx = 0

    def step(k: int) -> None:
        nonlocal idx
        idx += 160 + (40 if k % 100 == 0 else 0)  # with occasional gaps
        r.write(block, idx - 160)
        r.read(idx - 1600, out)
        r.level_dbfs(idx - 1600, idx)

    peak, retained = peak_allocation(step, warmup=200, calls=5000)
    # a 1600-sample float32 temporary alone is 6400 bytes
    assert peak < ALLOC_BOUND, f"{peak} bytes allocated at peak over 5000 writes/reads"
    assert retained < ALLOC_BOUND, f"{retained} bytes retained over 5000 writes/reads"


def test_concurrent_reader_never_sees_torn_data() -> None:
    r = SampleRing(capacity=4096)
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            # float64 before the modulo: past 2**24 a float32 index is no longer exact
            r.write((np.arange(i, i + 256, dtype=np.float64) % 1e6).astype(np.float32), i)
            i += 256

    t = threading.Thread(target=writer)
    t.start()
    out = np.empty(2048, np.float32)
    bad = 0
    try:
        for _ in range(3000):
            start = max(0, r.head - 4000)  # near the tail: races with the writer
            res = r.read(start, out)
            if res.valid_samples:
                lo, hi = res.first_valid - start, res.last_valid - start + 1
                expect = np.arange(res.first_valid, res.last_valid + 1, dtype=np.float64) % 1e6
                bad += int(np.any(out[lo:hi] != expect.astype(np.float32)))
    finally:
        stop.set()
        t.join()
    assert bad == 0


def frame(v: int) -> np.ndarray:
    return np.full((4, 6, 3), v, np.uint8)


def test_frame_ring_takes_in_order_and_counts_overruns() -> None:
    fr = FrameRing(slots=4, shape=(4, 6, 3))
    for k in range(3):
        fr.write(frame(k), host_ns=1000 * k, base_ns=k)
    assert [fr.take(), fr.take(), fr.take(), fr.take()] == [0, 1, 2, -1]
    for k in range(3, 12):
        fr.write(frame(k), host_ns=1000 * k, base_ns=k)
    seq = fr.take()
    assert seq == 12 - 4 + 1 and fr.overruns == seq - 3
    out = np.empty((4, 6, 3), np.uint8)
    assert fr.read(seq, out) and out[0, 0, 0] == seq
    assert fr.host_ns(seq) == 1000 * seq and fr.base_ns(seq) == seq
    assert not fr.read(2, out)  # long overwritten
    assert fr.latest() == 11 and fr.nearest(9400) == 9


def test_frame_ring_release_and_shape_check() -> None:
    fr = FrameRing(slots=4, shape=(4, 6, 3))
    fr.write(frame(1), host_ns=1, base_ns=1)
    fr.write(frame(2), host_ns=2, base_ns=2)
    assert fr.unreleased == 2
    fr.release(0)
    assert fr.unreleased == 1
    with pytest.raises(ValueError, match="differs"):
        fr.write(np.zeros((5, 6, 3), np.uint8), host_ns=3, base_ns=3)


@pytest.mark.timeout(30)
def test_frame_ring_allocates_nothing_per_frame() -> None:
    fr = FrameRing(slots=8, shape=(120, 160, 3))
    f = np.ones((120, 160, 3), np.uint8)
    out = np.empty_like(f)

    def step(k: int) -> None:
        fr.write(f, host_ns=k, base_ns=k)
        s = fr.take()
        fr.read(s, out)
        fr.release(s)

    peak, retained = peak_allocation(step, warmup=50, calls=3000)
    # one frame copy would be 57600 bytes
    assert peak < ALLOC_BOUND, f"{peak} bytes allocated at peak over 3000 frames"
    assert retained < ALLOC_BOUND, f"{retained} bytes retained over 3000 frames"
