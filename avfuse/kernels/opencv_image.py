"""OpenCV image pre-processing: the pipelines third-party models were trained with.

Packages such as rapidocr and PaddleClas prepare their images with OpenCV on uint8
(cv2.cvtColor, cv2.resize with a given interpolation), then normalise in float32. Their
models only reach their published accuracy on exactly those pixels, so this kernel runs
the same OpenCV calls in the same order, and OpenCV's rounding is the definition of
these variants (there is no separate float64 reference for them):

    1. roi       cut (x, y, w, h) out of the frame (`reference_video.roi_box`); packed
                 formats are cut before the conversion, NV12/I420 after it (their chroma
                 covers 2x2 blocks, and converting first keeps odd edges defined)
    2. colour    cv2.cvtColor on uint8 from the frame's pixel format to the model's
                 colour (YUV to gray goes through BGR, as the exact path does)
    3. resize    cv2.resize to the geometry of `reference_video.resize_geometry`
                 (stretch, letterbox, crop or short_side) with the interpolation
    4. normalise float32 (x * scale - mean[c]) / std[c], each operation rounded to float32
                 as numpy does it in those packages (a 256-entry table per channel,
                 applied with cv2.LUT); dtype "uint8" copies the pixels unchanged
    5. layout    written straight into `out`, (C, H, W) or (H, W, C); the letterbox
                 border gets the normalised `pad_value`

Every intermediate buffer is allocated on the first frame of a given size and format and
reused after that (cv2 `dst=`), so the per-frame path allocates no arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from avfuse.errors import StreamFormatError, UsageError
from avfuse.kernels import ImageKernel
from avfuse.kernels.numpy_fast import picture_size as _picture_size
from avfuse.kernels.reference_video import (
    ResizeGeometry,
    VideoParams,
    resize_geometry,
    roi_box,
)

__all__ = ["INTERPOLATION_FLAGS", "Image", "normalise_table"]

#: VideoParams.interpolation -> OpenCV flag
INTERPOLATION_FLAGS = {
    "area": cv2.INTER_AREA,
    "bilinear": cv2.INTER_LINEAR,
    "nearest": cv2.INTER_NEAREST,
    "bicubic": cv2.INTER_CUBIC,
    "lanczos": cv2.INTER_LANCZOS4,
}

_FROM = {"bgr24": "BGR", "rgb24": "RGB", "gray": "GRAY"}
_TO = {"bgr": "BGR", "rgb": "RGB", "gray": "GRAY"}
_MAX_PLANS = 8  # frame sizes and formats one kernel keeps buffers for


def _conversions(pixel_format: str, colour: str) -> tuple[int, ...]:
    """cv2.cvtColor codes, in order, from a frame's pixel format to the model's colour."""
    if pixel_format in ("nv12", "i420"):
        suffix = pixel_format.upper()
        if colour == "gray":
            return (getattr(cv2, f"COLOR_YUV2BGR_{suffix}"), cv2.COLOR_BGR2GRAY)
        return (getattr(cv2, f"COLOR_YUV2{_TO[colour]}_{suffix}"),)
    src, dst = _FROM[pixel_format], _TO[colour]
    return () if src == dst else (getattr(cv2, f"COLOR_{src}2{dst}"),)


def normalise_table(params: VideoParams) -> np.ndarray:
    """(C, 256) float32: the normalised value of every pixel value of every channel.

    Computed as numpy computes (x.astype(float32) * scale - mean) / std with float32
    scale, mean and std, so a table look-up equals that expression bit for bit.
    """
    v = np.arange(256, dtype=np.float32)
    scale = np.float32(params.scale)
    rows = [
        (v * scale - np.float32(m)) / np.float32(s)
        for m, s in zip(params.mean, params.std, strict=True)
    ]
    return np.stack(rows).astype(np.float32)


def _pad_values(params: VideoParams) -> np.ndarray:
    """(C,) value of the letterbox border in the output's dtype."""
    if params.dtype == "uint8":
        return np.full(params.channels, int(params.pad_value), np.uint8)
    p = np.float32(params.pad_value)
    return np.array(
        [(p * np.float32(params.scale) - np.float32(m)) / np.float32(s)
         for m, s in zip(params.mean, params.std, strict=True)],
        np.float32,
    )  # fmt: skip


@dataclass
class _Plan:
    """Buffers and geometry for one frame size and pixel format."""

    box: tuple[int, int, int, int]  # roi rows y0:y1, columns x0:x1
    crop_first: bool  # packed formats: cut the roi before converting
    codes: tuple[int, ...]
    converted: list[np.ndarray]  # dst of each cvtColor
    geometry: ResizeGeometry
    resized: np.ndarray  # (rh, rw[, C]) uint8
    planes: list[np.ndarray]  # per-channel uint8 scratch for the NCHW float path


class Image(ImageKernel):
    """OpenCV pre-processing (roi, cvtColor, resize, normalise, layout) into `out`.

    An instance owns its buffers: use one per thread (streams served by one thread may
    share it).
    """

    name = "opencv"

    @classmethod
    def unsupported(cls, params: VideoParams) -> str | None:
        if params.interpolation == "exact-area":
            return "interpolation='exact-area' (the float64 area path of the reference)"
        return None

    def __init__(self, params: VideoParams) -> None:
        super().__init__(params)
        p = params
        self._flag = INTERPOLATION_FLAGS[p.interpolation]
        self._dtype = np.dtype(p.dtype)
        self._lut = normalise_table(p) if p.dtype == "float32" else None
        self._lut_hwc = None if self._lut is None else np.ascontiguousarray(self._lut.T[None])
        self._pad = _pad_values(p)
        self._plans: dict[tuple[tuple[int, ...], str], _Plan] = {}

    @property
    def out_dtype(self) -> np.dtype:
        return self._dtype

    # ------------------------------------------------------------------ buffers
    def _plan(self, shape: tuple[int, ...], pixel_format: str) -> _Plan:
        key = (shape, pixel_format)
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        p = self.params
        height, width = _picture_size(shape, pixel_format)
        box = roi_box(height, width, p.roi)
        crop_first = pixel_format not in ("nv12", "i420")
        codes = _conversions(pixel_format, p.colour)
        converted = []
        size = (box[1] - box[0], box[3] - box[2]) if crop_first else (height, width)
        for code in codes:
            gray = code in (cv2.COLOR_BGR2GRAY, cv2.COLOR_RGB2GRAY)
            converted.append(np.empty(size if gray else (*size, 3), np.uint8))
        g = resize_geometry(box[1] - box[0], box[3] - box[2], p)
        c = p.channels
        resized = np.empty((g.rh, g.rw) if c == 1 else (g.rh, g.rw, c), np.uint8)
        oh, ow = (g.rh, g.rw) if p.resize == "letterbox" else (p.height, p.width)
        planes = [np.empty((oh, ow), np.uint8) for _ in range(c if c > 1 else 0)]
        if len(self._plans) >= _MAX_PLANS:
            self._plans.pop(next(iter(self._plans)))
        plan = self._plans[key] = _Plan(box, crop_first, codes, converted, g, resized, planes)
        return plan

    def _check_out(self, out: np.ndarray | None) -> np.ndarray:
        shape = self.params.out_shape
        if out is None:
            return np.empty(shape, self._dtype)
        if out.shape != shape or out.dtype != self._dtype or not out.flags.c_contiguous:
            raise UsageError(
                f"out must be a C-contiguous {self._dtype} array of shape {shape}, "
                f"got {out.dtype} {out.shape}"
            )
        return out

    # ------------------------------------------------------------------ per frame
    def __call__(
        self, frame: np.ndarray, pixel_format: str = "bgr24", out: np.ndarray | None = None
    ) -> np.ndarray:
        if frame.dtype != np.uint8:
            raise StreamFormatError(f"frames must be uint8, got {frame.dtype}")
        plan = self._plan(frame.shape, pixel_format)
        out = self._check_out(out)
        y0, y1, x0, x1 = plan.box
        img = frame[y0:y1, x0:x1] if plan.crop_first else frame
        for code, dst in zip(plan.codes, plan.converted, strict=True):
            img = cv2.cvtColor(img, code, dst=dst)
        if not plan.crop_first:
            img = img[y0:y1, x0:x1]
        g = plan.geometry
        img = cv2.resize(img, (g.rw, g.rh), dst=plan.resized, interpolation=self._flag)
        p = self.params
        if p.resize == "letterbox":
            rows, cols = slice(g.top, g.top + g.rh), slice(g.left, g.left + g.rw)
            self._fill_border(out, g)
        else:
            img = img[g.y0 : g.y0 + p.height, g.x0 : g.x0 + p.width]
            rows, cols = slice(0, p.height), slice(0, p.width)
        self._write(img, out, rows, cols, plan.planes)
        return out

    def _write(
        self, img: np.ndarray, out: np.ndarray, rows: slice, cols: slice, planes: list
    ) -> None:
        """Normalise (or copy) the resized pixels into out[rows, cols] in the layout."""
        nchw = self.params.layout == "NCHW"
        if img.ndim == 2:  # one channel
            dst = out[0, rows, cols] if nchw else out[rows, cols, 0]
            if self._lut is None:
                np.copyto(dst, img)
            else:
                cv2.LUT(img, self._lut[0], dst=dst)
            return
        if not nchw:
            dst = out[rows, cols]
            if self._lut is None:
                np.copyto(dst, img)
            else:
                cv2.LUT(img, self._lut_hwc, dst=dst)
            return
        for c in range(img.shape[2]):
            if self._lut is None:
                cv2.extractChannel(img, c, dst=out[c, rows, cols])
            else:
                plane = cv2.extractChannel(img, c, dst=planes[c])
                cv2.LUT(plane, self._lut[c], dst=out[c, rows, cols])

    def _fill_border(self, out: np.ndarray, g: ResizeGeometry) -> None:
        """Write the letterbox border (everything outside the resized image)."""
        p = self.params
        bottom, right = g.top + g.rh, g.left + g.rw
        bands = (
            (slice(0, g.top), slice(None)),
            (slice(bottom, p.height), slice(None)),
            (slice(g.top, bottom), slice(0, g.left)),
            (slice(g.top, bottom), slice(right, p.width)),
        )
        for c in range(p.channels):
            for rows, cols in bands:
                if p.layout == "NCHW":
                    out[c, rows, cols] = self._pad[c]
                else:
                    out[rows, cols, c] = self._pad[c]
