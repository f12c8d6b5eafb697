"""`avfuse run --sync-monitor content [--auto-offset]`: wired into the run's summary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.timeout(240)
def test_content_monitor_reports_in_the_summary_and_never_warns_on_digit_cards(
    tmp_path: Path,
) -> None:
    metrics, events = tmp_path / "m.json", tmp_path / "e.jsonl"
    cmd = [
        sys.executable,
        "-m",
        "avfuse.cli",
        "run",
        "--source",
        "synthetic",
        "--sync-monitor",
        "content",
        "--auto-offset",
        "--quiet",
        "--metrics",
        str(metrics),
        "--sink",
        f"jsonl:{events}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=200)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = metrics.read_text()
    sync = json.loads(text)
    found = [v for v in _walk(sync) if isinstance(v, dict) and v.get("method") == "content"]
    assert found and found[0]["status"] == "no usable sync cues"
    assert found[0]["applied_offset_ms"] == 0.0  # nothing to correct towards
    assert '"av_sync"' not in events.read_text().replace('"av_sync": {', "")


@pytest.mark.timeout(120)
def test_auto_offset_without_the_content_monitor_is_one_line_error() -> None:
    cmd = [sys.executable, "-m", "avfuse.cli", "run", "--source", "synthetic", "--auto-offset"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=100)
    assert proc.returncode != 0
    assert "--sync-monitor content" in proc.stderr
    assert "Traceback" not in proc.stderr


def _walk(d: object):
    yield d
    if isinstance(d, dict):
        for v in d.values():
            yield from _walk(v)
    elif isinstance(d, list):
        for v in d:
            yield from _walk(v)
