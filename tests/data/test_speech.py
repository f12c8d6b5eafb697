"""Tests for avfuse/data/speech.py: espeak-ng synthesis and held-out voices."""

from __future__ import annotations

import numpy as np

from avfuse.data.config import split_of_variant
from avfuse.data.speech import VoiceConfig, list_variants, synthesize, trim_silence, voices_for

from .conftest import needs_espeak


@needs_espeak
def test_synthesize_gives_trimmed_16k_speech() -> None:
    x = synthesize("seven", VoiceConfig("en-us", "m3", 160, 50))
    assert x.dtype == np.float32 and 0.2 * 16000 < len(x) < 1.0 * 16000
    assert np.abs(x).max() <= 1.0
    edge = np.abs(np.r_[x[:80], x[-80:]]).max()
    assert edge < 0.2 * np.abs(x).max()  # silence trimmed down to a short margin


def test_trim_silence_cuts_quiet_ends() -> None:
    x = np.zeros(16000, np.float32)
    x[6000:9000] = np.sin(np.arange(3000) * 0.3)
    y = trim_silence(x)
    assert 3000 <= len(y) <= 3000 + 4 * 160  # margins plus 10 ms frame rounding


@needs_espeak
def test_split_voices_are_disjoint_and_cover_variants() -> None:
    sets = {s: set(voices_for(s)) for s in ("train", "val", "test")}
    assert not sets["train"] & sets["val"] and not sets["train"] & sets["test"]
    variants = {v for s in sets.values() for _, v in s}
    assert variants == set(list_variants()) | {""}
    assert split_of_variant("") == "train"
    assert voices_for("test_low_snr") == voices_for("test")
