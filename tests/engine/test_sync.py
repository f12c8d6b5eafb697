"""Sync monitor: estimates only from time-locked onset pairs, with an interval; warns only then."""

from __future__ import annotations

import tracemalloc
from collections.abc import Sequence

import numpy as np
import pytest

from avfuse.engine.records import WarningRecord
from avfuse.engine.sync import SyncConfig, SyncMonitor

FPS, HOP = 30.0, 0.01
SHAPE = (1, 48, 64)


def _cards(n: int, seed: int = 0, *, grid_s: float = 0.1) -> tuple[float, ...]:
    """Card times as the demo scene has them: shown 1.5 s, then a 0.6-1.0 s pause, rounded
    to `grid_s` (0.1 s: each starts with a video frame, as in a rendered file; 0.01 s:
    anywhere between two frames, as a camera sees the world)."""
    gaps = np.random.default_rng(seed).uniform(0.6, 1.0, n)
    return tuple(
        round(round((1.0 + k * 1.5 + float(gaps[:k].sum())) / grid_s) * grid_s, 2) for k in range(n)
    )


CARDS = _cards(9)
DATA_KEYS = {"residual_offset_ms", "ci_low_ms", "ci_high_ms", "pairs", "suggested_av_offset_ms"}


def _drive(
    lag_s: float | Sequence[float],
    *,
    configured_ms: float = 0.0,
    cards: Sequence[float] = CARDS,
    show_s: float = 1.5,
    sound_s: float = 0.5,
    seconds: float | None = None,
    noise_db: float = 0.0,
    quiet_db: float = -60.0,
    video: bool = True,
    seed: int = 1,
) -> tuple[SyncMonitor, list[WarningRecord]]:
    """Card k appears at cards[k] (a bright frame) and a sound starts lag[k] later for
    `sound_s`; the monitor is fed as the pipeline feeds it (a 97-column window per frame,
    3-4 columns new) and polled after every audio push."""
    rng = np.random.default_rng(seed)
    lags = [lag_s] * len(cards) if isinstance(lag_s, (int, float)) else list(lag_s)
    seconds = seconds if seconds is not None else max(cards, default=0.0) + 2.0
    mon = SyncMonitor(
        configured_offset_ms=configured_ms,
        hop_s=HOP,
        image_shape=SHAPE,
        source="cam0",
        model="digits",
    )
    dark, bright = np.zeros(SHAPE, np.float32), np.ones(SHAPE, np.float32)
    n_cols = int(seconds / HOP) + 2
    t_col = np.arange(n_cols) * HOP
    energy = quiet_db + noise_db * rng.standard_normal(n_cols)
    for c, lag in zip(cards, lags, strict=True):
        energy[(t_col >= c + lag - 1e-9) & (t_col < c + lag + sound_s)] = -20.0
    records: list[WarningRecord] = []
    for k in range(int(seconds * FPS)):
        t = k / FPS
        shown = video and any(c - 1e-9 <= t < c + show_s for c in cards)
        mon.push_video(t, bright if shown else dark)
        last = int(t / HOP + 1e-9)
        if last >= 96:
            mon.push_audio(t_col[last], energy[last - 96 : last + 1])
            records += mon.poll()
    return mon, records


def _speech_delays(n: int, seed: int) -> list[float]:
    """Speech that starts a random 150-400 ms after each card, as real speakers do."""
    return list(np.random.default_rng(seed).uniform(0.15, 0.40, n))


def test_aligned_clapperboard_is_ok_and_silent() -> None:
    mon, records = _drive(0.0)
    s = mon.summary()
    assert records == []
    assert s["status"] == "ok"
    assert abs(s["residual_offset_ms"]) <= 15
    assert s["ci_ms"][0] <= 0.0 <= s["ci_ms"][1]
    assert s["pairs"] >= 6


@pytest.mark.parametrize("lag_ms", [200.0, -150.0])
def test_unconfigured_delay_is_measured_with_an_interval(lag_ms: float) -> None:
    mon, records = _drive(lag_ms / 1e3, noise_db=1.0)
    assert len(records) == 1  # warned once, not every frame
    w = records[0]
    assert isinstance(w, WarningRecord)
    assert (w.kind, w.source, w.stream, w.model) == ("av_sync", "cam0", "cam0", "digits")
    assert set(w.data) == DATA_KEYS
    assert abs(w.data["residual_offset_ms"] - lag_ms) <= 15
    assert w.data["ci_low_ms"] <= lag_ms <= w.data["ci_high_ms"]
    assert w.data["pairs"] >= 6
    suggested = w.data["suggested_av_offset_ms"]
    assert abs(suggested - lag_ms) <= 15
    assert f"set --av-offset-ms {suggested:.0f}" in w.message and "\n" not in w.message
    s = mon.summary()
    assert s["status"] == "misaligned" and abs(s["residual_offset_ms"] - lag_ms) <= 15


def test_a_cue_between_frames_is_within_a_frame_and_inside_the_interval() -> None:
    """A camera sees a change up to one frame late; the interval says so."""
    cards = _cards(12, seed=4, grid_s=0.01)
    mon, records = _drive(0.2, cards=cards)
    assert len(records) == 1
    d = records[0].data
    assert 200.0 - 1e3 / FPS - 1e3 * HOP <= d["residual_offset_ms"] <= 200.0 + 1e3 * HOP
    assert d["ci_low_ms"] <= 200.0 <= d["ci_high_ms"]


def test_configured_offset_is_part_of_the_advice() -> None:
    # the pipeline already shifts by 100 ms but the audio is 250 ms late: 150 ms remain
    _, records = _drive(0.150, configured_ms=100.0)
    assert len(records) == 1
    suggested = records[0].data["suggested_av_offset_ms"]
    assert abs(suggested - 250.0) <= 15
    assert f"set --av-offset-ms {suggested:.0f}" in records[0].message


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_speech_starting_at_random_after_the_picture_gives_no_advice(seed: int) -> None:
    """Synchronised content whose sound starts 150-400 ms after each card: no time-locked
    pairs, so no estimate and no warning (pairing each card with the next sound and taking
    a median told the user to shift the audio by a few hundred ms)."""
    cards = _cards(20, seed)
    mon, records = _drive(_speech_delays(len(cards), seed), cards=cards)
    s = mon.summary()
    assert records == []
    assert s["status"] == "no usable sync cues"
    assert s["residual_offset_ms"] is None and s["ci_ms"] is None


@pytest.mark.parametrize("seed", [8, 99])
def test_a_chance_cluster_among_ten_cards_is_no_advice(seed: int) -> None:
    """Ten cards, speech 150-400 ms after each, six or seven of the delays by chance within
    one pair's resolution: enough for the share of matches, not for the chance test."""
    cards = _cards(10, seed)
    mon, records = _drive(_speech_delays(len(cards), seed), cards=cards)
    assert records == []
    assert mon.summary()["status"] == "no usable sync cues"
    assert mon.last is not None and mon.last.pairs >= 0.6 * mon.last.candidates


def test_periodic_cues_are_ambiguous() -> None:
    """Flashes and beeps every 0.4 s fit lags 0 and 400 ms equally: no estimate (the first
    sound in a window after each flash made it -400 or +400)."""
    cards = tuple(1.0 + 0.4 * k for k in range(40))
    mon, records = _drive(0.0, cards=cards, show_s=0.1, sound_s=0.1)
    assert records == []
    assert mon.summary()["status"] == "no usable sync cues"
    assert mon.residual_ms is None


def test_silence_and_a_static_picture_give_no_estimate() -> None:
    for kw in ({"quiet_db": -120.0, "sound_s": 0.0}, {"sound_s": 0.0}, {"video": False}):
        mon, records = _drive(0.2, noise_db=0.5, **kw)
        s = mon.summary()
        assert records == [], kw
        assert s["residual_offset_ms"] is None and s["ci_ms"] is None, kw
        assert s["status"] == "not enough cues yet", kw


def test_within_tolerance_is_quiet_and_too_few_cues_never_judge() -> None:
    mon, records = _drive(0.05)
    assert records == [] and mon.summary()["status"] == "ok"
    mon, records = _drive(0.3, cards=(1.0, 4.0, 7.0))
    assert records == [] and mon.residual_ms is None
    assert mon.summary()["status"] == "not enough cues yet"


def test_summary_has_the_documented_shape() -> None:
    mon, _ = _drive(0.2)
    s = mon.summary()
    assert set(s) == {"status", "residual_offset_ms", "ci_ms", "pairs", "configured_offset_ms"}
    assert isinstance(s["pairs"], int) and s["configured_offset_ms"] == 0.0
    lo, hi = s["ci_ms"]
    assert lo <= s["residual_offset_ms"] <= hi
    assert SyncConfig().tolerance_ms == 80.0


def _peak_bytes(call, n: int = 600) -> int:
    """Largest allocation peak of one call, over `n` calls (tracemalloc)."""
    worst = 0
    tracemalloc.start()
    try:
        for k in range(n):
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            call(k)
            worst = max(worst, tracemalloc.get_traced_memory()[1] - base)
    finally:
        tracemalloc.stop()
    return worst


@pytest.mark.timeout(60)
def test_pushes_and_an_idle_poll_allocate_nothing() -> None:
    mon, _ = _drive(0.2)  # warmed up: onsets seen, estimates made
    frames = [np.zeros(SHAPE, np.float32), np.full(SHAPE, 0.5, np.float32)]
    window = np.full(97, -60.0, np.float32)
    t0 = 30.0

    def video(k: int) -> None:
        mon.push_video(t0 + k / FPS, frames[(k // 20) % 2])

    def audio(k: int) -> None:
        window[-4:] = -20.0 if (k // 20) % 2 else -60.0
        mon.push_audio(t0 + (k + 1) * 4 * HOP, window)

    assert _peak_bytes(video) < 300
    assert _peak_bytes(audio) < 300
    mon.poll()  # judges what the pushes above brought
    before = mon.estimates
    assert _peak_bytes(lambda k: mon.poll()) < 300  # nothing new: no estimate, no work
    assert mon.estimates == before


def test_poll_estimates_only_when_a_visual_onset_becomes_judgeable() -> None:
    mon, _ = _drive(0.2)
    judged = mon.estimates
    assert 0 < judged <= len(CARDS) * 2  # at most once per visual onset (cards on and off)
    for _ in range(100):
        assert mon.poll() == []
    assert mon.estimates == judged


def test_bad_thresholds_are_refused() -> None:
    with pytest.raises(ValueError, match="lag_min_ms must be < lag_max_ms"):
        SyncConfig(lag_min_ms=100.0, lag_max_ms=0.0)
    with pytest.raises(ValueError, match="min_fraction"):
        SyncConfig(min_fraction=1.5)


@pytest.mark.parametrize(("delay_ms", "configured_ms"), [(200.0, 0.0), (200.0, 200.0), (0.0, 0.0)])
def test_pipeline_flags_only_an_unconfigured_delay(tmp_path, delay_ms, configured_ms) -> None:
    """The real pipeline on the synthetic scene (speech starts with its card)."""
    from avfuse.api import run
    from avfuse.engine.pipeline import PipelineConfig
    from avfuse.engine.sources.synthetic import SceneScript, SyntheticSource
    from tests.fixtures.models import write_tiny_model

    model = write_tiny_model(tmp_path)
    src = SyntheticSource(
        script=SceneScript.default(seed=2), sample_rate=16000, av_offset_ms=delay_ms, jitter_ms=5.0
    )
    res = run(
        sources=[src],
        model=model,
        sinks=(),
        config=PipelineConfig(av_offset_ms=configured_ms, kernel_impl="reference"),
    )
    warnings = [_figures(r) for r in res.records if _kind(r) == "av_sync"]
    sync = res.summary.streams[0]["av_sync"]
    print(f"scene delay {delay_ms} ms, configured {configured_ms} ms: {sync}")
    assert abs(sync["residual_offset_ms"] - (delay_ms - configured_ms)) <= 30
    if delay_ms == configured_ms:
        assert warnings == [] and sync["status"] == "ok"
    else:
        assert len(warnings) == 1 and sync["status"] == "misaligned"
        assert abs(warnings[0]["suggested_av_offset_ms"] - delay_ms) <= 30


def _kind(r) -> str | None:
    """A record's kind, whether the run hands out dicts or typed records."""
    return r.get("kind") if isinstance(r, dict) else getattr(r, "kind", None)


def _figures(r) -> dict:
    """A warning's figures (`data`), whether the run hands out dicts or typed records."""
    return dict(r.get("data", r)) if isinstance(r, dict) else dict(r.data)
