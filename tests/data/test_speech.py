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


@needs_espeak
def test_base_weights_reshape_the_train_pool_only() -> None:
    from collections import Counter

    from avfuse.data.config import DataConfig
    from avfuse.data.speech import _draw_voices

    plain, weighted = DataConfig(), DataConfig(train_base_weights=(("en-us", 4.0),))
    share = Counter(v.base for v in _draw_voices("train", 2000, weighted))["en-us"] / 2000
    assert 0.45 < share < 0.55  # 4 / (4 + 4 other bases of weight 1)
    plain_share = Counter(v.base for v in _draw_voices("train", 2000, plain))["en-us"] / 2000
    assert 0.17 < plain_share < 0.23
    for split in ("val", "test"):
        assert _draw_voices(split, 60, weighted) == _draw_voices(split, 60, plain)


def test_base_weights_are_checked_and_leave_the_default_key_alone() -> None:
    import pytest

    from avfuse.data.config import DataConfig
    from avfuse.errors import UsageError

    with pytest.raises(UsageError, match="en-029"):
        DataConfig(train_base_weights=(("en-029", 2.0),))  # a test voice is no train base
    with pytest.raises(UsageError, match="positive"):
        DataConfig(train_base_weights=(("en-us", 0.0),))
    import hashlib
    import json
    from dataclasses import asdict

    from avfuse.data.config import GENERATOR_VERSION

    # the key as it was computed before the field existed: cached data sets stay valid
    old = {k: v for k, v in asdict(DataConfig()).items() if k not in ("workers",)}
    old.pop("train_base_weights")
    blob = json.dumps([old, GENERATOR_VERSION, "espeak 1.51"], sort_keys=True)
    key = DataConfig().key("espeak 1.51")
    assert key == hashlib.sha256(blob.encode()).hexdigest()[:12]
    assert DataConfig(train_base_weights=(("en-us", 4.0),)).key("espeak 1.51") != key
