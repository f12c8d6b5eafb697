"""The records a session keeps in memory are bounded: a service runs for months.

Before, every record a run made was also kept in the session's memory for `RunResult`:
thousands an hour, ~1 KB each, memory that only grew (9 MB/h of the 30-minute soak's
growth). Now the result holds the most recent `keep_records` (`avfuse run` keeps none
unless --truth scores the events) and counts the ones let go.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from avfuse.api import run
from avfuse.engine.records import WarningRecord
from avfuse.engine.sinks import MemorySink
from tests.engine.pipeline_kit import ScriptedSource, write_tiny_model


def _warning(i: int) -> WarningRecord:
    return WarningRecord(source="s", kind="k", message=str(i))


def test_a_bounded_memory_keeps_the_newest_and_counts_the_rest() -> None:
    m = MemorySink(keep=3)
    for i in range(5):
        m.on_record(_warning(i))
    assert [r.message for r in m.records] == ["2", "3", "4"] and m.let_go == 2
    none = MemorySink(keep=0)
    for i in range(5):
        none.on_record(_warning(i))
    assert none.records == [] and none.let_go == 5
    every = MemorySink()
    for i in range(5):
        every.on_record(_warning(i))
    assert len(every.records) == 5 and every.let_go == 0
    with pytest.raises(ValueError, match="keep"):
        MemorySink(keep=-1)


@pytest.mark.timeout(120)
def test_a_session_holds_at_most_keep_records(tmp_path: Path) -> None:
    manifest = write_tiny_model(tmp_path)
    src = ScriptedSource(card=(0.5, 1.0), noise=(1.5, 2.0), duration_s=3.0)
    full = run(sources=[src], model=str(manifest), sinks=[], keep_records=None)
    assert len(full.records) >= 3, full.records  # an onset, its event, the summary
    src = ScriptedSource(card=(0.5, 1.0), noise=(1.5, 2.0), duration_s=3.0)
    res = run(sources=[src], model=str(manifest), sinks=[], keep_records=1)
    assert len(res.records) == 1 and res.records_let_go == len(full.records) - 1
    last, kept = full.records[-1], res.records[0]
    assert (kept.type, kept.stream_time) == (last.type, last.stream_time)  # the newest


def test_the_cli_keeps_records_only_to_score_them() -> None:
    from avfuse.cli import build_parser
    from avfuse.commands.run import _api_kwargs

    p = build_parser()
    assert _api_kwargs(p.parse_args(["run", "--source", "synthetic"]))["keep_records"] == 0
    scored = p.parse_args(["run", "--source", "synthetic", "--truth", "t.json"])
    assert _api_kwargs(scored)["keep_records"] is None
