"""Flash and beep detection on signals made here, with onsets placed by the test."""

from __future__ import annotations

import numpy as np
import pytest

from avfuse.calibrate.detect import find_beeps, find_flashes

RATE = 16000


def _beeps(onsets: list[int], *, seconds: float = 8.0, noise_db: float = -50.0) -> np.ndarray:
    """1 kHz bursts of 100 ms (1 ms raised-cosine rise) starting at `onsets`, over noise."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal(int(seconds * RATE)) * 10 ** (noise_db / 20)
    n, r = int(0.1 * RATE), int(0.001 * RATE)
    env = np.ones(n)
    env[:r] = 0.5 - 0.5 * np.cos(np.pi * np.arange(r) / r)
    env[-r:] = env[:r][::-1]
    burst = 0.5 * env * np.sin(2 * np.pi * 1000 * np.arange(n) / RATE)
    for k in onsets:
        x[k : k + n] += burst
    return x.astype(np.float32)


@pytest.mark.timeout(30)
def test_beep_onsets_are_found_to_a_sample() -> None:
    """The envelope's half-way point lags the onset by half the averaging window: without
    taking that off, every beep read 2 ms late."""
    onsets = [8000, 30011, 47123, 70000, 101234]
    found = find_beeps(_beeps(onsets), rate=RATE).onset_index
    assert found.shape == (len(onsets),)
    assert np.all(np.abs(found - np.array(onsets)) < 1.0), found - np.array(onsets)


@pytest.mark.timeout(30)
def test_voiced_sounds_noise_bursts_and_long_tones_are_not_beeps() -> None:
    """A chord holds a steady 1 kHz tone but most of its power elsewhere (a vowel's
    harmonics do too); noise bursts and a held tone are not tone bursts either."""
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(10 * RATE) * 1e-3).astype(np.float32)
    for k in (RATE, 3 * RATE):
        x[k : k + RATE // 10] += 0.3 * rng.standard_normal(RATE // 10).astype(np.float32)
    t = np.arange(int(0.12 * RATE)) / RATE
    vowel = sum(0.08 * np.sin(2 * np.pi * 200 * h * t + h) for h in range(1, 11))
    chord = 0.1 * np.sin(2 * np.pi * 1000 * t) + 0.25 * np.sin(2 * np.pi * 2500 * t)
    for k, sound in ((7.5, chord), (8.5, vowel), (9.3, chord)):
        x[int(k * RATE) : int(k * RATE) + t.size] += sound.astype(np.float32)
    t = np.arange(2 * RATE) / RATE
    x[5 * RATE : 7 * RATE] += (0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    found = find_beeps(x, rate=RATE)
    assert found.onset_index.size == 0
    assert found.candidates >= 1  # they were heard, and turned down


@pytest.mark.timeout(30)
def test_no_beep_is_taken_across_missing_audio() -> None:
    """A beep whose start fell in a capture gap would be timed from where audio came back."""
    x = _beeps([16000, 48000])
    valid = np.ones(x.shape[0], bool)
    valid[47000:48500] = False
    found = find_beeps(x, rate=RATE, valid=valid).onset_index
    assert np.allclose(found, [16000], atol=1.0)


def _frames(bright: set[int], n: int = 300, fps: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    ns = (np.arange(n) * 1e9 / fps).astype(np.int64) + 5_000_000_000
    luma = np.full(n, 0.05)
    luma[sorted(bright)] = 0.9
    return ns, luma


@pytest.mark.timeout(30)
def test_flash_onsets_are_their_first_bright_frames() -> None:
    ns, luma = _frames({30, 31, 32, 100, 101, 102})
    found = find_flashes(ns, luma, fps=30.0)
    assert list(found.onset_frame) == [30, 100]
    assert list(found.onset_ns) == [ns[30], ns[100]]


@pytest.mark.timeout(30)
def test_a_long_bright_spell_is_not_a_flash() -> None:
    """A card held up for a second is a scene change, not the pattern's flash."""
    ns, luma = _frames({30, 31, 32} | set(range(100, 140)))
    assert list(find_flashes(ns, luma, fps=30.0).onset_frame) == [30]


@pytest.mark.timeout(30)
def test_a_flash_after_missing_frames_is_not_timed() -> None:
    """Its first bright frame may be among those that never arrived."""
    ns, luma = _frames({30, 31, 32, 100, 101, 102})
    keep = np.r_[0:95, 100:300]  # frames 95..99 lost
    found = find_flashes(ns[keep], luma[keep], fps=30.0)
    assert list(found.onset_ns) == [ns[30]]


@pytest.mark.timeout(30)
def test_low_contrast_pictures_have_no_flashes() -> None:
    ns, luma = _frames(set())
    luma[::7] += 0.15  # flicker well below the contrast a flash has
    assert find_flashes(ns, luma, fps=30.0).onset_ns.size == 0
