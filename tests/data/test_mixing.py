"""Tests for avfuse/data/mixing.py: the SNR knob, word placement, "none" windows."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from avfuse.data import DataConfig
from avfuse.data.mixing import WINDOW, render_audio
from avfuse.data.speech import build_pool

from .conftest import needs_espeak


@pytest.fixture(scope="module")
def pool():
    if shutil.which("espeak-ng") is None:
        pytest.skip("needs espeak-ng (apt-get install espeak-ng)")
    return build_pool("val", DataConfig.tiny(voices_per_split=(4, 4, 4)))


def _measured_snr(parts) -> float:
    a, b = parts.span
    return 10 * np.log10(np.mean(parts.speech[a:b] ** 2) / np.mean(parts.noise**2))


@needs_espeak
@pytest.mark.parametrize("snr", [-5.0, 0.0, 12.0, 25.0])
def test_snr_knob_sets_measured_snr(pool, snr: float) -> None:
    cfg = DataConfig.tiny(snr_db_range=(snr, snr))
    for i in range(12):
        utt = pool.digits[i % len(pool.digits)][i % 10]
        parts = render_audio(utt, np.random.default_rng(i), cfg, pool)
        assert parts.snr_db == snr
        assert _measured_snr(parts) == pytest.approx(snr, abs=0.05)
        # the stored int16 mixture is the sum of the parts
        mix = (parts.speech + parts.noise) * 32767
        inside = np.abs(mix) < 32000
        np.testing.assert_allclose(parts.mixture[inside], mix[inside], atol=1.0)


@needs_espeak
def test_low_snr_mixture_is_noisier_outside_the_word(pool) -> None:
    def outside_share(snr: float) -> float:
        shares = []
        for i in range(20):
            utt = pool.digits[i % len(pool.digits)][i % 10]
            p = render_audio(
                utt, np.random.default_rng(100 + i), DataConfig.tiny(), pool, snr_db=snr
            )
            x = p.mixture.astype(np.float64)
            a, b = p.span
            shares.append(np.mean(np.r_[x[:a], x[b:]] ** 2) / np.mean(x[a:b] ** 2))
        return float(np.median(shares))

    assert outside_share(-5.0) > 5 * outside_share(20.0)


@needs_espeak
def test_override_changes_only_the_snr(pool) -> None:
    utt = pool.digits[0][3]
    a = render_audio(utt, np.random.default_rng(7), DataConfig.tiny(), pool)
    b = render_audio(utt, np.random.default_rng(7), DataConfig.tiny(), pool, snr_db=-5.0)
    assert a.span == b.span and b.snr_db == -5.0
    # same speech waveform up to the overall level
    ra, rb = a.speech[a.span[0] : a.span[1]], b.speech[b.span[0] : b.span[1]]
    np.testing.assert_allclose(ra / np.abs(ra).max(), rb / np.abs(rb).max(), atol=1e-5)


@needs_espeak
def test_word_fits_the_window_and_none_has_no_speech(pool) -> None:
    slow = DataConfig.tiny(warp_range=(0.5, 0.5))  # stretch words past the window
    for i in range(10):
        p = render_audio(pool.digits[i % len(pool.digits)][i], np.random.default_rng(i), slow, pool)
        assert 0 <= p.span[0] < p.span[1] <= WINDOW
        assert p.mixture.shape == (WINDOW,) and p.mixture.dtype == np.int16
    none = render_audio(None, np.random.default_rng(0), DataConfig.tiny(), pool)
    assert none.span == (0, 0) and not np.any(none.speech) and np.isnan(none.snr_db)
    assert np.abs(none.mixture).max() > 0
