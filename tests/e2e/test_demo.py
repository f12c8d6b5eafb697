"""`avfuse demo` from the command line: recognises the scripted digits, no false events."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from avfuse.assets import default_model_path

pytestmark = pytest.mark.skipif(
    not default_model_path().exists(), reason="the bundled model is not built yet"
)


@pytest.mark.slow
def test_demo_scores_itself_and_prints_events(tmp_path: Path) -> None:
    metrics = tmp_path / "m.json"
    proc = subprocess.run(
        [sys.executable, "-m", "avfuse.cli", "demo", "--fast", "--metrics", str(metrics)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(metrics.read_text())
    score = summary["score"]
    print(
        f"demo: {score['n_recognised']}/{score['n_truth']} recognised, "
        f"{score['n_false']} false, p99 end-to-end "
        f"{summary['latency_ms']['end_to_end']['p99']} ms"
    )
    assert score["n_truth"] == 10
    assert score["recall"] >= 0.95
    assert score["n_false"] == 0
    # events were printed as they happened, with their latency; the table came at the end
    assert sum("score " in line and " ms" in line for line in proc.stdout.splitlines()) >= 10
    assert "end_to_end" in proc.stderr and "recognised" in proc.stderr


@pytest.mark.slow
def test_demo_absorbs_drift_jitter_and_a_configured_offset() -> None:
    from avfuse.api import demo

    res = demo(
        realtime=False, sinks=(), av_offset_ms=120.0, drift_ppm=300.0, jitter_ms=10.0, seed=3
    )
    assert res.score["recall"] >= 0.9, res.score
    assert res.score["n_false"] == 0
    assert not [r for r in res.records if getattr(r, "kind", None) == "av_sync"]
