"""Augmentations: modality dropout zeroes AND flags, SpecAugment masks bands, all seeded."""

from __future__ import annotations

import torch

from avfuse.models.augment import AugmentConfig, image_augment, modality_dropout, spec_augment


def test_modality_dropout_zeroes_and_flags():
    g = torch.Generator().manual_seed(0)
    audio = torch.randn(2000, 64, 97) + 5
    image = torch.randn(2000, 1, 48, 64) + 5
    a, v, m = modality_dropout(audio, image, AugmentConfig(), g)
    no_audio, no_video = m[:, 0] == 0, m[:, 1] == 0
    assert not (no_audio & no_video).any()
    assert 0.10 < no_audio.float().mean() < 0.20
    assert 0.10 < no_video.float().mean() < 0.20
    assert (a[no_audio] == 0).all() and (v[no_video] == 0).all()
    assert (a[~no_audio] == audio[~no_audio]).all()


def test_spec_augment_masks_whole_bands_and_is_seeded():
    cfg = AugmentConfig(time_masks=1, time_width=10, freq_masks=1, freq_width=6)
    x = torch.ones(64, 64, 97)
    out1 = spec_augment(x, cfg, torch.Generator().manual_seed(3))
    out2 = spec_augment(x, cfg, torch.Generator().manual_seed(3))
    assert torch.equal(out1, out2)
    zero = out1 == 0
    # a masked frequency band is zero over all time; a masked time span over all bands
    rows = zero.all(dim=2).sum(dim=1)
    cols = zero.all(dim=1).sum(dim=1)
    assert rows.max() <= 6 and cols.max() <= 10
    assert (rows + cols).sum() > 0


def test_image_shift_moves_content():
    cfg = AugmentConfig(shift=2, contrast=0.0, noise=0.0)
    x = torch.zeros(32, 1, 12, 12)
    x[:, :, 6, 6] = 1.0
    out = image_augment(x, cfg, torch.Generator().manual_seed(0))
    peaks = out.flatten(1).argmax(1)
    assert (out.flatten(1).max(1).values == 1.0).all()
    assert len(set(peaks.tolist())) > 1  # not every sample stayed put
