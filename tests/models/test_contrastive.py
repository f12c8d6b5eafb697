"""The shared embedding: InfoNCE and retrieval against hand computations, the embed member's
outputs, the labelled subset, and a tiny pre-train -> train run end to end (seconds)."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from avfuse.models.augment import AugmentConfig
from avfuse.models.checkpoint import load_model
from avfuse.models.contrastive import info_nce, retrieval
from avfuse.models.experiment import Prepared, pretrain_member, run_training
from avfuse.models.features import Features, Normalisation
from avfuse.models.train import TrainConfig, labelled_subset
from avfuse.models.zoo import ModelConfig, build_model

LABELS = tuple(str(d) for d in range(10)) + ("none",)


@pytest.mark.timeout(30)
def test_info_nce_matches_a_hand_computation():
    za = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    zv = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    # similarities x scale 2: [[2, 1.2], [0, 1.6]]; rows audio->image, columns image->audio
    e = math.exp
    a2i = (-math.log(e(2) / (e(2) + e(1.2))) - math.log(e(1.6) / (e(0) + e(1.6)))) / 2
    i2a = (-math.log(e(2) / (e(2) + e(0))) - math.log(e(1.6) / (e(1.2) + e(1.6)))) / 2
    got = info_nce(za, zv, torch.tensor(2.0))
    assert float(got) == pytest.approx(0.5 * (a2i + i2a), rel=1e-6)
    # the scale is clamped at 100 (a temperature of 0.01): similarities [[.8, .6], [.96, 1]]
    za = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    zv = torch.tensor([[0.8, 0.6], [0.6, 0.8]])
    sp = math.log1p  # softplus(x) = log1p(e^x): cross-entropy of two logits
    rows = (sp(math.exp(60 - 80)) + sp(math.exp(96 - 100))) / 2
    cols = (sp(math.exp(96 - 80)) + sp(math.exp(60 - 100))) / 2
    assert float(info_nce(za, zv, torch.tensor(1e4))) == pytest.approx(0.5 * (rows + cols))


@pytest.mark.timeout(30)
def test_retrieval_matches_a_hand_example():
    gallery = np.array(
        [[1.0, 0.0], [0.9, 0.436], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0], [0.7, -0.714]]
    )
    g_labels = np.array([1, 0, 2, 0, 1, 2])
    queries = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    q_labels = np.array([0, 2, 0])
    # query 0 ranks g0 (label 1), g1 (0), ...: a miss at 1, a hit at 2
    # query 1 ranks g2 (label 2) first: a hit
    # query 2 ranks g4 (1), g5 (2), g0 (1), g3 (0): a hit only at 4
    got = retrieval(queries, gallery, q_labels, g_labels, ks=(1, 2, 5))
    assert got == {"top1": pytest.approx(1 / 3), "recall@2": pytest.approx(2 / 3),
                   "recall@5": 1.0}  # fmt: skip


@pytest.mark.timeout(30)
def test_embed_outputs_are_late_fusion_plus_probabilities_and_unit_embeddings():
    config = ModelConfig(name="embed", dim=16, embed_dim=8)
    model = build_model(config).eval()
    g = torch.Generator().manual_seed(0)
    audio, image = torch.randn(4, 64, 97, generator=g), torch.randn(4, 1, 48, 64, generator=g)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    with torch.no_grad():
        logits, pa, pv, za, zv = model.outputs(audio, image, mask)
        torch.testing.assert_close(logits, model(audio, image, mask))
        la, lv = model.unimodal_logits(audio, image)
    torch.testing.assert_close(pa, torch.softmax(la, 1))
    torch.testing.assert_close(pv, torch.softmax(lv, 1))
    torch.testing.assert_close(za.norm(dim=1), torch.ones(4))
    assert zv.shape == (4, 8) and config.outputs[0] == "logits"


@pytest.mark.timeout(30)
def test_labelled_subset_is_stratified_and_the_same_for_the_same_seed():
    y = np.repeat(np.arange(11), 100)
    feats = Features(np.zeros((1100, 1, 1), np.float32), np.zeros((1100, 1, 1, 1), np.float32), y)
    a = labelled_subset(feats, 0.1, 3)
    assert np.bincount(a.labels).tolist() == [10] * 11
    assert np.array_equal(labelled_subset(feats, 0.1, 3).labels, a.labels)
    rows = Features(np.arange(1100, dtype=np.float32)[:, None, None], feats.image, y)
    b, c = labelled_subset(rows, 0.1, 4), labelled_subset(rows, 0.1, 3)
    assert not np.array_equal(b.audio, c.audio)  # another seed, other samples
    assert labelled_subset(feats, 1.0, 3) is feats


def _features(n: int, seed: int) -> Features:
    """Each modality tells the label by a stripe, so the pairs share it (and only it)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 11, n)
    audio = rng.normal(size=(n, 64, 97)).astype(np.float32)
    audio[np.arange(n), y * 5 + 2, :] += 4.0
    image = rng.normal(size=(n, 1, 48, 64)).astype(np.float32)
    image[np.arange(n), 0, y * 4 + 2, :] += 4.0
    return Features(audio, image, y.astype(np.int64), "synthetic")


@pytest.fixture(scope="module")
def prepared() -> Prepared:
    splits = {"train": _features(256, 0), "val": _features(120, 1), "test": _features(120, 2)}
    return Prepared(
        norm=Normalisation(audio_mean=-30.0, audio_std=15.0, video_mean=0.5, video_std=0.2),
        splits=splits,
        data_version="synthetic",
        labels=LABELS,
        data_config={},
    )


#: the CI smoke configuration: a few seconds on one thread
TINY = TrainConfig(
    epochs=1,
    batch_size=32,
    pretrain_epochs=4,
    pretrain_lr=1e-2,
    threads=1,
    augment=AugmentConfig(shift=0),
)


@pytest.mark.timeout(120)
def test_contrastive_pretraining_aligns_the_modalities_without_labels(prepared, tmp_path):
    config = ModelConfig(name="embed", dim=16, embed_dim=8)
    pre = pretrain_member(config, prepared, TINY, cache=tmp_path / "pre.pt", echo=False)
    best = pre["history"][pre["best_epoch"] - 1]
    # chance top-1 is ~1/11; four epochs on the stripes get well above it, with no labels
    assert best["val_a2i_top1"] > 0.3 and best["val_i2a_top1"] > 0.3
    again = pretrain_member(config, prepared, TINY, cache=tmp_path / "pre.pt", echo=False)
    assert all(torch.equal(pre["state"][k], again["state"][k]) for k in pre["state"])
    assert again["seconds"] == pre["seconds"]  # read from the cache, not trained again


@pytest.mark.timeout(120)
def test_tiny_embed_run_writes_retrieval_and_pretraining_into_its_metrics(prepared, tmp_path):
    m = run_training(
        "embed",
        out_dir=tmp_path,
        train_config=replace(TINY, label_fraction=0.5),
        prepared=prepared,
        model_overrides={"dim": 16, "embed_dim": 8},
        progress=False,
    )
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["labelled_samples"] == pytest.approx(128, abs=11)
    assert written["train_samples"] == 256 and written["label_fraction"] == 0.5
    r = written["retrieval"]
    assert r["candidates"] == 120 and set(r["audio_to_image"]) == {"top1", "recall@5"}
    assert written["pretrain"]["epochs"] == 4 and "state" not in written["pretrain"]
    model, blob = load_model(tmp_path / "checkpoint.pt")
    assert blob["metrics"]["retrieval"] == m["retrieval"]
    assert type(model).__name__ == "EmbedFusion"
