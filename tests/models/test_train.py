"""Training learns, is reproducible from a seed, keeps the best epoch and writes a checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from avfuse.models.augment import AugmentConfig
from avfuse.models.checkpoint import load_model, read_checkpoint
from avfuse.models.experiment import Prepared, run_training
from avfuse.models.features import Features, Normalisation
from avfuse.models.train import TrainConfig, accuracy, train_model
from avfuse.models.zoo import ModelConfig

LABELS = tuple(str(d) for d in range(10)) + ("none",)


def _features(n: int, seed: int) -> Features:
    """Audio tells the label in a mel band, the image in a row; either alone suffices."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 11, n)
    audio = rng.normal(size=(n, 64, 97)).astype(np.float32)
    audio[np.arange(n), y * 5 + 2, :] += 4.0
    image = rng.normal(size=(n, 1, 48, 64)).astype(np.float32)
    image[np.arange(n), 0, y * 4 + 2, :] += 4.0
    return Features(audio, image, y.astype(np.int64), "synthetic")


@pytest.fixture(scope="module")
def prepared() -> Prepared:
    splits = {"train": _features(440, 0), "val": _features(150, 1), "test": _features(150, 2)}
    return Prepared(
        norm=Normalisation(audio_mean=-30.0, audio_std=15.0, video_mean=0.5, video_std=0.2),
        splits=splits,
        data_version="synthetic",
        labels=LABELS,
        data_config={},
    )


# no image shift: the synthetic label is a row position, which a shift would blur
FAST = TrainConfig(epochs=2, batch_size=32, lr=3e-3, augment=AugmentConfig(shift=0))


def test_fused_model_learns_and_runs_with_video_missing(prepared):
    config = ModelConfig(name="early", dim=16)
    result = train_model(config, prepared.splits["train"], prepared.splits["val"], FAST,
                         progress=False)  # fmt: skip
    test = prepared.splits["test"]
    # chance is 1/11; two epochs teach the audio stripe (the image CNN needs longer)
    assert accuracy(result.model, config, test) > 0.3
    assert accuracy(result.model, config, test, "video_missing") > 0.3
    assert len(result.history) == 2 and 1 <= result.best_epoch <= 2


def test_same_seed_same_weights(prepared):
    config = ModelConfig(name="late", dim=16)
    one = TrainConfig(epochs=1, batch_size=64, seed=7)
    a = train_model(config, prepared.splits["train"], prepared.splits["val"], one, progress=False)
    b = train_model(config, prepared.splits["train"], prepared.splits["val"], one, progress=False)
    c = train_model(
        config,
        prepared.splits["train"],
        prepared.splits["val"],
        TrainConfig(epochs=1, batch_size=64, seed=8),
        progress=False,
    )
    sa, sb, sc = a.model.state_dict(), b.model.state_dict(), c.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_unimodal_accuracy_is_undefined_without_its_modality(prepared):
    config = ModelConfig(name="audio", dim=16)
    res = train_model(config, prepared.splits["train"], prepared.splits["val"],
                      TrainConfig(epochs=1), progress=False)  # fmt: skip
    test = prepared.splits["test"]
    assert accuracy(res.model, config, test, "audio_missing") is None
    assert accuracy(res.model, config, test, "video_missing") == accuracy(res.model, config, test)


def test_run_training_writes_checkpoint_and_metrics(tmp_path, prepared):
    m = run_training(
        "hybrid",
        out_dir=tmp_path,
        train_config=FAST,
        prepared=prepared,
        model_overrides={"dim": 16},
        progress=False,
    )
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["test"] == m["test"]
    assert set(m["test"]) == {"clean", "audio_missing", "video_missing"}
    blob = read_checkpoint(tmp_path / "checkpoint.pt")
    assert blob["audio_params"]["mean"] == -30.0 and blob["video_params"]["std"] == [0.2]
    assert blob["config"]["name"] == "hybrid" and blob["data_version"] == "synthetic"
    model, _ = load_model(tmp_path / "checkpoint.pt")
    assert accuracy(model, ModelConfig(**blob["config"]), prepared.splits["test"]) == pytest.approx(
        m["test"]["clean"]
    )
