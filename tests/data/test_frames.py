"""Tests for avfuse/data/frames.py: the model-size camera frame."""

from __future__ import annotations

import numpy as np

from avfuse.data import DataConfig
from avfuse.data.frames import render_frame


def test_frame_is_model_size_and_seeded() -> None:
    cfg = DataConfig.tiny()
    a = render_frame(7, "font:hershey_plain", np.random.default_rng(5), cfg)
    b = render_frame(7, "font:hershey_plain", np.random.default_rng(5), cfg)
    assert a.shape == (48, 64, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)


def test_noise_knob_raises_pixel_noise() -> None:
    def roughness(sigma: float) -> float:
        cfg = DataConfig.tiny(
            image_noise_range=(sigma, sigma), blur_range=(0.0, 0.0), jpeg_prob=0.0
        )
        vals = []
        for i in range(8):
            f = render_frame(None, "", np.random.default_rng(i), cfg).astype(np.float64)
            vals.append(np.median(np.abs(np.diff(f, axis=1))))
        return float(np.mean(vals))

    assert roughness(25.0) > 3 * roughness(1.0)
