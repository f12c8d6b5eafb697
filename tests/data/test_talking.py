"""Talking-mouth scenes: the mouth follows the speech level; the device audio is late."""

from __future__ import annotations

import numpy as np
import pytest

from avfuse.data.talking import STYLES, mouth_opening, render_talking
from avfuse.data.talking_stream import OffsetPlan, offset_track
from avfuse.errors import UsageError

RATE = 16000


def _burst_audio() -> np.ndarray:
    """1 s of silence, 0.5 s of a loud tone, 1 s of silence."""
    x = np.zeros(int(2.5 * RATE), np.float32)
    t = np.arange(RATE // 2) / RATE
    x[RATE : RATE + RATE // 2] = 0.5 * np.sin(2 * np.pi * 300 * t)
    return x


@pytest.mark.timeout(60)
def test_mouth_opens_only_while_the_sound_is_loud() -> None:
    op = mouth_opening(_burst_audio(), RATE, np.array([0.5, 1.25, 2.0]))
    assert op[0] == 0.0 and op[2] == 0.0
    assert op[1] > 0.9


@pytest.mark.timeout(60)
@pytest.mark.parametrize("style", STYLES)
def test_rendered_mouth_changes_the_picture_with_the_sound(style: str) -> None:
    clip = render_talking(_burst_audio(), sample_rate=RATE, style=style, seed=1, fps=25.0)
    assert clip.frames.shape == (62, 72, 96, 3)
    # frames 12 (0.48 s, silent) and 31 (1.24 s, loud): the mouth region differs
    diff = np.abs(clip.frames[31].astype(int) - clip.frames[12].astype(int))
    assert diff.sum() > 255 * 20  # more than a few pixels' worth


@pytest.mark.timeout(60)
def test_unknown_style_is_refused() -> None:
    with pytest.raises(UsageError, match="style"):
        render_talking(_burst_audio(), sample_rate=RATE, style="photo")


@pytest.mark.timeout(60)
def test_offset_track_makes_the_audio_late_by_the_offset_plus_drift() -> None:
    x = np.zeros(10 * RATE, np.float32)
    x[2 * RATE] = 1.0  # a click at 2 s of scene time
    x[8 * RATE] = 1.0  # and at 8 s
    plan = OffsetPlan(offset_ms=150.0, drift_ppm=1000.0)
    y = offset_track(x, RATE, plan)
    peaks = np.flatnonzero(y > 0.3) / RATE
    # lag = 150 ms + t * 1 ms/s: 152 ms at 2 s, 158 ms at 8 s
    assert abs(peaks[0] - 2.152) < 1e-3
    assert abs(peaks[-1] - 8.158) < 1e-3
