"""Sinks, driven by the real pipeline: JSONL keeps every record once as schema-valid JSON,
the console shows real figures, the video file plays at the source's rate."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from avfuse.engine.pipeline import Pipeline
from avfuse.engine.records import Event, Record, WarningRecord, records_schema
from avfuse.engine.sink_video import VideoFileSink, gui_available
from avfuse.engine.sinks import ConsoleSink, JsonlSink, make_sink
from avfuse.errors import UsageError
from tests.engine.pipeline_kit import Collect, ScriptedSource, config

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "avfuse" / "schema" / "records.schema.json"


def _run(backend, *sinks, **src_kw) -> Collect:  # noqa: ANN001 - the kit's ORT backend
    collect = Collect()
    src = ScriptedSource(**src_kw)
    Pipeline(streams=[src], backend=backend, sinks=[*sinks, collect], config=config()).run()
    return collect


def test_jsonl_holds_every_record_of_a_run_once_as_schema_valid_json(
    backend, tmp_path: Path
) -> None:
    path = tmp_path / "sub" / "events.jsonl"
    collect = _run(backend, JsonlSink(path=path), duration_s=3.0, card=(1.0, 2.0))
    lines = path.read_text().splitlines()
    # the same records, in the same order, each serialised once (shared by all sinks)
    assert lines == [r.json_line() for r in collect.records]
    parsed = [json.loads(x) for x in lines]
    assert [r["type"] for r in parsed] == ["onset", "event", "summary"]
    validator = jsonschema.Draft202012Validator(records_schema())
    for rec in parsed:
        validator.validate(rec)
        assert rec["schema"] == 1 and rec["model"] == "tiny"
        assert rec["wall_time"].endswith("Z")
    assert parsed[1]["stream"] == "scripted" and parsed[1]["label"] == "3"


def test_the_published_schema_file_is_the_one_the_code_makes() -> None:
    assert json.loads(SCHEMA_FILE.read_text()) == records_schema()


def test_a_non_finite_figure_is_written_as_null_not_as_invalid_json() -> None:
    rec = WarningRecord(source="s", kind="k", message="m", data={"x": math.nan, "y": 1.5})
    assert json.loads(rec.json_line())["data"] == {"x": None, "y": 1.5}


def test_console_shows_onsets_events_and_real_live_figures(backend) -> None:
    out, err = io.StringIO(), io.StringIO()
    console = ConsoleSink(out=out, err=err, live=True)
    src_kw = {"duration_s": 2.6, "card": (0.3, 2.5), "live": True}
    collect = Collect()
    cfg = config(stats_interval_s=0.5)
    Pipeline(
        streams=[ScriptedSource(**src_kw)], backend=backend, sinks=[console, collect], config=cfg
    ).run()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "(onset)" in lines[0] and "'3'" in lines[0]
    ev = next(r for r in collect.records if isinstance(r, Event))
    assert f"{ev.start:.2f}-{ev.end:.2f}" in lines[1] and "audio+video" in lines[1]
    # the live line: real latency figures from the run (not 0.0) and the open label
    status = [s for s in err.getvalue().split("\r\033[K") if "fps" in s]
    assert status, err.getvalue()
    figures = [float(x) for s in status for x in s.split("p50")[1].split("ms")[0].split("p99")]
    assert max(figures) > 0.0
    assert any(s.rstrip().endswith("3") for s in status)


def test_console_routes_warnings_and_faults_to_stderr(backend) -> None:
    out, err = io.StringIO(), io.StringIO()
    console = ConsoleSink(out=out, err=err, live=False)
    _run(backend, console, duration_s=2.0, card=None, audio_fault_at=0.5)
    assert err.getvalue().startswith("fault [scripted] error: microphone unplugged")


def test_video_sink_writes_at_the_source_frame_rate(backend, tmp_path: Path) -> None:
    import av

    path = tmp_path / "out.mp4"
    _run(backend, VideoFileSink(path=path), duration_s=2.0, card=(0.5, 1.5), fps=15.0)
    with av.open(str(path)) as c:
        st = c.streams.video[0]
        frames = [f.to_ndarray(format="bgr24") for f in c.decode(st)]
        rate = float(st.average_rate)
    assert rate == pytest.approx(15.0) and len(frames) == 30
    assert frames[0].shape == (120, 160, 3)
    assert frames[15].std() > 1.0  # the overlay was drawn on a uniform frame


def test_sink_paths_are_checked_without_touching_anything(tmp_path: Path) -> None:
    assert isinstance(make_sink("console"), ConsoleSink)
    target = tmp_path / "a.jsonl"
    sink = make_sink(f"jsonl:{target}")
    assert isinstance(sink, JsonlSink) and not target.exists()  # opened at on_start only
    assert isinstance(make_sink(f"video:{tmp_path / 'a.mp4'}"), VideoFileSink)
    (tmp_path / "x.mp4").write_bytes(b"")
    with pytest.raises(UsageError, match=r"x\.mp4 is a file, not a folder"):
        make_sink(f"jsonl:{tmp_path / 'x.mp4' / 'ev.jsonl'}")
    with pytest.raises(UsageError, match="is a folder"):
        make_sink(f"jsonl:{tmp_path}")
    for bad in ("jsonl", "speaker", "video:out.gif"):
        with pytest.raises(UsageError):
            make_sink(bad)


def test_a_record_is_a_frozen_type() -> None:
    rec: Record = WarningRecord(source="s", kind="k", message="m")
    with pytest.raises(AttributeError):
        rec.kind = "other"  # type: ignore[misc]
    assert rec.type == "warning" and isinstance(np.float32(1).item(), float)


@pytest.mark.skipif(gui_available(), reason="this checks the no-display error path")
def test_window_without_display_says_how_to_fix() -> None:
    with pytest.raises(UsageError, match="display"):
        make_sink("window")
