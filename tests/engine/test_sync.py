"""Sync monitor: measures a residual A/V offset from paired onsets and warns only past tolerance."""

from __future__ import annotations

import numpy as np
import pytest

from avfuse.engine.sync import SyncConfig, SyncMonitor

FPS, HOP = 30.0, 0.01


def _drive(
    lag_s: float,
    *,
    configured_ms: float = 0.0,
    seconds: float = 20.0,
    cards=(1.0, 3.0, 5.5, 8.0, 10.5, 13.0, 15.5, 18.0),
    noise: float = 0.0,
):
    """Cards appear at `cards` (bright frame), a sound starts `lag_s` later for 0.5 s."""
    rng = np.random.default_rng(1)
    mon = SyncMonitor(configured_offset_ms=configured_ms, hop_s=HOP, image_shape=(1, 48, 64))
    records = []
    dark, bright = np.zeros((1, 48, 64), np.float32), np.ones((1, 48, 64), np.float32)
    n_audio = 0
    for k in range(int(seconds * FPS)):
        t = k / FPS
        shown = any(c <= t < c + 1.5 for c in cards)
        mon.push_video(t, bright if shown else dark)
        # audio columns up to t (3 or 4 per frame), energy -60 dB quiet, -20 dB sounding
        cols = []
        while n_audio * HOP <= t:
            ta = n_audio * HOP
            loud = any(c + lag_s <= ta < c + lag_s + 0.5 for c in cards)
            cols.append((-20.0 if loud else -60.0) + noise * rng.standard_normal())
            n_audio += 1
        if cols:
            mon.push_audio((n_audio - 1) * HOP, np.asarray(cols))
        records += mon.poll()
    return mon, records


def test_aligned_content_gives_no_warning() -> None:
    mon, records = _drive(0.0)
    assert records == []
    assert mon.pairs >= 6
    assert abs(mon.residual_ms) <= 1e3 * HOP + 1e-6


@pytest.mark.parametrize("lag_ms", [200.0, -150.0])
def test_unconfigured_delay_is_measured_and_flagged(lag_ms: float) -> None:
    mon, records = _drive(lag_ms / 1e3, noise=1.0)
    assert abs(mon.residual_ms - lag_ms) <= 1e3 * HOP + 1.0
    assert len(records) == 1  # warned once, not every frame
    w = records[0]
    assert w["type"] == "warning" and w["kind"] == "av_sync"
    assert f"--av-offset-ms {lag_ms:.0f}" in w["message"]


def test_configured_offset_is_part_of_the_advice() -> None:
    # the pipeline already shifts by 100 ms but the audio is 250 ms late: 150 ms remain
    mon, records = _drive(0.150, configured_ms=100.0)
    assert len(records) == 1
    assert "--av-offset-ms 250" in records[0]["message"]


def test_within_tolerance_is_quiet_and_too_few_pairs_never_judge() -> None:
    _, records = _drive(0.05)
    assert records == []
    mon, records = _drive(0.3, cards=(1.0, 4.0))
    assert mon.residual_ms is None and records == []


def test_summary_reports_the_estimate() -> None:
    mon, _ = _drive(0.2)
    s = mon.summary()
    assert s["pairs"] >= 6 and abs(s["residual_offset_ms"] - 200) <= 11
    assert SyncConfig().tolerance_ms == 80.0


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
    warnings = [r for r in res.records if r.get("kind") == "av_sync"]
    measured = res.summary["streams"][0]["av_sync"]["residual_offset_ms"]
    print(f"scene delay {delay_ms} ms, configured {configured_ms} ms: residual {measured} ms")
    assert abs(measured - (delay_ms - configured_ms)) <= 30
    if delay_ms == configured_ms:
        assert warnings == []
    else:
        assert len(warnings) == 1 and "--av-offset-ms 2" in warnings[0]["message"]
