"""Frames of another size or layout brought to a stream's format, into one buffer.

A source's frames can stop matching the format its stream opened with (a resolution
change mid-stream, a camera reopened at another size). The ingest converts them on the
capture thread; the buffer is made once per stream, not per frame.
"""

from __future__ import annotations

import numpy as np

from avfuse.engine.sources.base import VideoFormat


def frame_shape(fmt: VideoFormat) -> tuple[int, ...]:
    """Array shape of one frame in `fmt.pixel_format`."""
    if fmt.pixel_format in ("bgr24", "rgb24"):
        return (fmt.height, fmt.width, 3)
    if fmt.pixel_format == "gray":
        return (fmt.height, fmt.width)
    return (fmt.height * 3 // 2, fmt.width)  # nv12 / i420 planar buffers


class FrameConverter:
    """Brings frames of another size or layout to the stream's format, into one buffer.

    Used on the capture thread when a source's frames stop matching the format it opened
    with (a resolution change in a stream, a camera reopened at another size). The
    buffer is made once per change, not per frame.
    """

    def __init__(self, fmt: VideoFormat) -> None:
        self.fmt = fmt
        self.shape = frame_shape(fmt)
        self._out = np.zeros(self.shape, np.uint8)
        self._last: tuple[tuple[int, ...], str] | None = None

    def changed(self, frame: np.ndarray) -> bool:
        """True when this frame's shape differs from the previous mismatching one."""
        key = (frame.shape, str(frame.dtype))
        if key == self._last:
            return False
        self._last = key
        return True

    def describe(self, frame: np.ndarray) -> str:
        f = self.fmt
        shape = "x".join(str(d) for d in frame.shape[1::-1]) if frame.ndim >= 2 else "?"
        return (
            f"video frames changed to {shape} ({frame.ndim}-d {frame.dtype}); they are "
            f"converted to {f.width}x{f.height} {f.pixel_format}, the format the stream "
            "opened with"
        )

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        import cv2

        if self.fmt.pixel_format not in ("bgr24", "rgb24", "gray"):
            raise ValueError(
                f"frame shape {frame.shape} differs from the stream's {self.shape} and "
                f"{self.fmt.pixel_format} frames cannot be converted"
            )
        if frame.dtype != np.uint8 or frame.ndim not in (2, 3):
            raise ValueError(f"frame of shape {frame.shape} and type {frame.dtype} is not an image")
        src = frame
        want_c = 1 if self.fmt.pixel_format == "gray" else 3
        have_c = 1 if frame.ndim == 2 else frame.shape[2]
        if have_c != want_c:
            if have_c == 1 and want_c == 3:
                src = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
            elif have_c == 3 and want_c == 1:
                src = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
            elif have_c == 4:
                code = cv2.COLOR_BGRA2GRAY if want_c == 1 else cv2.COLOR_BGRA2BGR
                src = cv2.cvtColor(frame, code)
            else:
                raise ValueError(f"frame with {have_c} channels cannot become {want_c}")
        h, w = self.shape[0], self.shape[1]
        if src.shape[:2] == (h, w):
            np.copyto(self._out, src.reshape(self.shape))
        else:
            cv2.resize(src, (w, h), dst=self._out, interpolation=cv2.INTER_AREA)
        return self._out


__all__ = ["FrameConverter", "frame_shape"]
