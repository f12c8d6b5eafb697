"""Unplugging the microphone during `avfuse run`: degraded mode, a logged reconnect, nothing lost.

A real PulseAudio virtual microphone gives the audio and the synthetic scene (paced in
real time) the video of one stream. Mid-run the microphone's PulseAudio module is
unloaded, then loaded again. The run must go on on video alone (events marked
degraded), log the disconnect and the reconnect, end by itself, and the JSONL sink
must hold every event the console printed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from avfuse.assets import default_model_path
from tests.fixtures.pulse import PulseServer, pulse  # noqa: F401

pytestmark = [
    pytest.mark.audio,
    pytest.mark.slow,
    pytest.mark.skipif(not default_model_path().exists(), reason="the bundled model is not built"),
]


def test_unplug_mid_run_degrades_reconnects_and_keeps_every_event(
    pulse: PulseServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    events_path = tmp_path / "events.jsonl"
    cmd = [sys.executable, "-m", "avfuse.cli", "run", "--video", "synthetic", "--mic", "pulse",
           "--realtime", "--duration", "16", "--sink", f"jsonl:{events_path}", "--sink",
           "console", "--quiet"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, env=pulse.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        time.sleep(6.0)  # start-up, then a few cards with the microphone present
        pulse.unplug()
        time.sleep(5.0)
        pulse.plug()
        out, err = proc.communicate(timeout=90)
    finally:
        pulse.plug()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-2000:]
    records = [json.loads(line) for line in events_path.read_text().splitlines()]
    kinds = [r.get("kind") for r in records if r["type"] in ("warning", "fault")]
    assert "disconnected" in kinds and "reconnected" in kinds, kinds
    assert kinds.index("disconnected") < kinds.index("reconnected")
    assert "disconnected" in err and "reconnected" in err  # logged on the console too
    events = [r for r in records if r["type"] == "event"]
    printed = [ln for ln in out.splitlines() if " score " in ln and "(onset)" not in ln]
    assert len(events) == len(printed) >= 3  # the JSONL sink kept every event
    # while the mic was away the model ran on video alone and said so
    assert any(e["degraded"] and e["modalities"] == ["video"] for e in events), events
    summary = records[-1]
    assert summary["type"] == "summary" and summary["streams"][0]["video_frames"] > 300
    assert summary["frames"] > 100  # the model on every 3rd frame
