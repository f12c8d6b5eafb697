"""The onset sync monitor's thumbnail against a float64 block mean, per pixel format."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from avfuse.errors import UsageError
from avfuse.kernels.thumbnail import Thumbnail

H, W = 240, 320  # 10x10 pixel blocks for the 24x32 thumbnail


def _block_mean(plane: np.ndarray) -> np.ndarray:
    return plane.astype(np.float64).reshape(24, H // 24, 32, W // 32).mean(axis=(1, 3))


def _frame(fmt: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A frame in the ring's layout and its luma (float64, 0..255) per 10x10 block."""
    if fmt in ("bgr24", "rgb24"):
        img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        b, g, r = (img[..., i] for i in ((0, 1, 2) if fmt == "bgr24" else (2, 1, 0)))
        luma = 0.299 * _block_mean(r) + 0.587 * _block_mean(g) + 0.114 * _block_mean(b)
        return img, luma
    y = rng.integers(0, 256, (H, W), dtype=np.uint8)
    if fmt == "gray":
        return y, _block_mean(y)
    chroma = rng.integers(0, 256, (H // 2, W), dtype=np.uint8)  # must be ignored
    return np.concatenate([y, chroma]), _block_mean(y)


@pytest.mark.parametrize("fmt", ["bgr24", "rgb24", "gray", "nv12", "i420"])
def test_thumbnail_is_the_block_mean_of_the_luma(fmt: str) -> None:
    frame, luma = _frame(fmt, np.random.default_rng(3))
    out = np.full((24, 32), -1.0, np.float32)
    Thumbnail()(frame, fmt, out)
    # OpenCV rounds the area mean and the luma to uint8: within 1.5 levels of 255
    assert np.abs(out * 255.0 - luma).max() <= 1.5


def test_a_flash_moves_the_whole_thumbnail_and_other_sizes_need_no_new_buffers() -> None:
    t = Thumbnail()
    dark, bright = np.zeros((24, 32), np.float32), np.zeros((24, 32), np.float32)
    t(np.full((H, W, 3), 20, np.uint8), "bgr24", dark)
    t(np.full((480, 640, 3), 230, np.uint8), "bgr24", bright)  # a resolution change
    assert np.allclose(bright - dark, 210 / 255, atol=1 / 255)


def test_thumbnail_allocates_nothing_per_frame() -> None:
    t, out = Thumbnail(), np.zeros((24, 32), np.float32)
    frame = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    for _ in range(5):
        t(frame, "bgr24", out)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(200):
            t(frame, "bgr24", out)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    # OpenCV's bindings keep ~650 bytes of small objects; a float32 thumbnail made anew
    # would be 3072 bytes, a float64 one 6144
    assert peak < 2048, peak


def test_unknown_pixel_format_is_one_clear_error() -> None:
    with pytest.raises(UsageError, match="yuyv"):
        Thumbnail()(np.zeros((4, 4), np.uint8), "yuyv", np.zeros((24, 32), np.float32))
