"""PostProcessor: softmax, smoothing, hysteresis into contract events; flush with None."""

from __future__ import annotations

import numpy as np
import pytest

from avfuse.engine.postprocess import Decision, PostprocessConfig, PostProcessor, softmax
from avfuse.engine.records import Event, Onset, Record

LABELS = ("0", "1", "2", "none")


def logits(label: str, strength: float = 6.0) -> np.ndarray:
    x = np.zeros(len(LABELS), np.float32)
    x[LABELS.index(label)] = strength
    return x


def play(
    pp: PostProcessor,
    script: list[tuple[str, int]],
    *,
    fps: float = 10.0,
    degraded_from: int | None = None,
    records: list[Record] | None = None,
) -> list[Event]:
    """Push `n` frames of each (label, n); returns the events incl. the flush (every record,
    onsets too, goes into `records` when given)."""
    out, k = [], 0
    for label, n in script:
        for _ in range(n):
            deg = degraded_from is not None and k >= degraded_from
            mods = ("video",) if deg else ("audio", "video")
            out += pp.push(
                Decision(
                    stream_time_s=k / fps,
                    scores=logits(label),
                    modalities=mods,
                    degraded=deg,
                    latency_ms=5.0 + k,
                )
            )
            k += 1
    out += pp.push(None)
    if records is not None:
        records.extend(out)
    return [r for r in out if isinstance(r, Event)]


def test_softmax_is_stable_and_in_place() -> None:
    out = np.empty(3)
    softmax(np.array([1000.0, 1000.0, -1000.0]), out)
    np.testing.assert_allclose(out, [0.5, 0.5, 0.0], atol=1e-12)


def test_a_segment_becomes_one_contract_event() -> None:
    pp = PostProcessor(
        labels=LABELS, config=PostprocessConfig(smoothing="none"), stream="cam", model="m"
    )
    records: list[Record] = []
    ev = play(pp, [("none", 10), ("2", 8), ("none", 5)], records=records)
    assert len(ev) == 1
    e = ev[0]
    assert (e.label, e.start, e.end, e.modalities, e.degraded) == (
        "2", 1.0, 1.8, ("audio", "video"), False,
    )  # fmt: skip
    assert e.score == pytest.approx(0.99, abs=0.01)
    assert e.latency_ms == 23.0  # the frame that closed it (k = 18)
    assert (e.stream, e.model, e.stream_time, e.event_id) == ("cam", "m", 1.8, 1)
    # the onset came when the segment had lasted min_duration_s (0.4 s: frame k = 14)
    onset = records[0]
    assert isinstance(onset, Onset) and records[1] is e
    assert (onset.label, onset.start, onset.stream_time, onset.event_id) == ("2", 1.0, 1.4, 1)
    assert onset.latency_ms == 19.0


def test_a_segment_closing_at_the_minimum_duration_still_has_its_onset_first() -> None:
    pp = PostProcessor(
        labels=LABELS, config=PostprocessConfig(smoothing="none", min_duration_s=0.4)
    )
    records: list[Record] = []
    ev = play(pp, [("none", 2), ("1", 4), ("none", 3)], records=records)
    assert [type(r) for r in records] == [Onset, Event]
    assert ev[0].end - ev[0].start == pytest.approx(0.4)


def test_none_never_makes_an_event_and_short_blips_are_dropped() -> None:
    pp = PostProcessor(
        labels=LABELS, config=PostprocessConfig(smoothing="none", min_duration_s=0.25)
    )
    assert play(pp, [("none", 30), ("1", 2), ("none", 10)]) == []


def test_hysteresis_keeps_a_segment_through_a_dip() -> None:
    cfg = PostprocessConfig(smoothing="ema", ema_alpha=0.5, on_threshold=0.8, off_threshold=0.3)
    pp = PostProcessor(labels=LABELS, config=cfg)
    ev = play(pp, [("1", 10), ("none", 1), ("1", 10), ("none", 10)])
    assert [e.label for e in ev] == ["1"]
    # the EMA starts at the first frame's probabilities; the dip at 1.0 s only halves it
    assert ev[0].start == 0.0 and ev[0].end == pytest.approx(2.2)


def test_a_new_label_closes_the_previous_segment() -> None:
    pp = PostProcessor(labels=LABELS, config=PostprocessConfig(smoothing="mean", mean_frames=3))
    ev = play(pp, [("0", 10), ("2", 10)])
    assert [e.label for e in ev] == ["0", "2"]
    assert ev[0].end == ev[1].start
    assert ev[1].end == pytest.approx(1.9)  # flushed at the last frame


def test_degraded_and_modalities_cover_the_whole_segment() -> None:
    pp = PostProcessor(labels=LABELS, config=PostprocessConfig(smoothing="none"), stream="cam1")
    ev = play(pp, [("0", 10), ("none", 2)], degraded_from=5)
    assert ev[0].degraded is True and ev[0].modalities == ("audio", "video")
    assert ev[0].stream == "cam1"
    assert pp.current_label is None


def test_flush_resets_for_a_new_stream() -> None:
    pp = PostProcessor(labels=LABELS)
    play(pp, [("1", 10)])
    assert pp.current_label is None and pp.push(None) == []


def test_bad_config_is_rejected() -> None:
    with pytest.raises(ValueError, match="off_threshold"):
        PostprocessConfig(on_threshold=0.3, off_threshold=0.5)
    with pytest.raises(ValueError, match="smoothing"):
        PostprocessConfig(smoothing="median")  # type: ignore[arg-type]
