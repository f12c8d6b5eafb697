"""The agreement monitor's conflict decisions, from observations written out by hand.

Each test feeds a timed sequence of per-modality probabilities (one decision every
33 ms, as a 30 fps fused lane makes them) and checks the conflicts against what the
sequence was written to contain. Real model outputs are in test_agreement_model.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from avfuse.engine.agreement import AgreementHeads, AgreementMonitor, Observation
from avfuse.manifest import AgreementSpec

LABELS = tuple(str(d) for d in range(10)) + ("none",)
HEADS = AgreementHeads(
    audio="audio_probs",
    video="video_probs",
    audio_kind="probabilities",
    video_kind="probabilities",
    labels=LABELS,
)
CFG = AgreementSpec(on=0.8, off=0.6, min_duration_ms=300.0, max_gap_ms=200.0)
STEP = 1 / 30
BOTH = ("audio", "video")


def _p(label: str, score: float) -> np.ndarray:
    """Probabilities with `score` on `label` and the rest spread evenly."""
    p = np.full(len(LABELS), (1.0 - score) / (len(LABELS) - 1))
    p[LABELS.index(label)] = score
    return p


def _run(frames: list[tuple[str, float, str, float, tuple[str, ...]]], cfg=CFG, t0=0.0):
    """Push (audio label, score, video label, score, modalities) one step apart; flush."""
    mon = AgreementMonitor(heads=HEADS, config=cfg, background="none", stream="s", model="m")
    out = []
    for k, (la, pa, lv, pv, mods) in enumerate(frames):
        obs = Observation(time_s=t0 + k * STEP, audio=_p(la, pa), video=_p(lv, pv), modalities=mods)
        out += mon.push(obs)
    return out + mon.push(None)


def _agree(n: int, label: str = "4"):
    return [(label, 0.95, label, 0.95, BOTH)] * n


@pytest.mark.timeout(10)
def test_a_confident_disagreement_longer_than_the_minimum_is_one_conflict():
    frames = _agree(10) + [("5", 0.9, "3", 0.95, BOTH)] * 15 + _agree(10)
    (c,) = _run(frames)
    assert (c.audio_label, c.video_label) == ("5", "3")
    assert c.start == pytest.approx(10 * STEP, abs=1e-3)
    assert c.end == pytest.approx(24 * STEP, abs=1e-3)
    assert c.audio_score == pytest.approx(0.9) and c.video_score == pytest.approx(0.95)
    assert c.conflict_id == 1 and c.stream == "s" and c.model == "m"
    assert c.similarity is None  # no embeddings declared


@pytest.mark.timeout(10)
def test_a_disagreement_shorter_than_the_minimum_is_not_a_conflict():
    frames = _agree(5) + [("5", 0.9, "3", 0.95, BOTH)] * 8 + _agree(5)  # 7 steps = 233 ms
    assert _run(frames) == []


@pytest.mark.timeout(10)
def test_scores_between_off_and_on_keep_an_open_conflict_but_do_not_start_one():
    # starts at 0.9 (>= on), goes on at 0.7 (>= off): one conflict over all 20 steps
    keep = [("5", 0.9, "3", 0.9, BOTH)] * 3 + [("5", 0.7, "3", 0.7, BOTH)] * 17
    (c,) = _run(keep)
    assert c.end - c.start == pytest.approx(19 * STEP, abs=1e-3)
    # never above on: never a conflict, however long
    assert _run([("5", 0.7, "3", 0.7, BOTH)] * 40) == []


@pytest.mark.timeout(10)
def test_a_dip_shorter_than_the_gap_does_not_split_a_conflict_and_a_longer_one_does():
    dis = [("5", 0.9, "3", 0.9, BOTH)] * 12
    short = _agree(4)  # 4 decisions: the condition fails for 5 steps (167 ms) <= 200 ms
    assert len(_run(dis + short + dis)) == 1
    long_ = _agree(8)  # 9 steps (300 ms) > 200 ms
    two = _run(dis + long_ + dis)
    assert len(two) == 2 and [c.conflict_id for c in two] == [1, 2]
    assert two[0].end == pytest.approx(11 * STEP, abs=1e-3)


@pytest.mark.timeout(10)
def test_the_background_label_and_a_missing_modality_never_make_a_conflict():
    assert _run([("5", 0.95, "none", 0.99, BOTH)] * 30) == []
    assert _run([("5", 0.95, "3", 0.99, ("audio",))] * 30) == []


@pytest.mark.timeout(10)
def test_another_confident_pair_ends_the_conflict_and_starts_its_own():
    frames = [("5", 0.9, "3", 0.9, BOTH)] * 12 + [("6", 0.9, "3", 0.9, BOTH)] * 12
    a, b = _run(frames)
    assert (a.audio_label, b.audio_label) == ("5", "6")
    assert a.end < b.start


@pytest.mark.timeout(10)
def test_an_open_conflict_is_reported_when_the_stream_ends():
    mon = AgreementMonitor(heads=HEADS, config=CFG)
    for k in range(12):
        got = mon.push(Observation(time_s=k * STEP, audio=_p("2", 0.9), video=_p("8", 0.9),
                                   modalities=BOTH))  # fmt: skip
        assert got == []  # one record per conflict, made when it ends
    (c,) = mon.push(None)
    assert (c.audio_label, c.video_label) == ("2", "8")


@pytest.mark.timeout(10)
def test_logit_heads_are_turned_into_probabilities_and_embeddings_give_the_similarity():
    heads = AgreementHeads(
        audio="la", video="lv", audio_kind="logits", video_kind="logits", labels=LABELS,
        audio_embedding="ea", video_embedding="ev",
    )  # fmt: skip
    mon = AgreementMonitor(heads=heads, config=CFG)
    la = np.zeros((1, 11), np.float32)
    lv = np.zeros((1, 11), np.float32)
    la[0, 5] = lv[0, 3] = 8.0  # softmax: e^8 / (e^8 + 10) = 0.9966
    ea = np.array([[1.0, 0.0]], np.float32)
    ev = np.array([[0.6, 0.8]], np.float32)  # cosine 0.6
    out = {"la": la, "lv": lv, "ea": ea, "ev": ev}
    for k in range(12):
        assert mon.push_outputs(out, 0, k * STEP, BOTH) == []
    (c,) = mon.push(None)
    assert c.audio_score == pytest.approx(np.exp(8) / (np.exp(8) + 10), abs=1e-4)
    assert c.similarity == pytest.approx(0.6, abs=1e-4)


@pytest.mark.timeout(10)
def test_time_going_back_is_refused():
    mon = AgreementMonitor(heads=HEADS, config=CFG)
    mon.push(Observation(time_s=1.0, audio=_p("1", 0.9), video=_p("1", 0.9), modalities=BOTH))
    with pytest.raises(ValueError, match="time order"):
        mon.push(Observation(time_s=0.5, audio=_p("1", 0.9), video=_p("1", 0.9), modalities=BOTH))
