"""Voice and writer warps (avfuse/models/warp.py): each moves what it says."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avfuse.kernels.reference import AudioParams
from avfuse.models.augment import AugmentConfig
from avfuse.models.warp import audio_warp, image_warp, mel_source_index


def _centre_hz(band: float, p: AudioParams) -> float:
    """Band centre in Hz, HTK mel, n_mels + 2 points from fmin to fmax (written out here)."""
    lo = 2595 * np.log10(1 + p.fmin / 700)
    hi = 2595 * np.log10(1 + p.fmax / 700)
    m = lo + (hi - lo) * (band + 1) / (p.n_mels + 1)
    return float(700 * (10 ** (m / 2595) - 1))


def test_vtl_warp_moves_a_formant_by_the_factor_in_hz() -> None:
    p = AudioParams()
    alpha = torch.tensor([1.1, 1 / 1.1])
    idx = mel_source_index(alpha, p)
    # output band 40 reads the input at the band whose centre is f(40) / alpha
    for k, a in enumerate(alpha.tolist()):
        src = float(idx[k, 40])
        assert _centre_hz(src, p) == pytest.approx(_centre_hz(40, p) / a, rel=2e-3)
    # a peak at input band 30 lands higher for alpha > 1
    x = torch.zeros(1, 64, 97)
    x[:, 30] = 1.0
    cfg = AugmentConfig(vtl_warp=0.1, p_audio_warp=1.0)
    moved = {
        int(audio_warp(x, cfg, torch.Generator().manual_seed(s))[0, :, 0].argmax())
        for s in range(8)
    }
    assert moved - {30}, "no draw moved the peak"


def test_tempo_stretches_a_word_in_time() -> None:
    x = torch.zeros(256, 64, 97)
    x[:, :, 40:60] = 1.0  # a 20-frame "word"
    cfg = AugmentConfig(tempo=1.25, p_audio_warp=1.0)
    out = audio_warp(x, cfg, torch.Generator().manual_seed(0))
    lengths = (out[:, 0] > 0.5).sum(dim=1).float()
    assert lengths.min() >= 20 / 1.25 - 1.5 and lengths.max() <= 20 * 1.25 + 1.5
    assert lengths.std() > 1.0  # rates differ from sample to sample


def test_eq_adds_a_smooth_curve_constant_in_time() -> None:
    x = torch.zeros(16, 64, 97)
    out = audio_warp(x, AugmentConfig(eq=0.2, p_audio_warp=1.0), torch.Generator().manual_seed(0))
    assert torch.allclose(out[:, :, :1].expand_as(out), out)  # same curve in every frame
    assert out.abs().max() > 0.05
    assert (out[:, 1:, 0] - out[:, :-1, 0]).abs().max() < 0.1  # smooth across bands


def test_stroke_thickens_and_thins_dark_ink() -> None:
    img = torch.ones(64, 1, 24, 24)
    img[:, :, 6:18, 11:13] = -1.0  # a dark vertical stroke, 2 px wide
    cfg = AugmentConfig(stroke=1.0, p_image_warp=1.0)
    out = image_warp(img, cfg, torch.Generator().manual_seed(1))
    ink = (out < 0).flatten(1).sum(1)
    assert ink.max() > 24 * 1.2 and ink.min() < 24  # some thicker, some thinner


def test_rotation_turns_a_bar() -> None:
    img = torch.ones(1, 1, 48, 64)
    img[:, :, 23:25, 12:52] = -1.0  # a horizontal dark bar through the centre
    cfg = AugmentConfig(rotate=30.0, p_image_warp=1.0)
    for seed in range(20):
        out = image_warp(img, cfg, torch.Generator().manual_seed(seed))[0, 0]
        rows = torch.nonzero(out < 0)[:, 0]
        if rows.max() - rows.min() > 8:  # a turn of > ~10 degrees spans many rows
            return
    raise AssertionError("no draw of up to 30 degrees turned the bar")


def test_warps_are_off_by_default_and_draw_nothing() -> None:
    """The basic recipe is unchanged: the same output and the generator left where it was."""
    g = torch.Generator().manual_seed(3)
    a, v = torch.randn(4, 64, 97), torch.randn(4, 1, 48, 64)
    assert audio_warp(a, AugmentConfig(), g) is a and image_warp(v, AugmentConfig(), g) is v
    assert torch.equal(g.get_state(), torch.Generator().manual_seed(3).get_state())


def test_warps_are_seeded_and_spare_the_unwarped_share() -> None:
    cfg = AugmentConfig.varied(p_audio_warp=0.5, p_image_warp=0.5)
    a, v = torch.randn(200, 64, 97), torch.randn(200, 1, 48, 64)
    a1 = audio_warp(a, cfg, torch.Generator().manual_seed(7))
    a2 = audio_warp(a, cfg, torch.Generator().manual_seed(7))
    v1 = image_warp(v, cfg, torch.Generator().manual_seed(7))
    assert torch.equal(a1, a2)
    same_a = (a1 == a).flatten(1).all(1).float().mean()
    assert 0.35 < float(same_a) < 0.65
    changed_v = ~(v1 == v).flatten(1).all(1)
    assert 0.35 < float(changed_v.float().mean()) < 0.65
