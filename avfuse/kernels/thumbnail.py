"""A small brightness thumbnail of a raw frame: what the onset sync monitor looks at.

The onset monitor (engine/sync.py) times visual onsets from the mean absolute change
between consecutive frames, so it needs every frame, while a model with a cadence runs
on every N-th only. Running the model's image kernel on the other frames cost 0.3 ms a
frame with the numpy kernels on a 2-core VM (0.9 % of a core at 30 fps); this thumbnail
costs about 46 us of CPU for a 320x240 frame and about 20 us for 640x480 to 1920x1080.
Brightness is in fractions of full scale (0..1), the unit of the monitor's thresholds.

Two OpenCV passes on uint8: a bilinear resize to 64x48 (each output pixel reads one to
four source pixels, whatever the frame's size), then an area average 2x down to 32x24,
so each thumbnail pixel averages 4 to 16 source pixels. With sensor noise of 3 levels
the mean difference of two frames of a still scene is 1.2 levels at 320x240 and 0.6-0.8
at larger sizes, against 3.8 for an onset (`SyncConfig.video_rise`, 0.015); one pixel
per thumbnail pixel would give 3.4. One area pass straight from the frame averages every
pixel but cost 255 us (OpenCV's generic area path and its worker threads), more than
the model's own kernel.

    bgr24 / rgb24   both passes on the packed frame, then luma (cv2.cvtColor on 32x24)
    gray            both passes
    nv12 / i420     both passes on the Y plane (the first two thirds of the rows)

Every buffer is made once, so a frame allocates nothing; a frame of another size (a
resolution change) needs no new buffers.
"""

from __future__ import annotations

import cv2
import numpy as np

from avfuse.errors import UsageError

_LUMA = {"bgr24": cv2.COLOR_BGR2GRAY, "rgb24": cv2.COLOR_RGB2GRAY}
_PLANAR = {"nv12", "i420"}
_SCALE = np.float32(1.0 / 255.0)
_LINEAR, _AREA = cv2.INTER_LINEAR, cv2.INTER_AREA


class Thumbnail:
    """`Thumbnail()(frame, pixel_format, out)`: `out` (height, width) float32 in 0..1."""

    def __init__(self, width: int = 32, height: int = 24) -> None:
        if width < 1 or height < 1:
            raise UsageError(f"thumbnail size {width}x{height}: both must be >= 1")
        self.shape = (height, width)
        self._mid_packed = np.zeros((2 * height, 2 * width, 3), np.uint8)
        self._mid = np.zeros((2 * height, 2 * width), np.uint8)
        self._packed = np.zeros((height, width, 3), np.uint8)
        self._luma = np.zeros((height, width), np.uint8)

    def __call__(self, frame: np.ndarray, pixel_format: str, out: np.ndarray) -> np.ndarray:
        """Write the thumbnail of `frame` (the frame ring's layout) into `out`."""
        h, w = self.shape
        if pixel_format in _LUMA:
            cv2.resize(frame, (2 * w, 2 * h), dst=self._mid_packed, interpolation=_LINEAR)
            cv2.resize(self._mid_packed, (w, h), dst=self._packed, interpolation=_AREA)
            cv2.cvtColor(self._packed, _LUMA[pixel_format], dst=self._luma)
        elif pixel_format == "gray" or pixel_format in _PLANAR:
            plane = frame if pixel_format == "gray" else frame[: frame.shape[0] * 2 // 3]
            cv2.resize(plane, (2 * w, 2 * h), dst=self._mid, interpolation=_LINEAR)
            cv2.resize(self._mid, (w, h), dst=self._luma, interpolation=_AREA)
        else:
            raise UsageError(f"thumbnail of pixel format {pixel_format!r} is not implemented")
        np.copyto(out, self._luma)  # then scale in place: a mixed-type ufunc buffers
        np.multiply(out, _SCALE, out=out)
        return out


__all__ = ["Thumbnail"]
