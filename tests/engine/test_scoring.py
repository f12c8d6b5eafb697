"""score_events: recall, precision and per-digit detail against a scene's ground truth."""

from __future__ import annotations

import json

import pytest

from avfuse.engine.scoring import score_events
from avfuse.engine.sources.synthetic import SceneScript, SyntheticSource

TRUTH = [
    {"label": "3", "start": 1.0, "end": 2.5},
    {"label": "7", "start": 3.5, "end": 5.0},
    {"label": "1", "start": 6.0, "end": 7.5},
]


def ev(label: str, start: float, end: float, **kw: object) -> dict:
    return {"type": "event", "label": label, "start": start, "end": end, "score": 0.9, **kw}


def test_perfect_events_score_one() -> None:
    events = [ev(t["label"], t["start"] + 0.3, t["end"] + 0.2) for t in TRUTH]
    s = score_events(events, TRUTH)
    assert (s["recall"], s["precision"], s["f1"]) == (1.0, 1.0, 1.0)
    assert s["n_recognised"] == 3 and s["n_false"] == 0
    assert [d["delay_s"] for d in s["per_digit"]] == [0.3, 0.3, 0.3]


def test_wrong_label_is_false_and_missed() -> None:
    events = [ev("3", 1.2, 2.0), ev("8", 3.6, 4.5), ev("1", 6.1, 7.0)]
    s = score_events(events, TRUTH)
    assert s["recall"] == pytest.approx(2 / 3)
    assert s["precision"] == pytest.approx(2 / 3)
    assert s["n_false"] == 1 and s["false_events"][0]["label"] == "8"
    seven = s["per_digit"][1]
    assert not seven["recognised"] and seven["confused_with"] == ["8"]
    assert seven["delay_s"] is None


def test_tolerance_decides_near_misses() -> None:
    late = [ev("3", 2.8, 3.2)]  # 0.3 s after the digit ended
    assert score_events(late, TRUTH, tolerance_s=0.5)["n_recognised"] == 1
    s = score_events(late, TRUTH, tolerance_s=0.1)
    assert s["n_recognised"] == 0 and s["n_false"] == 1
    with pytest.raises(ValueError):
        score_events(late, TRUTH, tolerance_s=-1)


def test_duplicates_other_records_and_empty_inputs() -> None:
    events = [
        ev("3", 1.0, 1.5),
        ev("3", 1.8, 2.4),
        {"type": "warning", "message": "audio gap"},
        {"type": "summary", "frames": 10},
        ev("none", 2.6, 3.0),
    ]
    s = score_events(events, TRUTH)
    assert s["n_events"] == 2 and s["n_duplicates"] == 1 and s["n_false"] == 0
    assert s["precision"] == 1.0 and s["per_digit"][0]["events"] == 2
    empty = score_events([], TRUTH)
    assert empty["recall"] == 0.0 and empty["precision"] == 0.0 and empty["f1"] == 0.0
    assert score_events([ev("3", 0, 1)], [])["n_false"] == 1


def test_scores_a_synthetic_scene_truth_read_back_from_json(tmp_path) -> None:
    src = SyntheticSource(script=SceneScript.default(seed=2, digits="0123"))
    truth = json.loads(src.write_truth(tmp_path / "t.json").read_text())
    events = [ev(t["label"], t["card"][0] + 0.4, t["card"][1] - 0.2) for t in truth[:3]]
    events.append(ev("9", truth[3]["start"] + 0.1, truth[3]["end"]))
    s = score_events(events, truth)
    assert s["n_recognised"] == 3 and s["n_false"] == 1
    assert s["recall"] == 0.75 and s["precision"] == 0.75
