"""Shared fixtures for the AV-digits tests: tiny splits built once per session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from avfuse.data import AVDigitsSplit, DataConfig, load_split

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="needs espeak-ng (apt-get install espeak-ng)"
)


@pytest.fixture(scope="session")
def tiny_config() -> DataConfig:
    return DataConfig.tiny()


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("avdigits-cache")


@pytest.fixture(scope="session")
def tiny_splits(tiny_config: DataConfig, tiny_cache: Path) -> dict[str, AVDigitsSplit]:
    """All four tiny splits, built in one cache (train first, as training would)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("needs espeak-ng (apt-get install espeak-ng)")
    return {
        name: load_split(name, config=tiny_config, cache_dir=tiny_cache, progress=False)
        for name in ("train", "val", "test", "test_low_snr")
    }
