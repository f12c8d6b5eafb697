"""Sinks: JSONL keeps every record, console formats events, the video file is readable."""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from avfuse.engine.sinks import (
    ConsoleSink,
    FrameOverlay,
    JsonlSink,
    VideoFileSink,
    gui_available,
    make_sink,
    record_line,
)
from avfuse.errors import UsageError

EVENT = {
    "type": "event",
    "label": "7",
    "score": 0.97,
    "start": 12.34,
    "end": 13.1,
    "modalities": ["audio", "video"],
    "degraded": False,
    "latency_ms": 8.1,
}


def test_jsonl_writes_one_object_a_line_and_flushes(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "events.jsonl"
    sink = JsonlSink(path=path)
    sink.on_record(EVENT)
    # flushed per line: readable before close
    assert json.loads(path.read_text().splitlines()[0]) == EVENT
    sink.on_record({"type": "summary", "frames": np.int64(3), "p": np.float32(0.5)})
    sink.close()
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert lines[1] == {"type": "summary", "frames": 3, "p": 0.5}


def test_record_line_refuses_nan() -> None:
    with pytest.raises(ValueError):
        record_line({"type": "event", "score": float("nan")})


def test_console_prints_events_and_routes_faults() -> None:
    out, err = io.StringIO(), io.StringIO()
    sink = ConsoleSink(out=out, err=err, live=False)
    sink.on_record(EVENT)
    sink.on_record({"type": "fault", "source": "mic", "message": "disconnected"})
    sink.on_stats({"fps": 30.0, "p50_ms": 5.0, "p99_ms": 9.0, "drops": 0})
    line = out.getvalue()
    assert "'7'" in line and "12.34-13.10" in line and "audio+video" in line
    assert err.getvalue() == "fault [mic]: disconnected\n"


def test_console_live_line_is_cleared_before_events() -> None:
    out, err = io.StringIO(), io.StringIO()
    sink = ConsoleSink(out=out, err=err, live=True)
    sink.on_stats({"fps": 29.5, "p50_ms": 4.0, "p99_ms": 7.5, "drops": 2, "label": "3"})
    assert "29.5 fps" in err.getvalue() and "drops 2" in err.getvalue()
    sink.on_record(EVENT)
    assert err.getvalue().endswith("\r\033[K")


def test_video_sink_writes_a_readable_annotated_file(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    sink = VideoFileSink(path=path)
    sink.on_start({"fps": 15.0})
    frame = np.full((120, 160, 3), 40, np.uint8)
    ov = FrameOverlay(
        stream_time_s=1.0,
        label="4",
        score=0.9,
        audio_level_dbfs=-10.0,
        modalities=("audio", "video"),
        degraded=False,
    )
    for _ in range(10):
        sink.on_frame(frame, ov)
    sink.close()
    cap = cv2.VideoCapture(str(path))
    ok, got = cap.read()
    assert ok and got.shape == frame.shape
    assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == 10
    assert abs(cap.get(cv2.CAP_PROP_FPS) - 15.0) < 0.01
    # the overlay was drawn: the frame is no longer uniform
    assert got.std() > 1.0
    cap.release()


def test_make_sink_parses_specs_and_rejects_bad_ones(tmp_path: Path) -> None:
    assert isinstance(make_sink("console"), ConsoleSink)
    assert isinstance(make_sink(f"jsonl:{tmp_path / 'a.jsonl'}"), JsonlSink)
    assert isinstance(make_sink(f"video:{tmp_path / 'a.mp4'}"), VideoFileSink)
    for bad in ("jsonl", "speaker", "video:out.gif"):
        with pytest.raises(UsageError):
            make_sink(bad)


@pytest.mark.skipif(gui_available(), reason="this checks the no-display error path")
def test_window_without_display_says_how_to_fix() -> None:
    with pytest.raises(UsageError, match="display"):
        make_sink("window")
