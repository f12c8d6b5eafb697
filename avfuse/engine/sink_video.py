"""Annotated-frame sinks: `video:PATH` (a file through PyAV) and `window` (OpenCV).

Apart from the record sinks (`sinks`) because they draw on frames: both need OpenCV's
drawing and one of them PyAV, which the record sinks do not, and `make_sink` imports
this module only when one is asked for.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from avfuse.engine.records import RunInfo
from avfuse.engine.sinks import FrameOverlay, Sink, _cannot_open, _check_output_path, _pyav
from avfuse.errors import UsageError


def _draw_overlay(canvas: np.ndarray, ov: FrameOverlay) -> None:
    import cv2

    h, w = canvas.shape[:2]
    scale = max(0.4, h / 480.0)
    text = f"{ov.label} {ov.score:.2f}" if ov.label else "-"
    colour = (0, 200, 255) if ov.degraded else (0, 255, 0)
    cv2.putText(
        canvas,
        text,
        (8, int(30 * scale)),
        cv2.FONT_HERSHEY_SIMPLEX,
        scale,
        colour,
        max(1, int(2 * scale)),
        cv2.LINE_AA,
    )
    mods = "+".join(ov.modalities) + (" DEGRADED" if ov.degraded else "")
    cv2.putText(
        canvas,
        f"{ov.stream_time_s:7.2f}s {mods}",
        (8, h - 8),
        cv2.FONT_HERSHEY_SIMPLEX,
        scale * 0.5,
        (255, 255, 255),
        1,
        cv2.LINE_AA,
    )
    # audio level bar on the right edge: -60 dBFS (empty) .. 0 dBFS (full)
    level = ov.audio_level_dbfs if math.isfinite(ov.audio_level_dbfs) else -60.0
    frac = min(1.0, max(0.0, (level + 60.0) / 60.0))
    bar_h = int((h - 20) * frac)
    cv2.rectangle(canvas, (w - 14, h - 10 - bar_h), (w - 6, h - 10), (255, 128, 0), -1)


class VideoFileSink(Sink):
    """Annotated video file (PyAV/FFmpeg): each processed frame with label, score and level.

    Written at the frame rate of the stream (from `on_start`) unless `fps` is given, so
    the file plays at the source's speed. Write errors (disk full, folder gone) raise.
    """

    wants_frames = True

    def __init__(self, *, path: str | Path, fps: float | None = None) -> None:
        self.path = Path(path)
        self.name = f"video:{path}"
        if self.path.suffix.lower() not in (".mp4", ".avi", ".mkv"):
            raise UsageError(f"--sink {self.name}: the path must end in .mp4, .avi or .mkv")
        _check_output_path(self.name, self.path)
        self.fps = fps
        self._container: Any = None
        self._stream: Any = None
        self._canvas: np.ndarray | None = None
        self.frames_written = 0

    def on_start(self, info: RunInfo) -> None:
        av = _pyav(self.name)
        if self.fps is None:
            self.fps = info.fps or 30.0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._container = av.open(str(self.path), "w")
        except OSError as e:
            raise _cannot_open(self.name, self.path, e) from e

    def _open_stream(self, shape: tuple[int, ...]) -> None:
        from fractions import Fraction

        import av

        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        rate = Fraction(self.fps or 30.0).limit_denominator(1001)
        st = self._container.add_stream(codec, rate=rate)
        st.width, st.height = shape[1] & ~1, shape[0] & ~1  # yuv420p needs even sizes
        st.pix_fmt = "yuv420p"
        self._stream = st
        self._canvas = np.empty(shape, np.uint8)

    def on_frame(self, frame: np.ndarray, overlay: FrameOverlay) -> None:
        import av

        if frame.ndim != 3 or self._container is None:
            return
        if self._canvas is None:
            self._open_stream(frame.shape)
        assert self._canvas is not None and self._stream is not None  # set by _open_stream
        if self._canvas.shape != frame.shape:
            return  # streams keep their opened size (the ingest converts frames)
        np.copyto(self._canvas, frame)
        _draw_overlay(self._canvas, overlay)
        h, w = self._stream.height, self._stream.width
        vf = av.VideoFrame.from_ndarray(self._canvas[:h, :w], format="bgr24")
        for packet in self._stream.encode(vf):
            self._container.mux(packet)
        self.frames_written += 1

    def close(self) -> None:
        c, self._container = self._container, None
        if c is None:
            return
        try:
            if self._stream is not None:
                for packet in self._stream.encode():
                    c.mux(packet)
        finally:
            c.close()


def gui_available() -> bool:
    """True when a display exists and this OpenCV build has a GUI (not -headless)."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    import cv2

    info = cv2.getBuildInformation()
    gui_line = next((ln for ln in info.splitlines() if ln.strip().startswith("GUI:")), "")
    return "NONE" not in gui_line.upper()


class WindowSink(Sink):
    """A live OpenCV window showing the annotated frames (`--show`)."""

    name = "window"
    wants_frames = True
    durable = False

    def __init__(self, *, title: str = "avfuse") -> None:
        if not gui_available():
            raise UsageError(
                "--show needs a display and a GUI build of OpenCV: run it on a "
                "desktop and `pip install opencv-python` (not -headless), or use "
                "--sink video:out.mp4"
            )
        self.title = title
        self._canvas: np.ndarray | None = None

    def on_frame(self, frame: np.ndarray, overlay: FrameOverlay) -> None:
        import cv2

        if self._canvas is None or self._canvas.shape != frame.shape:
            self._canvas = np.empty_like(frame)
        np.copyto(self._canvas, frame)
        _draw_overlay(self._canvas, overlay)
        cv2.imshow(self.title, self._canvas)
        cv2.waitKey(1)

    def close(self) -> None:
        import cv2

        cv2.destroyWindow(self.title)


__all__ = ["VideoFileSink", "WindowSink", "gui_available"]
