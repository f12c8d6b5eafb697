"""Fused image pre-processing in numba: colour conversion + area resize + normalise + CHW.

One pass over the input: each output row converts the input rows it covers (any pixel
format -> the model's colour, float32), accumulates them with their vertical area
weights into a row buffer, then applies the horizontal area weights and the
normalisation while writing CHW. No intermediate full-size image exists, which is what
makes it faster than convert -> cv2.resize -> normalise -> transpose.

The conversions are those of kernels/reference.py (`to_rgb`): BT.601 limited range
for NV12/I420 with nearest 2x2 chroma and a clip to [0, 1] before the resize.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from avfuse.errors import StreamFormatError, UsageError
from avfuse.kernels import reference as ref
from avfuse.kernels.numpy_fast import picture_size as frame_geometry
from avfuse.kernels.reference import VideoParams

__all__ = ["FORMAT_CODES", "FusedImage", "sparse_area_weights"]

#: pixel format -> code used by the compiled kernel
FORMAT_CODES = {"bgr24": 0, "rgb24": 1, "gray": 2, "nv12": 3, "i420": 4}
#: model colour -> (C, 3) matrix applied to RGB in [0, 1]
_MIX = {
    "gray": np.array([[0.299, 0.587, 0.114]], np.float32),
    "rgb": np.eye(3, dtype=np.float32),
    "bgr": np.eye(3, dtype=np.float32)[::-1].copy(),
}

_INV255 = np.float32(1.0 / 255.0)
_KY = np.float32(255.0 / 219.0 / 255.0)
_KC = np.float32(255.0 / 224.0 / 255.0)
_F0 = np.float32(0.0)
_F1 = np.float32(1.0)
_GR = np.float32(0.299)
_GG = np.float32(0.587)
_GB = np.float32(0.114)
_RV = np.float32(1.402)
_GU = np.float32(0.344136)
_GV = np.float32(0.714136)
_BU = np.float32(1.772)


def sparse_area_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """(first input index per output (n_out,), weights (n_out, span)) of the area matrix."""
    dense = ref.area_weights(n_in, n_out)
    first = np.array([np.flatnonzero(row)[0] for row in dense], np.int64)
    span = max(int(np.flatnonzero(row)[-1] - f + 1) for row, f in zip(dense, first, strict=True))
    w = np.zeros((n_out, span), np.float32)
    for j, f in enumerate(first):
        seg = dense[j, f : f + span]
        w[j, : seg.size] = seg
    return first, w


@nb.njit(cache=True, boundscheck=False, inline="always")
def _yuv(y8, u8, v8):  # pragma: no cover - compiled
    """BT.601 limited-range YUV bytes -> RGB float32 clipped to [0, 1]."""
    yf = (np.float32(y8) - np.float32(16.0)) * _KY
    uf = (np.float32(u8) - np.float32(128.0)) * _KC
    vf = (np.float32(v8) - np.float32(128.0)) * _KC
    r = min(max(yf + _RV * vf, _F0), _F1)
    g = min(max(yf - _GU * uf - _GV * vf, _F0), _F1)
    b = min(max(yf + _BU * uf, _F0), _F1)
    return r, g, b


@nb.njit(cache=True, boundscheck=False)
def _accumulate_row(frame, fmt, mix, height, width, y, wy, acc):  # pragma: no cover - compiled
    """acc[c, x] += wy * (model colour c of input pixel (y, x)), for every channel c.

    mix (C, 3) maps RGB in [0, 1] to the model's channels; the format branch sits
    outside the pixel loops so each loop is straight-line and vectorises.
    """
    for c in range(acc.shape[0]):
        mr = wy * mix[c, 0]
        mg = wy * mix[c, 1]
        mb = wy * mix[c, 2]
        if fmt == 0:  # bgr24
            mr *= _INV255
            mg *= _INV255
            mb *= _INV255
            for x in range(width):
                acc[c, x] += (
                    mb * np.float32(frame[y, 3 * x])
                    + mg * np.float32(frame[y, 3 * x + 1])
                    + mr * np.float32(frame[y, 3 * x + 2])
                )
        elif fmt == 1:  # rgb24
            mr *= _INV255
            mg *= _INV255
            mb *= _INV255
            for x in range(width):
                acc[c, x] += (
                    mr * np.float32(frame[y, 3 * x])
                    + mg * np.float32(frame[y, 3 * x + 1])
                    + mb * np.float32(frame[y, 3 * x + 2])
                )
        elif fmt == 2:  # gray
            mg = (mr + mg + mb) * _INV255
            for x in range(width):
                acc[c, x] += mg * np.float32(frame[y, x])
        elif fmt == 3:  # nv12: interleaved UV plane
            cy = height + y // 2
            for x in range(width):
                cx = 2 * (x // 2)
                r, g, b = _yuv(frame[y, x], frame[cy, cx], frame[cy, cx + 1])
                acc[c, x] += mr * r + mg * g + mb * b
        else:  # i420: U plane then V plane, each (H/2, W/2) packed row-major
            half = width // 2
            ubase = height * width + (y // 2) * half
            vbase = ubase + (height // 2) * half
            for x in range(width):
                ui = ubase + x // 2
                vi = vbase + x // 2
                r, g, b = _yuv(frame[y, x], frame[ui // width, ui % width],
                               frame[vi // width, vi % width])  # fmt: skip
                acc[c, x] += mr * r + mg * g + mb * b


@nb.njit(cache=True, boundscheck=False)
def fused_image(frame, fmt, mix, height, width, y_first, y_w, x_first, x_w, mean, inv_std,
                acc, out):  # fmt: skip  # pragma: no cover - compiled
    """One frame (uint8, 2-D view of its buffer) -> out (C, H_out, W_out) float32."""
    chans = out.shape[0]
    for oy in range(out.shape[1]):
        acc[:, :] = _F0
        y0 = y_first[oy]
        for t in range(y_w.shape[1]):
            wy = y_w[oy, t]
            if wy != _F0:
                _accumulate_row(frame, fmt, mix, height, width, y0 + t, wy, acc)
        for c in range(chans):
            for ox in range(out.shape[2]):
                x0 = x_first[ox]
                s = _F0
                for t in range(x_w.shape[1]):
                    s += x_w[ox, t] * acc[c, min(x0 + t, width - 1)]
                out[c, oy, ox] = (s - mean[c]) * inv_std[c]


@nb.njit(cache=True, parallel=True)
def fused_image_batch(frames, fmt, mix, height, width, y_first, y_w, x_first, x_w, mean,
                      inv_std, accs, out):  # fmt: skip  # pragma: no cover - compiled
    """frames (B, rows, cols) -> out (B, C, H, W); frames split over workers."""
    workers = accs.shape[0]
    for wk in nb.prange(workers):
        for b in range(wk, frames.shape[0], workers):
            fused_image(frames[b], fmt, mix, height, width, y_first, y_w, x_first, x_w,
                        mean, inv_std, accs[wk], out[b])  # fmt: skip


class FusedImage:
    """Compiled fused pre-processing for one VideoParams; tables cached per input size."""

    def __init__(self, params: VideoParams) -> None:
        self.params = params
        self._mix = _MIX[params.colour]
        self._mean = np.asarray(params.mean, np.float32)
        self._inv_std = (1.0 / np.asarray(params.std, np.float64)).astype(np.float32)
        self._tables: dict[tuple[int, int], tuple[np.ndarray, ...]] = {}
        self._batch_scratch: dict[tuple[int, int, int], np.ndarray] = {}

    def tables(self, height: int, width: int) -> tuple[np.ndarray, ...]:
        """Area weights and row scratch for an input of height x width (built once)."""
        key = (height, width)
        t = self._tables.get(key)
        if t is None:
            yf, yw = sparse_area_weights(height, self.params.height)
            xf, xw = sparse_area_weights(width, self.params.width)
            c = self.params.channels
            acc = np.zeros((c, width), np.float32)
            t = self._tables[key] = (yf, yw, xf, xw, acc)
        return t

    def _prepare(self, frame: np.ndarray, pixel_format: str, batch: bool):
        shape = frame.shape[1:] if batch else frame.shape
        height, width = frame_geometry(shape, pixel_format)
        if frame.dtype != np.uint8:
            raise StreamFormatError(f"frames must be uint8, got {frame.dtype}")
        lead = frame.shape[: frame.ndim - len(shape)]
        flat = frame.reshape((*lead, shape[0], -1)) if len(shape) == 3 else frame
        return np.ascontiguousarray(flat), height, width

    def __call__(
        self, frame: np.ndarray, pixel_format: str = "bgr24", out: np.ndarray | None = None
    ) -> np.ndarray:
        flat, height, width = self._prepare(frame, pixel_format, batch=False)
        out = _check_out(out, (self.params.channels, self.params.height, self.params.width))
        yf, yw, xf, xw, acc = self.tables(height, width)
        fused_image(flat, FORMAT_CODES[pixel_format], self._mix, height, width, yf, yw, xf,
                    xw, self._mean, self._inv_std, acc, out)  # fmt: skip
        return out

    def batch(
        self, frames: np.ndarray, pixel_format: str = "bgr24", out: np.ndarray | None = None
    ) -> np.ndarray:
        """frames (B, ...) of one format and size -> out (B, C, H, W), in parallel."""
        flat, height, width = self._prepare(frames, pixel_format, batch=True)
        p = self.params
        out = _check_out(out, (frames.shape[0], p.channels, p.height, p.width))
        yf, yw, xf, xw, acc = self.tables(height, width)
        workers = max(1, min(nb.get_num_threads(), frames.shape[0]))
        key = (height, width, workers)
        scratch = self._batch_scratch.get(key)
        if scratch is None:
            scratch = self._batch_scratch[key] = np.zeros((workers, *acc.shape), np.float32)
        fused_image_batch(flat, FORMAT_CODES[pixel_format], self._mix, height, width, yf, yw,
                          xf, xw, self._mean, self._inv_std, scratch, out)  # fmt: skip
        return out


def _check_out(out: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    if out is None:
        return np.empty(shape, np.float32)
    if out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise UsageError(
            f"out must be a C-contiguous float32 array of shape {shape}, "
            f"got {out.dtype} {out.shape}"
        )
    return out
