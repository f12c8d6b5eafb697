"""Conflict records from a tiny two-head graph in ONNX Runtime, through the real pipeline.

`two_heads` (tests/fixtures/graphs.py) has a head per modality whose outputs follow from
what is fed: a square wave of amplitude 0.5 makes the audio head say A, a mid-gray frame
makes the video head say A and a white one B. A scene whose frames turn white for a
second while the sound stays says A then B on video and A on audio: one disagreement
of one second. The expected labels, times and scores are worked out here from the
graph's arithmetic, never read from avfuse.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.fixtures.graphs import (
    RATE,
    TWO_HEAD_GAIN,
    ArraySource,
    gray_frame,
    of,
    run_tiny,
    square,
    two_heads,
)

FPS = 30.0
MID, WHITE = 127, 255  # mid-gray level s = 127/255 says A; white s = 1 says B
#: the frames turn white over [1, 2) s of a 3 s scene
WHITE_FROM, WHITE_TO, LENGTH_S = 1.0, 2.0, 3.0


def _softmax_top(z: list[float]) -> float:
    e = [math.exp(TWO_HEAD_GAIN * v) for v in z]
    return max(e) / sum(e)


def _level_top(s: float) -> float:
    """The top probability `_level_head` gives level s (its formula, written out again)."""
    return _softmax_top([0.25 - abs(s - 0.5), s - 0.8, 0.2 - s])


def _scene(white: bool = True) -> ArraySource:
    frames = []
    for k in range(int(LENGTH_S * FPS)):
        t = k / FPS
        frames.append(gray_frame(WHITE if white and WHITE_FROM <= t < WHITE_TO else MID))
    return ArraySource(audio=square(int(LENGTH_S * RATE), 0.5), frames=frames, fps=FPS)


@pytest.mark.timeout(60)
def test_a_second_of_disagreeing_heads_is_one_conflict_naming_each_modalitys_label(tmp_path):
    res = run_tiny(tmp_path, [two_heads()], [_scene()])
    conflicts = of(res.records, "conflict")
    assert len(conflicts) == 1
    c = conflicts[0]
    assert (c.audio_label, c.video_label) == ("A", "B")  # each head read as its own modality
    assert c.conflict_id == 1 and c.model == "heads"
    # the white frames span [1, 2): the first and last decisions that saw them
    assert WHITE_FROM - 1 / FPS <= c.start <= WHITE_FROM + 2 / FPS
    assert WHITE_TO - 3 / FPS <= c.end <= WHITE_TO + 1 / FPS
    assert c.audio_score == pytest.approx(_level_top(0.5), abs=1e-4)
    assert c.video_score == pytest.approx(_level_top(1.0), abs=1e-4)
    assert c.similarity is None  # the graph has no embeddings
    # the decision itself still happens: A while the heads agree
    assert "A" in {e.label for e in of(res.records, "event")}


@pytest.mark.timeout(60)
def test_heads_that_agree_make_no_conflict(tmp_path):
    res = run_tiny(tmp_path, [two_heads()], [_scene(white=False)])
    assert of(res.records, "conflict") == []
    assert {e.label for e in of(res.records, "event")} == {"A"}


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "agreement",
    [
        {"min_duration_ms": 1500},  # longer than the one-second disagreement
        {"on": 0.99995, "off": 0.9},  # above the video head's 0.99988 on white
    ],
    ids=["min-duration", "on-threshold"],
)
def test_the_manifests_agreement_block_is_what_decides(tmp_path, agreement):
    assert _level_top(1.0) < 0.99995 < _level_top(0.5)  # the threshold sits between them
    res = run_tiny(tmp_path, [two_heads(agreement=agreement)], [_scene()])
    assert of(res.records, "conflict") == []


@pytest.mark.timeout(60)
def test_a_lower_minimum_keeps_a_short_disagreement(tmp_path):
    # 0.2 s of white frames: under the default 300 ms, over a 100 ms minimum
    frames = [
        gray_frame(WHITE if 1.0 <= k / FPS < 1.2 else MID) for k in range(int(LENGTH_S * FPS))
    ]
    src = ArraySource(audio=square(int(LENGTH_S * RATE), 0.5), frames=frames, fps=FPS)
    assert of(run_tiny(tmp_path / "default", [two_heads()], [src]).records, "conflict") == []
    src = ArraySource(audio=square(int(LENGTH_S * RATE), 0.5), frames=frames, fps=FPS)
    short = two_heads(agreement={"min_duration_ms": 100})
    conflicts = of(run_tiny(tmp_path / "short", [short], [src]).records, "conflict")
    assert [(c.audio_label, c.video_label) for c in conflicts] == [("A", "B")]
    assert np.isclose(conflicts[0].start, 1.0, atol=2 / FPS)
