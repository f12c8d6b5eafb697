"""Benchmark inputs: features from a split with the runtime's kernels, accuracy, synthetic."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from avfuse.backends import create_backend
from avfuse.bench.data import accuracy, features_from_split, synthetic_data
from avfuse.kernels import reference as ref
from avfuse.manifest import load_manifest


def _split(n: int = 5) -> SimpleNamespace:
    rng = np.random.default_rng(3)
    return SimpleNamespace(
        images=rng.integers(0, 256, (n, 48, 64, 3), dtype=np.uint8),
        audio=(rng.standard_normal((n, 16000)) * 3000).astype(np.int16),
        labels=np.arange(n) % 11,
    )


def test_features_match_the_reference_preprocessing(tiny_model: Path) -> None:
    m = load_manifest(tiny_model)
    split = _split()
    data = features_from_split(m, split, limit=3)
    assert data.n == 3 and data.source == "av-digits:test"
    assert data.feeds["audio"].shape == (3, 64, 97) and data.feeds["image"].shape == (3, 1, 48, 64)
    np.testing.assert_array_equal(data.feeds["mask"], np.ones((3, 2), np.float32))
    want_a = ref.log_mel(split.audio[1], m.audio)
    want_i = ref.image_to_tensor(split.images[2], m.video, "bgr24")
    np.testing.assert_allclose(data.feeds["audio"][1], want_a, atol=2e-3)
    np.testing.assert_allclose(data.feeds["image"][2], want_i, atol=2e-3)
    np.testing.assert_array_equal(data.labels, [0, 1, 2])


def test_accuracy_counts_top1_hits_and_says_why_when_unlabelled(tiny_model: Path) -> None:
    m = load_manifest(tiny_model)
    data = features_from_split(m, _split(7), limit=0)
    with create_backend("ort", threads=1).load(m) as be:
        pred = np.argmax(be.infer(data.batch(range(7)))["logits"], axis=1)
        acc = accuracy(be, data, batch=3)
        assert acc["samples"] == 7
        assert acc["top1"] == np.mean(pred == data.labels)
        syn = synthetic_data(m, n=4, seed=0, reason="no data here")
        assert accuracy(be, syn) == {"top1": None, "samples": 0, "reason": "no data here"}


def test_synthetic_inputs_are_seeded(tiny_model: Path) -> None:
    m = load_manifest(tiny_model)
    a = synthetic_data(m, n=4, seed=5, reason="x")
    b = synthetic_data(m, n=4, seed=5, reason="x")
    c = synthetic_data(m, n=4, seed=6, reason="x")
    np.testing.assert_array_equal(a.feeds["audio"], b.feeds["audio"])
    assert not np.array_equal(a.feeds["audio"], c.feeds["audio"])
    assert a.labels is None and a.describe() == {"source": "synthetic", "samples": 4, "reason": "x"}
