"""`pretraining_study` (`avfuse train --pretraining`) merges its rows into accuracy.json.

Tiny synthetic feature arrays and one epoch a run: what is checked is the bookkeeping (the
zoo's keys kept, one row a variant with the share of labels it was given, retrieval for the
embedding rows only, the README blocks, reuse), not the accuracy.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from avfuse.models.experiment import Prepared
from avfuse.models.features import Features, Normalisation
from avfuse.models.study import (
    PRETRAINING_END,
    PRETRAINING_START,
    RETRIEVAL_END,
    RETRIEVAL_START,
    Variant,
    pretraining_study,
    variant_config,
)
from avfuse.models.train import TrainConfig

LABELS = tuple(str(d) for d in range(10)) + ("none",)
NORM = Normalisation(audio_mean=0.0, audio_std=1.0, video_mean=0.0, video_std=1.0)
VARIANTS = (
    Variant(key="late@100%", model="late", fraction=1.0),
    Variant(key="late+contrastive@50%", model="embed", fraction=0.5, pretrain=True,
            contrastive=True),
)  # fmt: skip


def _features(n: int, seed: int) -> Features:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 11, n)
    audio = rng.normal(size=(n, 64, 97)).astype(np.float32)
    audio[np.arange(n), y * 5 + 2, :] += 4.0
    image = rng.normal(size=(n, 1, 48, 64)).astype(np.float32)
    image[np.arange(n), 0, y * 4, :] += 4.0
    return Features(audio, image, y.astype(np.int64), "synthetic")


def test_a_row_at_fewer_labels_gets_the_few_label_epochs_and_only_its_own_terms():
    base = TrainConfig(epochs=4, pretrain_epochs=3, contrastive_weight=0.5)
    full = variant_config(VARIANTS[0], base, few_label_epochs=9)
    assert (full.epochs, full.label_fraction, full.pretrain_epochs) == (4, 1.0, 0)
    assert full.contrastive_weight == 0.0  # plain late fusion: no InfoNCE term
    few = variant_config(VARIANTS[1], base, few_label_epochs=9)
    assert (few.epochs, few.label_fraction, few.pretrain_epochs) == (9, 0.5, 3)
    assert few.contrastive_weight == 0.5


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_study_merges_rows_and_retrieval_keeps_the_zoo_keys_and_reuses(tmp_path):
    sizes = [("train", 160), ("val", 64), ("test", 64), ("test_low_snr", 64)]
    splits = {s: _features(n, i) for i, (s, n) in enumerate(sizes)}
    prepared = Prepared(
        norm=NORM, splits=splits, data_version="synthetic", labels=LABELS, data_config={}
    )
    results = tmp_path / "accuracy.json"
    results.write_text(json.dumps({"models": {"late": {"kept": True}}, "default_model": "late"}))
    readme = tmp_path / "README.md"
    readme.write_text(
        f"# x\n{PRETRAINING_START}\nold\n{PRETRAINING_END}\n{RETRIEVAL_START}\n{RETRIEVAL_END}\n"
    )
    kwargs = dict(
        out_dir=tmp_path / "study",
        results=results,
        readme=readme,
        train_config=TrainConfig(epochs=1, batch_size=32, pretrain_epochs=1, threads=1),
        variants=VARIANTS,
        prepared=prepared,
        progress=False,
        few_label_epochs=1,
    )
    merged = pretraining_study(**kwargs)
    data = json.loads(results.read_text())
    assert data["models"] == {"late": {"kept": True}} and data["default_model"] == "late"
    rows = data["pretraining"]["rows"]
    assert list(rows) == ["late@100%", "late+contrastive@50%"]  # the variants' order
    assert rows["late@100%"]["labelled_samples"] == 160
    assert rows["late+contrastive@50%"]["labelled_samples"] == 80
    assert rows["late+contrastive@50%"]["pretrain"]["epochs"] == 1
    assert list(data["retrieval"]) == ["late+contrastive@50%"]
    r = data["retrieval"]["late+contrastive@50%"]
    assert r["candidates"] == 64
    for way in ("audio_to_image", "image_to_audio"):
        assert 0.0 <= r[way]["top1"] <= r[way]["recall@5"] <= 1.0
    text = readme.read_text()
    assert "old" not in text and "| late+contrastive@50% | late |" in text
    assert "| late+contrastive@50% |" in text.split(RETRIEVAL_START)[1]
    assert merged["pretraining"]["few_label_epochs"] == 1

    again = pretraining_study(**kwargs, reuse=True)  # read back, not retrained
    for key in rows:
        assert again["pretraining"]["rows"][key]["finished"] == rows[key]["finished"]
