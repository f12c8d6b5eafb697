"""Validation scenes from allowed, held-out sources: espeak-ng val voices, val image sources.

Whatever is tuned for the default model (decision thresholds, smoothing, minimum
duration, which zoo member ships) is tuned here, never on the test-only scenes of
`avfuse.data.offsource`. These scenes are built the same way as those (the demo's
timing and backgrounds, one voice per scene speaking each digit at three rates, every
word at the same RMS level, white noise at a fixed SNR) from sources no model trains
on: the val split's espeak-ng voices (base ``en-us-nyc`` with the val variants) and its
image sources (Hershey duplex, scikit-learn writer blocks 9 and 10, pen-stroke
writer 7). Only espeak-ng and scikit-learn are needed.

    scenes = validation_scenes(n_scenes=24)   # OffsourceScene objects
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.signal import resample_poly

from avfuse.data.config import image_sources_for
from avfuse.data.offsource import (
    SPEECH_DBFS,
    OffsourceMaterial,
    OffsourceScene,
    OffsourceVoice,
    _at_level,
)
from avfuse.data.scene import render_card
from avfuse.data.speech import DIGIT_WORDS, SAMPLE_RATE, VoiceConfig, synthesize, voices_for
from avfuse.engine.sources.synthetic import SceneScript
from avfuse.errors import DataError

__all__ = ["VAL_SPEEDS", "validation_material", "validation_scenes"]

#: espeak-ng words per minute each voice speaks every digit at (fast, normal, slow
#: speakers; the test-only scenes use duration stretches 0.85, 1.0 and 1.2).
VAL_SPEEDS = (200, 170, 140)


def _shift_voice(x: np.ndarray, factor: float) -> np.ndarray:
    """Play the word ``factor`` times faster: pitch, formants (vocal-tract length) and rate
    move together, as between a child's, a woman's and a man's voice."""
    up, down = 100, int(round(100 * factor))
    g = np.gcd(up, down)
    return resample_poly(x, up // g, down // g).astype(np.float32)


def _hard_card(card: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A card as a hand and a camera unlike the training ones show it: tilted, thicker or
    thinner ink, out of focus."""
    h, w = card.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), float(rng.uniform(-14, 14)), 1.0)
    m[0, 1] += float(rng.uniform(-0.2, 0.2))  # slant
    border = tuple(int(c) for c in card[0, 0])
    out = cv2.warpAffine(card, m, (w, h), borderMode=cv2.BORDER_CONSTANT, borderValue=border)
    k = np.ones((2, 2), np.uint8)
    out = cv2.erode(out, k) if rng.random() < 0.5 else cv2.dilate(out, k)  # dark ink: erode
    return cv2.GaussianBlur(out, (0, 0), float(rng.uniform(0.8, 1.6)))


def validation_material(
    base: str, variant: str, *, seed: int, cards_per_digit: int = 40, hard: bool = False
) -> OffsourceMaterial:
    """One val voice's digits at every speed, and cards from the val image sources.

    ``hard`` moves both sides away from what training shows at once, as the test-only
    sources do: each voice is shifted by a factor of 0.85-0.9 or 1.1-1.15 (pitch,
    formants and rate), and each card is tilted, slanted, re-inked and blurred.
    """
    rng = np.random.default_rng([seed, 5151])
    pitch = int(rng.integers(25, 76))
    factor = float(rng.uniform(1.1, 1.15)) ** (1 if rng.random() < 0.5 else -1)
    utterances = {}
    for d in range(10):
        voices = [VoiceConfig(base, variant, s, pitch) for s in VAL_SPEEDS]
        words = [synthesize(DIGIT_WORDS[d], v) for v in voices]
        if hard:
            words = [_shift_voice(x, factor) for x in words]
        utterances[d] = [_at_level(x, SPEECH_DBFS) for x in words]
    sources = image_sources_for("val")
    cards = {
        d: [
            render_card(d, rng, source=sources[k % len(sources)], height=96)
            for k in range(cards_per_digit)
        ]
        for d in range(10)
    }
    if hard:
        cards = {d: [_hard_card(c, rng) for c in cs] for d, cs in cards.items()}
    from avfuse.assets.demo import load_demo_assets

    name = f"{base}+{variant}" if variant else base
    return OffsourceMaterial(
        cards=cards,
        utterances=utterances,
        backgrounds=load_demo_assets().backgrounds,
        sample_rate=SAMPLE_RATE,
        voice=OffsourceVoice("espeak-ng", name),
    )


def validation_scenes(
    *,
    n_scenes: int,
    digits_per_scene: int = 30,
    snr_db: float = 20.0,
    seed: int = 0,
    hard: bool = False,
) -> list[OffsourceScene]:
    """Demo-timed scenes that cycle through the val voices (one voice per scene).

    Scene seeds are offset from the test-only scenes' so that no scene script is shared
    with them either.
    """
    if n_scenes < 1 or digits_per_scene < 1:
        raise DataError("n_scenes and digits_per_scene must be >= 1")
    voices = voices_for("val")
    if not voices:
        raise DataError("no espeak-ng val voice found: apt-get install espeak-ng")
    digits = "".join(str(k % 10) for k in range(digits_per_scene))
    materials: dict[int, OffsourceMaterial] = {}
    scenes = []
    for k in range(n_scenes):
        v = k % len(voices)
        if v not in materials:
            materials[v] = validation_material(*voices[v], seed=seed * 1000 + v, hard=hard)
        script = SceneScript.default(seed=500_000 + seed * 1000 + k, digits=digits)
        scenes.append(OffsourceScene(script, materials[v], SPEECH_DBFS - snr_db, snr_db))
    return scenes
