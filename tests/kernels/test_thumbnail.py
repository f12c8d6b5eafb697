"""The onset sync monitor's thumbnail against a float64 block mean, per pixel format."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from avfuse.errors import UsageError
from avfuse.kernels.thumbnail import Thumbnail

H, W = 240, 320  # 10x10 pixel blocks for the 24x32 thumbnail


def _frame(fmt: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A frame in the ring's layout whose 10x10 blocks are each one colour, and the luma
    of each block (0..255): what any average inside a block must give."""
    blocks = rng.integers(0, 256, (24, 32, 3)).astype(np.uint8)
    img = np.repeat(np.repeat(blocks, H // 24, axis=0), W // 32, axis=1)
    b, g, r = (blocks[..., i].astype(np.float64) for i in (0, 1, 2))
    if fmt == "rgb24":
        return img, 0.299 * b + 0.587 * g + 0.114 * r  # channel 0 is red here
    if fmt == "bgr24":
        return img, 0.299 * r + 0.587 * g + 0.114 * b
    y = img[..., 0]
    if fmt == "gray":
        return np.ascontiguousarray(y), b
    chroma = rng.integers(0, 256, (H // 2, W), dtype=np.uint8)  # must be ignored
    return np.concatenate([y, chroma]), b


@pytest.mark.parametrize("fmt", ["bgr24", "rgb24", "gray", "nv12", "i420"])
def test_thumbnail_is_the_luma_of_each_block(fmt: str) -> None:
    frame, luma = _frame(fmt, np.random.default_rng(3))
    out = np.full((24, 32), -1.0, np.float32)
    Thumbnail()(frame, fmt, out)
    # OpenCV rounds the luma to uint8: within 1 level of 255
    assert np.abs(out * 255.0 - luma).max() <= 1.0


@pytest.mark.parametrize("size", [(240, 320), (480, 640), (1080, 1920)])
def test_sensor_noise_stays_far_below_an_onset(size: tuple[int, int]) -> None:
    """A static scene with sensor noise (3 levels) must stay 'quiet' for the monitor
    (below half its onset threshold): each thumbnail pixel averages several pixels."""
    from avfuse.engine.sync import SyncConfig

    rng, t = np.random.default_rng(1), Thumbnail()
    grey = np.full((*size, 3), 128.0)
    a, b = np.zeros((24, 32), np.float32), np.zeros((24, 32), np.float32)
    diffs = []
    for _ in range(5):
        t(np.clip(grey + rng.normal(0, 3, grey.shape), 0, 255).astype(np.uint8), "bgr24", a)
        t(np.clip(grey + rng.normal(0, 3, grey.shape), 0, 255).astype(np.uint8), "bgr24", b)
        diffs.append(float(np.abs(a - b).mean()))
    assert max(diffs) < SyncConfig().video_rise / 2, diffs


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
