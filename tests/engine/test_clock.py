"""ClockModel: drift and offset recovery, outlier rejection, clock jumps, bounded memory."""

from __future__ import annotations

import numpy as np
import pytest

from avfuse.engine.clock import ClockModel, SampleClock, now_ns

H0 = 7_000_000_000_000


def feed(
    model: ClockModel,
    *,
    seconds: float,
    period: float,
    ppm: float,
    jitter_ms: float,
    outliers: float = 0.0,
    seed: int = 0,
    step_at: float | None = None,
    step_ms: float = 0.0,
) -> np.ndarray:
    """Feed (device, host) pairs; returns |to_host error| in ms after the first 5 s."""
    rng = np.random.default_rng(seed)
    errs = []
    for k in range(int(seconds / period)):
        d = k * period
        true = H0 + d * 1e9 * (1 + ppm * 1e-6)
        if step_at is not None and d >= step_at:
            true += step_ms * 1e6
        j = rng.uniform(-jitter_ms, jitter_ms) * 1e6
        if rng.random() < outliers:
            j += rng.uniform(40, 300) * 1e6  # late arrivals: one-sided
        model.update(d, int(true + j))
        if d > 5.0:
            errs.append(abs(model.to_host(d) - true) / 1e6)
    return np.array(errs)


def test_drift_and_offset_are_recovered() -> None:
    m = ClockModel()
    errs = feed(m, seconds=120, period=0.02, ppm=300, jitter_ms=10)
    assert abs(m.drift_ppm - 300) < 30
    assert m.residual_ms == pytest.approx(5.0, rel=0.2)  # mean |uniform(-10, 10)| ms
    assert np.percentile(errs, 99) < 2.0
    assert m.rejected == 0 and m.jumps == 0
    # offset: host at device time 0
    assert abs(m.offset_ns - H0) < 5e6
    assert m.rate == pytest.approx(1e9 * (1 + 300e-6), rel=3e-5)


def test_outliers_are_rejected_and_counted() -> None:
    clean, dirty = ClockModel(), ClockModel()
    e_clean = feed(clean, seconds=60, period=0.02, ppm=-200, jitter_ms=5)
    e_dirty = feed(dirty, seconds=60, period=0.02, ppm=-200, jitter_ms=5, outliers=0.03)
    assert 0.02 * 3000 < dirty.rejected < 0.04 * 3000
    assert dirty.jumps == 0
    # the late arrivals do not bias the fit
    assert np.percentile(e_dirty, 99) < np.percentile(e_clean, 99) + 0.5


def test_a_persistent_step_is_a_counted_jump_and_refitted() -> None:
    m = ClockModel()
    errs = feed(m, seconds=60, period=0.02, ppm=100, jitter_ms=2, step_at=30.0, step_ms=500.0)
    assert m.jumps == 1
    # a few points after the step the mapping follows the new offset again
    assert np.percentile(errs[-1000:], 99) < 2.0
    assert m.rejected < 5  # the jump's own points are not counted as outliers


def test_a_lasting_rise_in_jitter_is_followed_not_rejected_forever() -> None:
    m = ClockModel()
    rng = np.random.default_rng(3)
    for k in range(3000):  # 1 ms of jitter for a minute, then 25 ms
        d = k * 0.02
        j = rng.uniform(-1, 1) if k < 1500 else rng.uniform(-25, 25)
        m.update(d, int(H0 + d * 1e9 + j * 1e6))
    assert m.rejected < 300 and m.jumps == 0
    assert m.residual_ms > 8.0  # the gate opened to the new noise level
    assert abs(m.to_host(60.0) - (H0 + 60e9)) < 3e6


def test_to_device_inverts_to_host() -> None:
    m = ClockModel()
    feed(m, seconds=20, period=0.01, ppm=250, jitter_ms=1)
    for d in (0.0, 3.3, 19.99, 100.0):
        assert m.to_device(m.to_host(d)) == pytest.approx(d, abs=1e-6)


def test_memory_is_bounded_by_the_window() -> None:
    m = ClockModel(window=64)
    feed(m, seconds=30, period=0.01, ppm=0, jitter_ms=1)
    assert m.points == 64 and m.updates == 3000


def test_unfitted_model_refuses_to_map() -> None:
    with pytest.raises(RuntimeError):
        ClockModel().to_host(1.0)
    with pytest.raises(ValueError):
        ClockModel(window=2)


def test_sample_clock_maps_indices() -> None:
    c = SampleClock(sample_rate=16000)
    t0 = now_ns()
    for k in range(200):
        c.update(k * 160, t0 + k * 10_000_000)
    assert c.index_to_host(16000) == pytest.approx(t0 + 1_000_000_000, abs=1000)
    assert c.host_to_index(t0 + 500_000_000) == pytest.approx(8000, abs=0.1)


def test_a_restart_keeps_the_published_fit_until_the_new_timeline_replaces_it() -> None:
    """After a reconnect the audio index goes on but the chain is new: a 10 ms shift, within
    the outlier gate, must not be averaged with the old chain's points (that tilts the fit
    by hundreds of ppm for a whole window: -418 ppm here without the restart)."""
    m, rng = ClockModel(), np.random.default_rng(0)
    for k in range(1000):  # 20 s of the old chain, 10 ms later than the new one, no drift
        m.update(k * 0.02, int(H0 + 10e6 + k * 0.02 * 1e9 + rng.uniform(-3e6, 3e6)))
    before = m.fit
    m.restart()
    assert m.fit is before  # readers map through it until the next update
    for k in range(1000, 1300):  # 6 s of the new chain
        m.update(k * 0.02, int(H0 + k * 0.02 * 1e9 + rng.uniform(-3e6, 3e6)))
    assert m.fit is not before and m.jumps == 0
    assert abs(m.drift_ppm) < 150
    assert abs(m.to_host(26.0) - (H0 + 26e9)) < 1e6
