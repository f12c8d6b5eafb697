"""Bring your own model, outputs: each output kind of a v2 manifest and its decision block,
through the real pipeline (and the CLI) with hand-built graphs; expected events are worked
out by hand from the media the test made."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from avfuse.errors import ManifestError, UsageError
from tests.engine.pipeline_kit import ScriptedSource
from tests.fixtures import graphs as g

pytestmark = pytest.mark.timeout(30)


def _events(res, model: str | None = None) -> list[tuple]:
    return [(e.label, e.start, e.end, e.score) for e in g.of(res.records, "event", model)]


@pytest.mark.timeout(10)
def test_probabilities_are_taken_as_they_are(tmp_path: Path) -> None:
    # the graph ends in Softmax: a white card (1.0-2.0 s) gives p(bright) = 1/(1 + e^-8)
    # = 0.99966 > on 0.8; a second softmax on top would make it 0.731 and no event
    res = g.run_tiny(tmp_path, [g.bright_probabilities()], [ScriptedSource(audio=False)])
    p = 1 / (1 + math.exp(-8))
    assert _events(res, "bright") == [("bright", 1.0, 2.0, round(p, 3))]


@pytest.mark.timeout(10)
def test_sigmoid_labels_are_decided_independently(tmp_path: Path) -> None:
    # light: the card, frames 1.0-2.0 s; sound: noise in samples [24000, 40000), seen by
    # the 512-sample window ending at each frame's time (floored to the 32 ms grid):
    # first at the frame 46/30 = 1.533 s (window end 1.536), last at 2.533 s (window end
    # 2.528 still holds noise), closed by the frame at 2.567 s. Both are on at once.
    res = g.run_tiny(tmp_path, [g.sound_and_light()], [ScriptedSource(noise=(1.5, 2.5))])
    events = sorted(_events(res, "multi"))
    assert events == [
        ("light", 1.0, 2.0, 1.0),
        ("sound", round(46 / 30, 3), round(77 / 30, 3), 1.0),
    ]


@pytest.mark.timeout(20)
@pytest.mark.parametrize(("pool", "score"), [("mean", 0.675), ("max", 1.0), ("last", 0.8)])
def test_sequence_output_is_pooled_over_its_steps(tmp_path: Path, pool: str, score: float) -> None:
    # steps [1.0, 0.2, 0.7, 0.8] x brightness: on the white card the pooled p(bright) is
    # their mean, max or last
    assert score == pytest.approx(
        {"mean": np.mean, "max": np.max, "last": lambda w: w[-1]}[pool](g.SEQUENCE_WEIGHTS)
    )
    res = g.run_tiny(tmp_path, [g.bright_sequence(pool=pool)], [ScriptedSource(audio=False)])
    assert _events(res, "seq") == [("bright", 1.0, 2.0, score)]


@pytest.mark.timeout(10)
def test_a_sequence_driving_output_without_pool_is_refused_before_any_sink_opens(
    tmp_path: Path,
) -> None:
    from avfuse.api import run

    out = tmp_path / "out.jsonl"
    with pytest.raises((ManifestError, UsageError)) as e:  # at load, from the graph's rank
        be = g.load(g.write(tmp_path / "seq", g.bright_sequence(pool="none")))
        try:
            run(sources=[ScriptedSource(audio=False)], backend=be, sinks=[f"jsonl:{out}"])
        finally:
            be.close()
    assert "pool" in str(e.value) and "'seq'" in str(e.value)
    assert not out.exists()


@pytest.mark.timeout(10)
def test_sequence_values_output_is_pooled_as_its_manifest_says(tmp_path: Path) -> None:
    tiny = g.bright_sequence(pool="max")
    tiny.manifest["outputs"][0]["kind"] = "values"
    frames = [g.gray_frame(0), g.gray_frame(255)]
    res = g.run_tiny(tmp_path, [tiny], [g.ArraySource(frames=frames)])
    got = [(v.output, v.values) for v in g.of(res.records, "value", "seq")]
    # the max over steps of [w m, 1 - w m]: black (m 0) -> [0, 1]; white -> [1, 0.8]
    assert got == [("seq", (0.0, 1.0)), ("seq", (1.0, 0.8))]


# ---------------------------------------------------------------------- score + decisions


def _two_tones() -> np.ndarray:
    """Silence; a square wave of amplitude 0.5 in [1, 2) s; silence; 0.8 in [3, 4) s;
    silence to 5 s."""
    z = np.zeros(16000, np.float32)
    return np.concatenate([z, g.square(16000, 0.5), z, g.square(16000, 0.8), z])


# peak_score scores each 512-sample chunk by its peak. Chunk k (end 512 k) holds the 0.5
# tone [16000, 32000) for k = 32..63 (1.024..2.016 s; the chunk at 2.048 closes it) and
# the 0.8 tone [48000, 64000) for k = 94..125 (3.008..4.0 s; closed at 4.032)
FIRST = ("loud", 1.024, 2.048, 0.5)
SECOND = ("loud", 3.008, 4.032, 0.8)


@pytest.mark.timeout(15)
@pytest.mark.parametrize(
    ("decision", "options", "want"),
    [
        ({}, None, [FIRST, SECOND]),  # the manifest's on 0.45
        ({"thresholds": {"loud": [0.7, 0.3]}}, None, [SECOND]),  # per label
        ({}, {"peak": {"on_threshold": 0.6}}, [SECOND]),  # a run option
        ({}, {None: {"on_threshold": 0.85}}, []),  # the only model
        ({"on": 0.9, "off": 0.9}, {"peak": {"on_threshold": 0.45}}, [FIRST, SECOND]),
    ],
)
def test_score_output_decides_by_the_manifest_and_the_options(
    tmp_path: Path, decision: dict, options: dict | None, want: list
) -> None:
    tiny = g.peak_score()
    tiny.manifest["decision"].update(decision)
    res = g.run_tiny(tmp_path, [tiny], [g.ArraySource(audio=_two_tones())], options=options)
    assert _events(res, "peak") == want
    assert all(o.model == "peak" for o in g.of(res.records, "onset"))


def _wav(path: Path, x: np.ndarray) -> Path:
    pcm = np.round(x * 32768).clip(-32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm.tobytes())
    return path


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("flags", "want"),
    [
        ([], [FIRST, SECOND]),
        (["--threshold", "peak=0.6"], [SECOND]),
        (["--threshold", "0.6"], [SECOND]),
    ],
)
def test_cli_threshold_overrides_the_manifest(tmp_path: Path, flags: list, want: list) -> None:
    wav = _wav(tmp_path / "tones.wav", _two_tones())  # +-0.5 and +-0.8 are exact in int16
    model = g.write(tmp_path / "peak", g.peak_score())
    cmd = [sys.executable, "-m", "avfuse.cli", "run", "--source", str(wav), "--model", str(model),
           "--sink", "jsonl:-", "--quiet", "--kernels", "reference", *flags]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=50)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.strip()]
    got = [(e["label"], e["start"], e["end"], e["score"]) for e in lines if e["type"] == "event"]
    assert got == want
    assert {e["model"] for e in lines if e["type"] in ("event", "onset")} <= {"peak"}


@pytest.mark.timeout(10)
def test_embedding_outputs_are_reported_only_on_request(tmp_path: Path) -> None:
    tiny = g.peak_score(kind="embedding")
    src = lambda: g.ArraySource(audio=g.square(2048, 0.25))  # noqa: E731
    quiet = g.run_tiny(tmp_path, [tiny], [src()])
    asked = g.run_tiny(tmp_path, [tiny], [src()], options={"peak": {"embeddings": True}})
    assert g.of(quiet.records, "value") == []
    assert [v.values for v in g.of(asked.records, "value", "peak")] == [(0.25,)] * 4
