"""Fixtures for export tests: a tiny trained-enough checkpoint and held-out feeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avfuse.kernels.reference import AudioParams, VideoParams
from avfuse.models.checkpoint import save_checkpoint
from avfuse.models.features import Features
from avfuse.models.zoo import ModelConfig, build_model

LABELS = tuple(str(d) for d in range(10)) + ("none",)


def random_features(n: int, seed: int = 0) -> Features:
    """Features with a label-dependent stripe in each modality (learnable, not trivial)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 11, n)
    audio = rng.normal(size=(n, 64, 97)).astype(np.float32)
    audio[np.arange(n), y * 5, :] += 2.0
    image = rng.normal(size=(n, 1, 48, 64)).astype(np.float32)
    image[np.arange(n), 0, y * 4, :] += 2.0
    return Features(audio, image, y.astype(np.int64), "random")


def make_checkpoint(path: Path, name: str, *, dim: int = 16, seed: int = 0) -> Path:
    """An untrained zoo model of width `dim` saved as a checkpoint (weights seeded)."""
    import torch

    torch.manual_seed(seed)
    config = ModelConfig(name=name, dim=dim)
    model = build_model(config).eval()
    return save_checkpoint(
        path,
        model=model,
        config=config,
        audio=AudioParams(mean=-40.0, std=20.0),
        video=VideoParams(height=48, width=64, colour="gray", mean=(0.45,), std=(0.2,)),
        labels=LABELS,
        metrics={"test": {"clean": 0.5}},
        data_version="random",
    )


@pytest.fixture(scope="session")
def held_out() -> Features:
    """200 held-out samples (x3 modality conditions = 600 parity rows for fused models)."""
    return random_features(200, seed=1)


@pytest.fixture(scope="session")
def checkpoint_factory():
    """make_checkpoint(path, name, dim=16, seed=0) -> Path."""
    return make_checkpoint
