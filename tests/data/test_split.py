"""Tests for avfuse/data/split.py: shapes, determinism, held-out splits, balance, cache."""

from __future__ import annotations

import numpy as np
import pytest

from avfuse.data import LABELS, AVDigitsSplit, DataConfig, generate, load_split
from avfuse.data.speech import espeak_version, list_variants
from avfuse.errors import DataError, UsageError

from .conftest import needs_espeak


def test_labels_contract() -> None:
    assert LABELS == ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "none")


@needs_espeak
def test_shapes_and_dtypes(tiny_splits: dict[str, AVDigitsSplit], tiny_config: DataConfig) -> None:
    for name, s in tiny_splits.items():
        n = tiny_config.size_of(name)
        assert s.images.shape == (n, 48, 64, 3) and s.images.dtype == np.uint8
        assert s.audio.shape == (n, 16000) and s.audio.dtype == np.int16
        assert s.labels.shape == (n,) and s.labels.dtype == np.int64
        assert s.voices.shape == (n,) and s.image_sources.shape == (n,)
        assert s.labels.min() >= 0 and s.labels.max() <= 10
        assert s.version == tiny_config.key(espeak_version())
        assert len(s) == n


@needs_espeak
def test_label_balance_and_none(tiny_splits: dict[str, AVDigitsSplit]) -> None:
    for s in tiny_splits.values():
        counts = np.bincount(s.labels, minlength=11)
        assert counts[:10].max() - counts[:10].min() <= 1
        assert abs(counts[10] - len(s) / 11) <= 1
        none = s.labels == 10
        assert np.all(s.voices[none] == "") and np.all(s.image_sources[none] == "")
        assert np.all(s.voices[~none] != "") and np.all(s.image_sources[~none] != "")
        # nothing spoken, but never digital silence: "none" windows carry noise
        assert np.all(np.abs(s.audio[none]).max(axis=1) > 0)


@needs_espeak
def test_splits_disjoint_by_voice_and_image_source(
    tiny_splits: dict[str, AVDigitsSplit],
) -> None:
    def parts(s: AVDigitsSplit) -> tuple[set[str], set[str], set[str]]:
        voices = {v for v in s.voices if v}
        bases = {v.split("+")[0] for v in voices}
        variants = {v.split("+")[1] for v in voices if "+" in v}
        return bases, variants, {x for x in s.image_sources if x}

    tr, va, te = (parts(tiny_splits[n]) for n in ("train", "val", "test"))
    for a, b in ((tr, va), (tr, te), (va, te)):
        for set_a, set_b in zip(a, b, strict=True):
            assert set_a and set_b and not set_a & set_b
    assert {s.split(":")[0] for s in te[2]} == {"font", "sklearn", "strokes"}
    meta = tiny_splits["test"].meta
    assert set(meta["voice_bases"]) == te[0] and te[1] <= set(meta["voice_variants"])
    assert te[2] <= set(meta["image_sources"])
    assert set(meta["voice_variants"]) <= set(list_variants())


@needs_espeak
def test_test_split_regenerates_alone(
    tiny_splits: dict[str, AVDigitsSplit], tiny_config: DataConfig, tmp_path
) -> None:
    alone = load_split("test", config=tiny_config, cache_dir=tmp_path, progress=False)
    with_train = tiny_splits["test"]
    for f in ("images", "audio", "labels", "voices", "image_sources"):
        np.testing.assert_array_equal(getattr(alone, f), getattr(with_train, f))


@needs_espeak
def test_low_snr_is_the_test_split_with_other_noise(
    tiny_splits: dict[str, AVDigitsSplit],
) -> None:
    test, low = tiny_splits["test"], tiny_splits["test_low_snr"]
    np.testing.assert_array_equal(test.images, low.images)
    np.testing.assert_array_equal(test.labels, low.labels)
    np.testing.assert_array_equal(test.voices, low.voices)
    speech = test.labels != 10
    assert not np.array_equal(test.audio[speech], low.audio[speech])
    np.testing.assert_array_equal(test.audio[~speech], low.audio[~speech])
    assert low.meta["snr_db"] == [-5.0, -5.0]


@needs_espeak
def test_parallel_build_equals_serial(tiny_config: DataConfig, tmp_path, monkeypatch) -> None:
    cfg = DataConfig.tiny(n_val=60, workers=1)
    serial = load_split("val", config=cfg, cache_dir=tmp_path / "a", progress=False)
    monkeypatch.setattr(generate, "_MIN_PARALLEL", 0)
    monkeypatch.setattr(generate, "_CHUNK", 25)
    par_cfg = DataConfig.tiny(n_val=60, workers=2)
    parallel = load_split("val", config=par_cfg, cache_dir=tmp_path / "b", progress=False)
    assert serial.version == parallel.version  # workers is not part of the version key
    np.testing.assert_array_equal(serial.images, parallel.images)
    np.testing.assert_array_equal(serial.audio, parallel.audio)


@needs_espeak
def test_cache_round_trip_and_version_key(
    tiny_config: DataConfig, tiny_cache, tmp_path, monkeypatch
) -> None:
    cached = load_split("test", config=tiny_config, cache_dir=tiny_cache, progress=False)
    path = tiny_cache / f"avdigits-{cached.version}" / "test.npz"
    assert path.is_file()
    monkeypatch.setenv("AVFUSE_CACHE_DIR", str(tiny_cache))
    again = load_split("test", config=tiny_config, progress=False)  # env var picks the cache
    np.testing.assert_array_equal(cached.audio, again.audio)
    other = DataConfig.tiny(snr_db_range=(0.0, 5.0))
    assert other.key(espeak_version()) != tiny_config.key(espeak_version())
    assert DataConfig.tiny(workers=1).key("x") == DataConfig.tiny(workers=2).key("x")


def test_unknown_split_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown split"):
        load_split("training", config=DataConfig.tiny())


def test_missing_espeak_names_the_fix(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    espeak_version.cache_clear()
    try:
        with pytest.raises(DataError, match="apt-get install espeak-ng"):
            load_split("test", config=DataConfig.tiny(), cache_dir=tmp_path, progress=False)
    finally:
        espeak_version.cache_clear()


@pytest.mark.parametrize(
    "bad",
    [
        {"n_test": 0},
        {"snr_db_range": (10.0, 0.0)},
        {"occlusion_prob": 1.5},
        {"card_height_range": (0.0, 0.5)},
        {"voices_per_split": (1, 1)},
    ],
)
def test_contradictory_config_is_rejected(bad: dict) -> None:
    with pytest.raises(UsageError, match="DataConfig"):
        DataConfig.tiny(**bad)
