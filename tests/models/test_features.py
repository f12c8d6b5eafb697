"""Features come from the reference pre-processing, batched, and normalise like the manifest."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from avfuse.kernels.reference import image_to_tensor, log_mel
from avfuse.models.features import AUDIO, VIDEO, Normalisation, raw_features


def test_batched_features_equal_the_per_sample_reference():
    rng = np.random.default_rng(0)
    audio = (rng.normal(size=(5, 16000)) * 3000).astype(np.int16)
    images = rng.integers(0, 256, size=(5, 48, 64, 3), dtype=np.uint8)
    feats = raw_features(images, audio, np.arange(5))
    for i in range(5):
        np.testing.assert_allclose(feats.audio[i], log_mel(audio[i], AUDIO), rtol=1e-6, atol=1e-4)
        np.testing.assert_allclose(feats.image[i], image_to_tensor(images[i], VIDEO), atol=1e-6)
    assert feats.audio.dtype == np.float32 and feats.audio.shape == (5, 64, 97)
    assert feats.image.shape == (5, 1, 48, 64)


def test_normalisation_matches_reference_with_manifest_params():
    rng = np.random.default_rng(1)
    audio = (rng.normal(size=(8, 16000)) * 2000).astype(np.int16)
    images = rng.integers(0, 256, size=(8, 48, 64, 3), dtype=np.uint8)
    raw = raw_features(images, audio, np.zeros(8))
    norm = Normalisation.fit(raw)
    feats = norm.apply(raw)
    assert abs(feats.audio.mean()) < 1e-3 and abs(feats.audio.std() - 1) < 1e-3
    ap, vp = norm.audio_params(), norm.video_params()
    np.testing.assert_allclose(feats.audio[3], log_mel(audio[3], ap), atol=1e-4)
    np.testing.assert_allclose(feats.image[3], image_to_tensor(images[3], vp), atol=1e-4)
    assert replace(vp, mean=(0.0,), std=(1.0,)) == VIDEO
