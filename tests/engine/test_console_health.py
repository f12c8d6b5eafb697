"""The console sink's health line, driven by real pipeline runs: real figures, the period
it promises, and streams counted down when their source fails."""

from __future__ import annotations

import io
import re

import pytest

from avfuse.engine.pipeline import Pipeline
from avfuse.engine.sinks import ConsoleSink
from avfuse.errors import UsageError
from tests.engine.pipeline_kit import Collect, ScriptedSource, config

HEALTH = re.compile(
    r"^health: (\d+\.\d) fps, p99 (\d+\.\d) ms, drops (\d+), streams up (\d+)/(\d+)$"
)


def _run(backend, console: ConsoleSink, *sources: ScriptedSource) -> Collect:  # noqa: ANN001
    collect = Collect()
    cfg = config(stats_interval_s=0.25)
    Pipeline(streams=list(sources), backend=backend, sinks=[console, collect], config=cfg).run()
    return collect


def _health(err: io.StringIO) -> list[re.Match[str]]:
    lines = [x for x in err.getvalue().splitlines() if x.startswith("health:")]
    matches = [HEALTH.match(x) for x in lines]
    assert all(matches), lines
    return matches  # type: ignore[return-value]


def test_a_non_tty_gets_one_health_line_per_period_with_the_tick_figures(backend) -> None:
    err = io.StringIO()
    console = ConsoleSink(out=io.StringIO(), err=err, live=False, health_every_s=0)
    collect = _run(backend, console, ScriptedSource(duration_s=1.5, live=True))
    lines = _health(err)
    assert len(lines) == len(collect.stats) >= 3  # a period of 0: every stats tick
    for m, st in zip(lines, collect.stats, strict=True):
        assert float(m[1]) == pytest.approx(st.fps, abs=0.051)
        assert float(m[2]) == pytest.approx(st.latency_p99_ms, abs=0.051)
        assert int(m[3]) == st.drops
        assert (m[4], m[5]) == ("1", "1")
    assert max(float(m[1]) for m in lines) > 0  # real figures, not zeros
    assert "\r" not in err.getvalue()  # no status line on a non-TTY


def test_no_health_line_before_its_period_has_passed(backend) -> None:
    err = io.StringIO()
    console = ConsoleSink(out=io.StringIO(), err=err, live=False, health_every_s=3600)
    collect = _run(backend, console, ScriptedSource(duration_s=1.0, live=True))
    assert collect.stats and not _health(err)


def test_a_stream_whose_only_source_failed_counts_as_down(backend) -> None:
    err = io.StringIO()
    console = ConsoleSink(out=io.StringIO(), err=err, live=False, health_every_s=0)
    mic = ScriptedSource(name="mic", duration_s=2.0, video=False, audio_fault_at=0.3, live=True)
    cam = ScriptedSource(name="cam", duration_s=2.0, live=True)
    _run(backend, console, mic, cam)
    ups = [(m[4], m[5]) for m in _health(err)]
    assert ups[-1] == ("1", "2"), ups  # "cam" goes on, "mic" is gone
    text = err.getvalue()
    assert text.index("microphone unplugged") < text.index("streams up 1/2")


def test_the_tty_status_line_carries_the_streams_up(backend) -> None:
    err = io.StringIO()
    console = ConsoleSink(out=io.StringIO(), err=err, live=True, health_every_s=0)
    _run(backend, console, ScriptedSource(duration_s=1.0, live=True))
    status = [s for s in err.getvalue().split("\r\033[K") if "fps" in s]
    assert status and all(" up 1/1 " in s for s in status), status
    assert not _health(err)  # the live line replaces the separate health lines


def test_a_negative_health_period_is_refused() -> None:
    with pytest.raises(UsageError, match="health_every_s"):
        ConsoleSink(health_every_s=-1)


def test_in_json_mode_every_console_line_is_a_json_object(backend) -> None:  # noqa: ANN001
    import json

    out, err = io.StringIO(), io.StringIO()
    console = ConsoleSink(out=out, err=err, live=None, health_every_s=0, json_lines=True)
    mic = ScriptedSource(name="mic", duration_s=2.0, video=False, audio_fault_at=0.3, live=True)
    collect = _run(backend, console, ScriptedSource(duration_s=2.0, live=True), mic)
    # stdout: the onsets and events, as their records
    printed = [json.loads(x) for x in out.getvalue().splitlines()]
    sent = [r.to_dict() for r in collect.records if r.type in ("onset", "event")]
    assert printed == json.loads(json.dumps(sent)) and printed
    # stderr: the warnings and faults as records, health as log messages with figures
    lines = [json.loads(x) for x in err.getvalue().splitlines()]
    assert lines and all(isinstance(x, dict) for x in lines)
    health = [x for x in lines if x.get("kind") == "health"]
    assert len(health) == len(collect.stats)
    assert {x["type"] for x in health} == {"log"}
    assert health[-1]["streams_up"] == 1 and health[-1]["streams"] == 2  # the mic failed
    warned = [x for x in lines if x["type"] in ("warning", "fault")]
    assert warned == [
        json.loads(r.json_line()) for r in collect.records if r.type in ("warning", "fault")
    ]
