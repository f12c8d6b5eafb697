"""Content sync monitor with the bundled model on held-out talking faces (real ORT)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

from avfuse.data.speech_sources import phrase_text, speak, speech_scene
from avfuse.data.talking import render_talking
from avfuse.data.talking_stream import OffsetPlan, feed, offset_track
from avfuse.engine.content_sync import ContentSyncConfig, ContentSyncMonitor
from avfuse.errors import UsageError

RATE = 16000


@lru_cache(maxsize=1)
def _speech() -> np.ndarray:
    rng = np.random.default_rng(2)
    phrases = [speak(phrase_text(rng), v) for v in ("flite:slt", "flite:awb") for _ in range(2)]
    return speech_scene(phrases, 9.0, seed=4)


def _monitor(**kw: object) -> ContentSyncMonitor:
    return ContentSyncMonitor(
        configured_offset_ms=0.0, sample_rate=RATE, config=ContentSyncConfig(**kw)
    )


def _run(plan: OffsetPlan, mon: ContentSyncMonitor, *, still: bool = False, silent: bool = False):
    audio = np.zeros_like(_speech()) if silent else _speech()
    clip = render_talking(audio, sample_rate=RATE, style="cartoon", seed=3)
    frames = np.repeat(clip.frames[:1], len(clip.frames), 0) if still else clip.frames
    track = offset_track(_speech() if still else audio, RATE, plan)
    return feed(mon, frames, clip.fps, track, RATE)


@pytest.mark.timeout(120)
def test_a_late_talking_face_is_measured_and_warned_about() -> None:
    mon = _monitor()
    res = _run(OffsetPlan(offset_ms=150.0), mon)
    assert mon.status == "misaligned"
    assert mon.last is not None and mon.last.total_ms is not None
    assert abs(mon.last.total_ms - 150.0) <= 40.0
    assert len(res.warnings) == 1
    assert res.warnings[0].kind == "av_sync"
    assert abs(res.warnings[0].data["residual_offset_ms"] - 150.0) <= 40.0


@pytest.mark.timeout(120)
def test_ebu_r37_50ms_early_warns_but_50ms_late_does_not() -> None:
    early = _monitor()
    assert _run(OffsetPlan(offset_ms=-50.0), early).warnings
    late = _monitor()
    res = _run(OffsetPlan(offset_ms=50.0), late)
    assert late.status == "ok" and not res.warnings


@pytest.mark.timeout(120)
def test_a_static_image_has_no_usable_cues() -> None:
    mon = _monitor()
    res = _run(OffsetPlan(offset_ms=150.0), mon, still=True)
    assert mon.status == "no usable sync cues"
    assert mon.last is not None and mon.last.reason == "the picture is still"
    assert not res.warnings


@pytest.mark.timeout(120)
def test_silence_has_no_usable_cues() -> None:
    mon = _monitor()
    res = _run(OffsetPlan(offset_ms=150.0), mon, silent=True)
    assert mon.status == "no usable sync cues"
    assert mon.last is not None and mon.last.reason == "the sound is silent"
    assert not res.warnings


@pytest.mark.timeout(120)
def test_auto_offset_slews_towards_the_offset_without_jumps() -> None:
    mon = _monitor(auto_offset=True, slew_ms_per_s=100.0)
    res = _run(OffsetPlan(offset_ms=150.0), mon)
    times = np.array([t for t, _ in res.applied_ms])
    applied = np.array([a for _, a in res.applied_ms])
    rate = np.abs(np.diff(applied)) / np.maximum(np.diff(times), 1e-9)
    assert rate.max() <= 100.0 + 1e-6  # never faster than the slew limit
    assert 40.0 < applied[-1] <= 190.0  # well on its way to 150 after 9 s, not past it


@pytest.mark.timeout(60)
def test_bad_settings_are_refused_with_the_fix() -> None:
    with pytest.raises(UsageError, match="ContentSyncConfig"):
        ContentSyncConfig(window_s=0.1)
    with pytest.raises(UsageError, match="not found"):
        ContentSyncMonitor(
            configured_offset_ms=0.0,
            sample_rate=RATE,
            config=ContentSyncConfig(model="/nonexistent.onnx"),
        )
