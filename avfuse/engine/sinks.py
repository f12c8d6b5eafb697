"""Sinks: where records (events, warnings, faults, summary) and annotated frames go.

A sink receives JSON-ready dicts with a "type" ("event", "warning", "fault",
"summary", ...), optionally every processed frame with its overlay, and a stats
dict about once a second. Sinks run on the pipeline's worker thread, after
inference; a slow sink shows up in the "sink" latency stage.

    console        events as readable lines on stdout, a live status line on stderr (TTY)
    jsonl:PATH     every record as one JSON object a line (PATH "-" is stdout)
    video:PATH     annotated video file (label, score, audio level on every frame)
    window         a live OpenCV window (needs a display and a GUI build of OpenCV)

`make_sink("jsonl:out.jsonl")` parses the CLI's --sink values.
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from avfuse.errors import SourceError, UsageError


@dataclass(frozen=True, kw_only=True)
class FrameOverlay:
    """What an annotated-video or window sink draws on a frame."""

    stream_time_s: float
    label: str | None  # current top label after smoothing, None when below threshold
    score: float
    audio_level_dbfs: float
    modalities: tuple[str, ...]
    degraded: bool


class Sink:
    """Base sink: every hook is optional; override what the sink needs."""

    #: True when the sink wants `on_frame` calls (they cost a frame copy/draw)
    wants_frames: bool = False

    def on_start(self, info: dict[str, Any]) -> None:
        """Called once before the first frame: {"fps": float, "width": int, "height": int,
        "labels": [...], "model": str, "source": str}; keys may be missing."""

    def on_record(self, record: dict[str, Any]) -> None:
        """An event, warning, fault or summary record."""

    def on_frame(self, frame: np.ndarray, overlay: FrameOverlay) -> None:
        """A processed frame (bgr24) with its overlay; only when `wants_frames`."""

    def on_stats(self, stats: dict[str, Any]) -> None:
        """Live statistics, about once a second: fps, latency p50/p99 (ms), drops."""

    def close(self) -> None:
        """Flush and release; called once at the end of the run, also after Ctrl-C."""


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def record_line(record: dict[str, Any]) -> str:
    """One record as its JSON line (compact, key order kept, NaN refused)."""
    return json.dumps(record, default=_json_default, allow_nan=False, separators=(", ", ": "))


class JsonlSink(Sink):
    """Every record as one JSON object a line; flushed per line so nothing is lost on a crash."""

    def __init__(self, *, path: str | Path) -> None:
        self.path = str(path)
        if self.path == "-":
            self._file: TextIO = sys.stdout
            self._owns = False
        else:
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115
            except OSError as e:
                raise UsageError(
                    f"cannot write the JSONL sink file {self.path}: {e.strerror}; "
                    "choose a writable path"
                ) from e
            self._owns = True

    def on_record(self, record: dict[str, Any]) -> None:
        self._file.write(record_line(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._owns and not self._file.closed:
            self._file.close()


class MemorySink(Sink):
    """Keeps every record in memory (for the Python API and tests)."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def on_record(self, record: dict[str, Any]) -> None:
        self.records.append(record)

    @property
    def events(self) -> list[dict[str, Any]]:
        """The event records, in order."""
        return [r for r in self.records if r.get("type") == "event"]


def format_event(record: dict[str, Any]) -> str:
    """Human-readable one-line form of an event record."""
    mods = "+".join(record.get("modalities", [])) or "-"
    flag = "  DEGRADED" if record.get("degraded") else ""
    latency = record.get("latency_ms", 0.0)
    return (
        f"{record['start']:8.2f}-{record['end']:.2f} s  {record['label']!r:>7}  "
        f"score {record['score']:.2f}  {mods:<11} {latency:6.1f} ms{flag}"
    )


class ConsoleSink(Sink):
    """Events as readable lines on stdout; warnings/faults on stderr; a live line on a TTY."""

    def __init__(
        self, *, out: TextIO | None = None, err: TextIO | None = None, live: bool | None = None
    ) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.live = self.err.isatty() if live is None else live
        self._status_shown = False

    def _clear_status(self) -> None:
        if self._status_shown:
            self.err.write("\r\033[K")
            self._status_shown = False

    def on_record(self, record: dict[str, Any]) -> None:
        kind = record.get("type")
        self._clear_status()
        if kind == "event":
            self.out.write(format_event(record) + "\n")
            self.out.flush()
        elif kind in ("warning", "fault"):
            src = f" [{record['source']}]" if record.get("source") else ""
            what = f" {record['kind']}" if record.get("kind") else ""
            self.err.write(f"{kind}{src}{what}: {record.get('message', '')}\n")
            self.err.flush()

    def on_stats(self, stats: dict[str, Any]) -> None:
        if not self.live:
            return
        line = (
            f"{stats.get('fps', 0.0):5.1f} fps  latency p50 {stats.get('p50_ms', 0.0):5.1f} "
            f"p99 {stats.get('p99_ms', 0.0):5.1f} ms  drops {stats.get('drops', 0)}  "
            f"{stats.get('label') or '':>6}"
        )
        self.err.write("\r\033[K" + line)
        self.err.flush()
        self._status_shown = True

    def close(self) -> None:
        self._clear_status()


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
    """Annotated video file: each processed frame with label, score and audio level drawn on."""

    wants_frames = True

    def __init__(self, *, path: str | Path, fps: float | None = None) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in (".mp4", ".avi", ".mkv"):
            raise UsageError(f"video sink path {self.path} must end in .mp4, .avi or .mkv")
        self.fps = fps
        self._writer: Any = None
        self._canvas: np.ndarray | None = None
        self.frames_written = 0

    def on_start(self, info: dict[str, Any]) -> None:
        if self.fps is None and info.get("fps"):
            self.fps = float(info["fps"])

    def _open(self, shape: tuple[int, ...]) -> None:
        import cv2

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fourcc = cv2.VideoWriter_fourcc(*("XVID" if self.path.suffix == ".avi" else "mp4v"))
        self._writer = cv2.VideoWriter(
            str(self.path), fourcc, float(self.fps or 30.0), (shape[1], shape[0])
        )
        if not self._writer.isOpened():
            raise SourceError(f"OpenCV cannot write {self.path}; check the folder is writable")
        self._canvas = np.empty(shape, np.uint8)

    def on_frame(self, frame: np.ndarray, overlay: FrameOverlay) -> None:
        if frame.ndim != 3:
            return
        if self._canvas is None or self._canvas.shape != frame.shape:
            if self._writer is not None:
                return  # the size changed mid-stream; a video file cannot follow it
            self._open(frame.shape)
        assert self._canvas is not None  # set by _open
        np.copyto(self._canvas, frame)
        _draw_overlay(self._canvas, overlay)
        self._writer.write(self._canvas)
        self.frames_written += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None


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

    wants_frames = True

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


def make_sink(spec: str) -> Sink:
    """Build a sink from a --sink value: console, jsonl:PATH, video:PATH, window."""
    kind, _, arg = spec.partition(":")
    if kind == "console" and not arg:
        return ConsoleSink()
    if kind == "jsonl" and arg:
        return JsonlSink(path=arg)
    if kind == "video" and arg:
        return VideoFileSink(path=arg)
    if kind == "window" and not arg:
        return WindowSink()
    raise UsageError(
        f"unknown sink {spec!r}; use console, jsonl:PATH (- for stdout), video:PATH.mp4 or window"
    )
