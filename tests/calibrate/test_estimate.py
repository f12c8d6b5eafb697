"""Pairing and the offset's figures, on onset times placed by the test."""

from __future__ import annotations

import numpy as np
import pytest

from avfuse.calibrate.estimate import NoPatternFound, estimate
from avfuse.calibrate.pattern import schedule

FRAME_S = 1 / 30


def _ns(t: np.ndarray) -> np.ndarray:
    return np.round((np.asarray(t) + 100.0) * 1e9).astype(np.int64)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("offset_ms", [-2400.0, -700.0, -300.0, 0.0, 120.0, 650.0, 2900.0])
def test_offsets_past_half_a_second_are_not_folded(offset_ms: float) -> None:
    """With a flash a second, +650 ms read as -350 ms; the coded gaps tell them apart."""
    v = schedule(30.0)
    a = v + offset_ms / 1e3
    # the capture starts and ends at its own moments: each end loses what the other misses
    v, a = v[v < 29.0 - max(offset_ms, 0) / 1e3], a[a > 0.5 + max(-offset_ms, 0) / 1e3]
    cal = estimate(_ns(v), _ns(a), frame_s=FRAME_S)
    assert cal.offset_ms == pytest.approx(offset_ms, abs=0.01)
    assert cal.pairs >= 10


@pytest.mark.timeout(30)
def test_figures_are_the_pairs_median_and_spread() -> None:
    v = schedule(30.0)
    jitter = np.tile([-4.0, 0.0, 4.0, 1.0], 10)[: v.size] / 1e3
    cal = estimate(_ns(v), _ns(v + 0.2 + jitter), frame_s=FRAME_S)
    assert cal.pairs == v.size
    assert cal.offset_ms == pytest.approx(200.0 + float(np.median(jitter * 1e3)), abs=0.01)
    assert cal.p5_ms == pytest.approx(196.0, abs=0.5) and cal.p95_ms == pytest.approx(
        204.0, abs=0.5
    )
    assert "200 ms late" in cal.verdict and "--av-offset-ms 200" in cal.verdict


@pytest.mark.timeout(30)
def test_a_periodic_clapperboard_is_refused_as_ambiguous() -> None:
    """Once a second, +300 and -700 ms fit equally: no number is better than a wrong one."""
    v = np.arange(1.0, 29.0, 1.0)
    with pytest.raises(NoPatternFound, match="pair as well"):
        estimate(_ns(v), _ns(v + 0.3), frame_s=FRAME_S)


@pytest.mark.timeout(30)
def test_unrelated_onsets_are_no_pattern() -> None:
    rng = np.random.default_rng(1)
    v = np.sort(rng.uniform(0, 30, 25))
    a = np.sort(rng.uniform(0, 30, 25))
    with pytest.raises(NoPatternFound):
        estimate(_ns(v), _ns(a), frame_s=FRAME_S)


@pytest.mark.timeout(30)
def test_too_few_pairs_is_no_pattern() -> None:
    v = schedule(30.0)[:3]
    with pytest.raises(NoPatternFound, match="at least 4"):
        estimate(_ns(v), _ns(v), frame_s=FRAME_S)


@pytest.mark.timeout(30)
def test_an_in_sync_chain_is_said_so() -> None:
    v = schedule(20.0)
    cal = estimate(_ns(v), _ns(v + 0.004), frame_s=FRAME_S)
    assert cal.in_sync and cal.verdict.startswith("in sync")
