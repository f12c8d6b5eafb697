"""Image pre-processing parameters and the float64 reference of the exact-area path.

`VideoParams` describes two families of image pre-processing:

exact-area (interpolation="exact-area", avfuse's own models; the defaults):
    colour    BGR/RGB/gray uint8 or YUV (NV12/I420, BT.601 limited range) -> RGB float in
              [0, 1]; then to the model's colour ("gray": 0.299 R + 0.587 G + 0.114 B)
    roi       the region of interest is cut out of the converted frame (`roi_box`)
    resize    area (box) resampling to height x width (resize="stretch"): output pixel j
              averages the input interval [j*s, (j+1)*s), s = in/out, with fractional
              edge weights; separable, so it is two small matrix products
    normalise (x - mean[c]) / std[c]
    layout    (C, H, W) or (H, W, C)
    Computed here in float64; the numba and CUDA kernels match it to float32 rounding.

OpenCV (interpolation "area", "bilinear", "nearest", "bicubic", "lanczos": the
pre-processing of third-party models written with OpenCV): uint8 all the way to the
resized pixels, with OpenCV's own rounding, then (x * scale - mean[c]) / std[c] in
float32. There the OpenCV kernel (kernels/opencv_image.py) *is* the definition; this
module only holds the geometry both families share (`roi_box`, `resize_geometry`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import numpy as np

__all__ = [
    "COLOURS",
    "IMAGE_DTYPES",
    "IMAGE_LAYOUTS",
    "INTERPOLATIONS",
    "PIXEL_FORMATS",
    "RESIZE_MODES",
    "ResizeGeometry",
    "VideoParams",
    "area_weights",
    "image_to_tensor",
    "resize_geometry",
    "roi_box",
    "to_rgb",
    "video_variant",
    "yuv_to_rgb",
]

PIXEL_FORMATS = ("bgr24", "rgb24", "gray", "nv12", "i420")
COLOURS = ("gray", "rgb", "bgr")
RESIZE_MODES = ("stretch", "letterbox", "crop", "short_side")
INTERPOLATIONS = ("exact-area", "area", "bilinear", "nearest", "bicubic", "lanczos")
IMAGE_DTYPES = ("float32", "uint8")
IMAGE_LAYOUTS = ("NCHW", "NHWC")
_FULL_ROI = (0.0, 0.0, 1.0, 1.0)
_DEFAULT_SCALE = 1.0 / 255.0


def _choice(name: str, value: object, options: tuple[str, ...]) -> None:
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class VideoParams:
    """Image pre-processing parameters of one model input (see the module docstring).

    Attributes:
        height: model input height in pixels.
        width: model input width in pixels.
        colour: model colour order, one of "gray", "rgb", "bgr".
        resize: "stretch" (to height x width), "letterbox" (fit inside, aspect kept,
            centred, the rest filled with `pad_value`), "crop" (cover, aspect kept, centre
            crop) or "short_side" (short side to `short_side`, then a centre crop). The v1
            value "area" is read as "stretch" with interpolation "exact-area".
        interpolation: "exact-area" (float64 area resampling, avfuse's own) or an OpenCV
            interpolation on uint8: "area", "bilinear", "nearest", "bicubic", "lanczos".
        mean: per-channel offset after scaling (length = channels).
        std: per-channel scale (length = channels).
        scale: pixel values are multiplied by this before (x - mean) / std (OpenCV
            interpolations; the exact-area path works in [0, 1]).
        dtype: "float32", or "uint8" to feed the resized pixels raw (no scale/mean/std).
        layout: "NCHW" or "NHWC" (the model input's axis order, without the batch).
        pad_value: raw pixel value (0..255) of the letterbox border.
        short_side: target of the short side for resize="short_side".
        roi: region of interest (x, y, w, h) as fractions of the frame, cut out first.
    """

    height: int = 64
    width: int = 64
    colour: str = "gray"
    resize: str = "stretch"
    interpolation: str = "exact-area"
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.25,)
    scale: float = _DEFAULT_SCALE
    dtype: str = "float32"
    layout: str = "NCHW"
    pad_value: float = 0.0
    short_side: int | None = None
    roi: tuple[float, float, float, float] = _FULL_ROI

    def __post_init__(self) -> None:
        # v1 manifests (and checkpoints) say resize="area" for the exact-area stretch
        if self.resize == "area" and self.interpolation == "exact-area":
            object.__setattr__(self, "resize", "stretch")
        for name in ("mean", "std", "roi"):  # lists from JSON compare and hash as tuples
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))

    @property
    def channels(self) -> int:
        """Number of model input channels."""
        return 1 if self.colour == "gray" else 3

    @property
    def out_shape(self) -> tuple[int, int, int]:
        """(C, H, W) or (H, W, C) of the model's image input (no batch axis)."""
        if self.layout == "NHWC":
            return (self.height, self.width, self.channels)
        return (self.channels, self.height, self.width)

    def validate(self) -> None:
        """Raise ValueError naming the parameter when the set is inconsistent."""
        if self.height <= 0 or self.width <= 0:
            raise ValueError("height and width must be positive")
        _choice("colour", self.colour, COLOURS)
        if self.resize == "area":
            raise ValueError(
                "resize='area' (v1) means resize='stretch' with interpolation='exact-area'; "
                f"with interpolation={self.interpolation!r} write resize='stretch'"
            )
        _choice("resize", self.resize, RESIZE_MODES)
        _choice("interpolation", self.interpolation, INTERPOLATIONS)
        _choice("dtype", self.dtype, IMAGE_DTYPES)
        _choice("layout", self.layout, IMAGE_LAYOUTS)
        exact = self.interpolation == "exact-area"
        if exact and self.resize != "stretch":
            raise ValueError(
                f"resize={self.resize!r} needs an OpenCV interpolation "
                "('area', 'bilinear', ...); exact-area only stretches"
            )
        if exact and self.dtype != "float32":
            raise ValueError("dtype='uint8' needs an OpenCV interpolation, not 'exact-area'")
        if exact and self.scale != _DEFAULT_SCALE:
            raise ValueError(
                "scale applies to the OpenCV interpolations; exact-area works in [0, 1]"
            )
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError("scale must be a positive number")
        if not 0.0 <= self.pad_value <= 255.0:
            raise ValueError("pad_value is a raw pixel value in [0, 255]")
        if self.dtype == "uint8" and self.pad_value != int(self.pad_value):
            raise ValueError("pad_value must be a whole number for dtype='uint8'")
        if self.resize == "short_side":
            if self.short_side is None or self.short_side < max(self.height, self.width):
                raise ValueError(
                    "resize='short_side' needs short_side >= max(height, width) "
                    f"= {max(self.height, self.width)}, got {self.short_side}"
                )
        elif self.short_side is not None:
            raise ValueError(
                f"short_side is only used with resize='short_side', not {self.resize!r}"
            )
        self._validate_roi()
        if self.dtype == "float32":
            if len(self.mean) != self.channels or len(self.std) != self.channels:
                raise ValueError(
                    f"mean and std need {self.channels} value(s) for colour {self.colour!r}"
                )
            if any(s <= 0 for s in self.std):
                raise ValueError("std values must be positive")

    def _validate_roi(self) -> None:
        if len(self.roi) != 4:
            raise ValueError("roi must be (x, y, w, h) fractions of the frame")
        x, y, w, h = self.roi
        eps = 1e-9
        if not (x >= 0 and y >= 0 and w > 0 and h > 0 and x + w <= 1 + eps and y + h <= 1 + eps):
            raise ValueError(f"roi (x, y, w, h) must lie inside the frame (0..1), got {self.roi}")


def video_variant(params: VideoParams) -> str | None:
    """The first setting outside the exact-area NCHW float32 path, as "name=value", or None."""
    if params.interpolation != "exact-area":
        return f"interpolation={params.interpolation!r}"
    for name, default in (("resize", "stretch"), ("layout", "NCHW"), ("dtype", "float32")):
        if getattr(params, name) != default:
            return f"{name}={getattr(params, name)!r}"
    if tuple(params.roi) != _FULL_ROI:
        return f"roi={params.roi!r}"
    return None


class ResizeGeometry(NamedTuple):
    """Where the resized image goes: size (rh, rw), crop offset (y0, x0) into it for the
    cropping modes, placement (top, left) in the output for the letterbox."""

    rh: int
    rw: int
    y0: int = 0
    x0: int = 0
    top: int = 0
    left: int = 0


def roi_box(height: int, width: int, roi: tuple[float, ...]) -> tuple[int, int, int, int]:
    """Pixel rows y0:y1 and columns x0:x1 of `roi` in a height x width frame.

    Edges are rounded to the nearest pixel (round half to even) and the box keeps at
    least one pixel per axis.
    """
    x, y, w, h = roi
    x0 = min(int(round(x * width)), width - 1)
    y0 = min(int(round(y * height)), height - 1)
    x1 = max(min(int(round((x + w) * width)), width), x0 + 1)
    y1 = max(min(int(round((y + h) * height)), height), y0 + 1)
    return y0, y1, x0, x1


def resize_geometry(height: int, width: int, params: VideoParams) -> ResizeGeometry:
    """Resize target and offsets for a height x width source (after the roi).

    stretch    to (H, W)
    letterbox  r = min(H / h, W / w); size (round(h r), round(w r)), each at least 1 and at
               most H or W; placed at ((H - rh) // 2, (W - rw) // 2)
    crop       r = max(H / h, W / w); size (round(h r), round(w r)), at least (H, W);
               cut at ((rh - H) // 2, (rw - W) // 2)
    short_side r = short_side / min(h, w); size (round(h r), round(w r)); cut as crop
    (round is Python's, half to even, as PaddleClas's ResizeImage uses.)
    """
    H, W = params.height, params.width  # noqa: N806 - the model's sizes
    if params.resize == "stretch":
        return ResizeGeometry(H, W)
    if params.resize == "letterbox":
        r = min(H / height, W / width)
        rh = min(H, max(1, int(round(height * r))))
        rw = min(W, max(1, int(round(width * r))))
        return ResizeGeometry(rh, rw, top=(H - rh) // 2, left=(W - rw) // 2)
    if params.resize == "crop":
        r = max(H / height, W / width)
    else:
        r = float(params.short_side) / min(height, width)
    rh = max(H, int(round(height * r)))
    rw = max(W, int(round(width * r)))
    return ResizeGeometry(rh, rw, y0=(rh - H) // 2, x0=(rw - W) // 2)


# ----------------------------------------------------------------------------- exact path


def yuv_to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """BT.601 limited-range YUV (full-resolution planes, uint8) to RGB float64 in [0, 1]."""
    yf = (y.astype(np.float64) - 16.0) * (255.0 / 219.0)
    uf = (u.astype(np.float64) - 128.0) * (255.0 / 224.0)
    vf = (v.astype(np.float64) - 128.0) * (255.0 / 224.0)
    r = yf + 1.402 * vf
    g = yf - 0.344136 * uf - 0.714136 * vf
    b = yf + 1.772 * uf
    return np.clip(np.stack([r, g, b], axis=-1) / 255.0, 0.0, 1.0)


def _upsample_chroma(plane: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour 2x chroma upsampling (each chroma sample covers a 2x2 block)."""
    return np.repeat(np.repeat(plane, 2, axis=0), 2, axis=1)[:height, :width]


def to_rgb(frame: np.ndarray, pixel_format: str) -> np.ndarray:
    """Convert a frame as cameras and decoders deliver it to RGB float64 (H, W, 3) in [0, 1].

    Args:
        frame: bgr24/rgb24: (H, W, 3) uint8; gray: (H, W) uint8; nv12/i420: the
            (H * 3 // 2, W) uint8 buffer of a planar 4:2:0 frame (H and W even).
        pixel_format: one of "bgr24", "rgb24", "gray", "nv12", "i420".
    """
    if pixel_format not in PIXEL_FORMATS:
        raise ValueError(f"unknown pixel format {pixel_format!r}; use one of {PIXEL_FORMATS}")
    if pixel_format in ("bgr24", "rgb24"):
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"{pixel_format} frame must be (H, W, 3), got {frame.shape}")
        rgb = frame.astype(np.float64) / 255.0
        return rgb[..., ::-1] if pixel_format == "bgr24" else rgb
    if pixel_format == "gray":
        g = frame.astype(np.float64) / 255.0
        return np.repeat(g[..., None], 3, axis=-1)
    rows, width = frame.shape
    height = rows * 2 // 3
    if rows != height * 3 // 2 or height % 2 or width % 2:
        raise ValueError(
            f"{pixel_format} buffer must be (H*3/2, W) with even H, W; got {frame.shape}"
        )
    y = frame[:height]
    chroma = frame[height:]
    if pixel_format == "nv12":
        uv = chroma.reshape(height // 2, width // 2, 2)
        u, v = uv[..., 0], uv[..., 1]
    else:
        flat = chroma.reshape(-1)
        q = (height // 2) * (width // 2)
        u = flat[:q].reshape(height // 2, width // 2)
        v = flat[q : 2 * q].reshape(height // 2, width // 2)
    return yuv_to_rgb(y, _upsample_chroma(u, height, width), _upsample_chroma(v, height, width))


@lru_cache(maxsize=64)
def _area_weights_cached(n_in: int, n_out: int) -> np.ndarray:
    scale = n_in / n_out
    w = np.zeros((n_out, n_in), dtype=np.float64)
    for j in range(n_out):
        lo, hi = j * scale, (j + 1) * scale
        i0, i1 = int(np.floor(lo)), min(int(np.ceil(hi)), n_in)
        for i in range(i0, i1):
            w[j, i] = min(hi, i + 1) - max(lo, i)
    w /= w.sum(axis=1, keepdims=True)
    w.setflags(write=False)
    return w


def area_weights(n_in: int, n_out: int) -> np.ndarray:
    """Area-resampling matrix (n_out, n_in); rows sum to 1. Read-only and cached."""
    if n_in <= 0 or n_out <= 0:
        raise ValueError("sizes must be positive")
    return _area_weights_cached(int(n_in), int(n_out))


def image_to_tensor(
    frame: np.ndarray, params: VideoParams, pixel_format: str = "bgr24"
) -> np.ndarray:
    """Pre-process one frame into the model's float64 tensor (exact-area path).

    Colour conversion runs before the resize; both are linear, so the order only
    matters for rounding, and this order is the defined one.

    Returns:
        (C, H, W), or (H, W, C) for layout "NHWC".
    """
    if params.interpolation != "exact-area":
        raise ValueError(
            f"image_to_tensor is the exact-area reference; interpolation="
            f"{params.interpolation!r} is defined by kernels.opencv_image.Image"
        )
    rgb = to_rgb(frame, pixel_format)
    if tuple(params.roi) != _FULL_ROI:
        y0, y1, x0, x1 = roi_box(rgb.shape[0], rgb.shape[1], params.roi)
        rgb = rgb[y0:y1, x0:x1]
    if params.colour == "gray":
        chans = (rgb @ np.array([0.299, 0.587, 0.114]))[None]
    elif params.colour == "rgb":
        chans = np.moveaxis(rgb, -1, 0)
    else:
        chans = np.moveaxis(rgb[..., ::-1], -1, 0)
    wy = area_weights(chans.shape[1], params.height)
    wx = area_weights(chans.shape[2], params.width)
    resized = wy[None] @ chans @ wx.T[None]
    mean = np.asarray(params.mean, dtype=np.float64)[:, None, None]
    std = np.asarray(params.std, dtype=np.float64)[:, None, None]
    out = (resized - mean) / std
    return np.moveaxis(out, 0, -1) if params.layout == "NHWC" else out
