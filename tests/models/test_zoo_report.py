"""`train_zoo` writes accuracy.json and the README table; the committed report meets the bar."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from avfuse.models.experiment import Prepared
from avfuse.models.features import Features, Normalisation
from avfuse.models.report import (
    MAX_MISSING_GAP,
    MIN_FUSION_GAIN,
    TABLE_END,
    TABLE_START,
    train_zoo,
)
from avfuse.models.train import TrainConfig
from avfuse.models.zoo import FUSED, UNIMODAL

REPO = Path(__file__).resolve().parents[2]
LABELS = tuple(str(d) for d in range(10)) + ("none",)


def _features(n: int, seed: int) -> Features:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 11, n)
    audio = rng.normal(size=(n, 64, 97)).astype(np.float32)
    audio[np.arange(n), y * 5 + 2, :] += 4.0
    image = rng.normal(size=(n, 1, 48, 64)).astype(np.float32)
    return Features(audio, image, y.astype(np.int64), "synthetic")


@pytest.mark.slow
def test_zoo_writes_report_and_readme_then_reuses(tmp_path):
    sizes = [("train", 192), ("val", 96), ("test", 96), ("test_low_snr", 96)]
    splits = {s: _features(n, i) for i, (s, n) in enumerate(sizes)}
    prepared = Prepared(
        norm=Normalisation(audio_mean=0.0, audio_std=1.0, video_mean=0.0, video_std=1.0),
        splits=splits,
        data_version="synthetic",
        labels=LABELS,
        data_config={},
    )
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{TABLE_START}\n{TABLE_END}\n")
    kwargs = dict(
        out_dir=tmp_path / "zoo",
        results=tmp_path / "accuracy.json",
        readme=readme,
        train_config=TrainConfig(epochs=1, batch_size=64),
        names=("audio", "late"),
        prepared=prepared,
        progress=False,
    )
    report = train_zoo(**kwargs)
    data = json.loads((tmp_path / "accuracy.json").read_text())
    assert set(data["models"]) == {"audio", "late"}
    assert set(data["models"]["late"]["test"]) == {
        "clean", "audio_missing", "video_missing", "low_snr"
    }  # fmt: skip
    assert data["default_model"] == "late"
    assert data["machine"]["cpu_count"] >= 1 and data["machine"]["versions"]["torch"]
    assert report["readme_updated"] and "| late (default) | late |" in readme.read_text()

    again = train_zoo(**kwargs, reuse=True)  # reads the members back instead of retraining
    assert again["models"]["late"]["finished"] == report["models"]["late"]["finished"]


def _committed() -> dict:
    path = REPO / "benchmarks" / "results" / "accuracy.json"
    if not path.exists():
        pytest.skip("no accuracy report yet (avfuse train --zoo writes it)")
    return json.loads(path.read_text())


def _missing_ok(data: dict, name: str) -> bool:
    clean = {n: m["test"]["clean"] for n, m in data["models"].items()}
    t = data["models"][name]["test"]
    return (
        t["audio_missing"] >= clean["video"] - MAX_MISSING_GAP
        and t["video_missing"] >= clean["audio"] - MAX_MISSING_GAP
    )


def test_committed_report_fusion_beats_unimodal():
    data = _committed()
    clean = {n: m["test"]["clean"] for n, m in data["models"].items()}
    best_fused = max(clean[n] for n in FUSED if n in clean)
    best_uni = max(clean[n] for n in UNIMODAL if n in clean)
    assert best_fused - best_uni >= MIN_FUSION_GAIN


def test_committed_default_model_survives_a_missing_modality():
    data = _committed()
    assert data["default_model"] in FUSED
    assert _missing_ok(data, data["default_model"])


def test_committed_report_every_fused_model_survives_a_missing_modality():
    data = _committed()
    failing = [n for n in FUSED if n in data["models"] and not _missing_ok(data, n)]
    assert not failing
