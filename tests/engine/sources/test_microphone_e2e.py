"""`avfuse run --mic ...` end to end: a real PulseAudio virtual mic, the real CLI, a model.

Digits spoken into the virtual microphone (the bundled demo utterances, from voices the
model never trained on) must come out as events, audio-only and marked degraded.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from avfuse.assets import default_model_path
from tests.fixtures.pulse import RATE, PulseServer, pulse  # noqa: F401

pytestmark = [pytest.mark.audio, pytest.mark.slow]


def _run_mic(pulse: PulseServer, *extra: str, duration: float) -> subprocess.Popen:  # noqa: F811
    cmd = [sys.executable, "-m", "avfuse.cli", "run", "--mic", "pulse", "--sink", "jsonl:-",
           "--quiet", "--duration", str(duration), *extra]  # fmt: skip
    return subprocess.Popen(
        cmd, env=pulse.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _records(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def test_run_with_the_mic_captures_without_gaps(pulse: PulseServer, tmp_path) -> None:  # noqa: F811
    from tests.fixtures.models import write_tiny_model

    model = write_tiny_model(tmp_path / "tiny")
    proc = _run_mic(pulse, "--model", str(model), duration=3.0)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    summary = next(r for r in _records(out) if r["type"] == "summary")
    (stream,) = summary["streams"]
    assert stream["mode"] == "audio" and stream["name"] == "mic:pulse"
    assert stream["audio_blocks"] > 50  # 20 ms blocks over ~3 s, minus start-up
    assert stream["audio_gaps"] == 0 and stream["device_clock_jumps"] == 0
    assert stream["audio_clock"]["residual_ms"] < 1.0


@pytest.mark.skipif(
    not default_model_path().exists(), reason="the bundled default model is not in this tree yet"
)
def test_digits_spoken_into_the_mic_are_recognised(pulse: PulseServer) -> None:  # noqa: F811
    from avfuse.assets.demo import load_demo_assets

    assets = load_demo_assets()
    assert assets.sample_rate == RATE
    digits = [3, 7, 1, 9]
    pause = np.zeros(int(1.5 * RATE), np.float32)
    parts = [np.zeros(int(4.0 * RATE), np.float32)]  # the CLI starts and loads the model
    for d in digits:
        parts += [assets.utterances[d][0].astype(np.float32), pause]
    speech = np.concatenate(parts)
    proc = _run_mic(pulse, duration=speech.size / RATE + 2.0)
    player = pulse.play_array(speech)
    out, err = proc.communicate(timeout=120)
    player.wait(10)
    assert proc.returncode == 0, err[-2000:]
    events = [r for r in _records(out) if r["type"] == "event" and r["label"] != "none"]
    labels = [e["label"] for e in events]
    print("spoken", digits, "recognised", labels, [round(e["score"], 2) for e in events])
    assert all(e["modalities"] == ["audio"] and e["degraded"] for e in events)
    hits = [str(d) for d in digits if str(d) in labels]
    assert len(hits) >= 3, labels  # demo voices are unseen by the model: allow one miss
    assert len(labels) <= len(digits) + 1, labels  # no chatter from the silence between
