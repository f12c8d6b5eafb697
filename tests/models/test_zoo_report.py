"""`train_zoo` writes accuracy.json and the README table with the numbers its members scored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from avfuse.models.experiment import Prepared
from avfuse.models.features import Features, Normalisation
from avfuse.models.report import TABLE_END, TABLE_START, train_zoo
from avfuse.models.train import TrainConfig

LABELS = tuple(str(d) for d in range(10)) + ("none",)
NORM = Normalisation(audio_mean=0.0, audio_std=1.0, video_mean=0.0, video_std=1.0)


def _features(n: int, seed: int) -> Features:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 11, n)
    audio = rng.normal(size=(n, 64, 97)).astype(np.float32)
    audio[np.arange(n), y * 5 + 2, :] += 4.0
    image = rng.normal(size=(n, 1, 48, 64)).astype(np.float32)
    return Features(audio, image, y.astype(np.int64), "synthetic")


@pytest.mark.slow
@pytest.mark.timeout(240)  # trains two members: 5 s idle, ~50 s on a loaded machine
def test_zoo_writes_report_and_readme_then_reuses(tmp_path):
    sizes = [("train", 192), ("val", 96), ("test", 96), ("test_low_snr", 96)]
    splits = {s: _features(n, i) for i, (s, n) in enumerate(sizes)}
    prepared = Prepared(
        norm=NORM, splits=splits, data_version="synthetic", labels=LABELS, data_config={}
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
    assert data["test_samples"] == 96
    assert data["machine"]["cpu_count"] >= 1 and data["machine"]["versions"]["torch"]
    assert report["readme_updated"] and "| late (default) | late |" in readme.read_text()

    again = train_zoo(**kwargs, reuse=True)  # reads the members back instead of retraining
    assert again["models"]["late"]["finished"] == report["models"]["late"]["finished"]


DATA_VERSION = "hand-made"


def _member(
    name: str, fusion: str, test: tuple, val_score: float, seconds: float, params: int
) -> dict[str, Any]:
    """A finished member's metrics.json, as `run_training` writes it (numbers chosen here)."""
    clean, am, vm, low = test
    return {
        "model": name,
        "fusion": fusion,
        "test": {"clean": clean, "audio_missing": am, "video_missing": vm, "low_snr": low},
        "val": {"score": val_score, "loss": 1.0},
        "best_epoch": 1,
        "epochs_run": 1,
        "train_seconds": seconds,
        "parameters": params,
        "data_version": DATA_VERSION,
        "history": [{"epoch": 1, "score": val_score}],
        "finished": f"2026-01-01T00:00:0{len(name)}Z",
    }


def _zoo(late_audio_missing: float) -> dict[str, dict[str, Any]]:
    # the late model has the best validation score, the hybrid one the best clean test score
    return {
        "audio": _member("audio", "audio", (0.70, None, 0.70, 0.40), 0.71, 120.0, 150_000),
        "video": _member("video", "video", (0.75, 0.75, None, 0.75), 0.74, 120.0, 98_400),
        "late": _member(
            "late", "late", (0.85, late_audio_missing, 0.69, 0.70), 0.90, 240.0, 250_600
        ),
        "hybrid": _member("hybrid", "hybrid", (0.90, 0.73, 0.68, 0.80), 0.88, 300.0, 401_499),
    }


def _report_from(tmp_path: Path, members: dict[str, dict[str, Any]]) -> tuple[dict, str]:
    """Write the members' folders, run `train_zoo(reuse=True)`; (accuracy.json, README)."""
    for name, metrics in members.items():
        folder = tmp_path / "zoo" / name
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps(metrics))
        (folder / "checkpoint.pt").write_bytes(b"")  # reuse only checks that it exists
    prepared = Prepared(
        norm=NORM,
        splits={"test": _features(7, 0)},
        data_version=DATA_VERSION,
        labels=LABELS,
        data_config={},
    )
    readme = tmp_path / "README.md"
    readme.write_text(f"# before\n{TABLE_START}\nold table\n{TABLE_END}\nafter\n")
    train_zoo(
        out_dir=tmp_path / "zoo",
        results=tmp_path / "out" / "accuracy.json",
        readme=readme,
        names=tuple(members),
        prepared=prepared,
        reuse=True,
        progress=False,
    )
    return json.loads((tmp_path / "out" / "accuracy.json").read_text()), readme.read_text()


@pytest.mark.timeout(60)
def test_report_of_finished_members_has_their_numbers_and_the_fusion_checks(tmp_path) -> None:
    members = _zoo(late_audio_missing=0.60)
    data, readme = _report_from(tmp_path, members)

    for name, m in members.items():
        assert data["models"][name] == {k: v for k, v in m.items() if k != "history"}
    assert data["default_model"] == "late"  # best validation score; test numbers never pick
    assert data["test_samples"] == 7 and data["data_version"] == DATA_VERSION

    checks = data["checks"]
    assert checks["fusion_gain"] == {
        "best_fused": "hybrid",
        "best_unimodal": "video",
        "points": 15.0,  # 90 - 75
        "pass": True,
    }
    gaps = checks["missing_modality"]
    assert gaps["hybrid/audio_missing"] == {"vs": "video", "points_below": 2.0, "pass": True}
    assert gaps["hybrid/video_missing"] == {"vs": "audio", "points_below": 2.0, "pass": True}
    assert gaps["late/audio_missing"] == {"vs": "video", "points_below": 15.0, "pass": False}
    assert gaps["late/video_missing"] == {"vs": "audio", "points_below": 1.0, "pass": True}
    assert set(gaps) == {
        f"{n}/{c}" for n in ("late", "hybrid") for c in ("audio_missing", "video_missing")
    }
    assert checks["pass"] is False  # late loses 15 points without audio (bar: 5)

    before, rest = readme.split(TABLE_START + "\n")
    table, after = rest.split("\n" + TABLE_END)
    assert before == "# before\n" and after == "\nafter\n" and "old table" not in table
    rows = table.splitlines()
    assert rows[0] == (
        "| model | fusion | clean | audio missing | video missing | low SNR | train time | params |"
    )
    assert rows[2:6] == [
        "| audio | audio | 70.0 | - | 70.0 | 40.0 | 2.0 min | 150 k |",
        "| video | video | 75.0 | 75.0 | - | 75.0 | 2.0 min | 98 k |",
        "| late (default) | late | 85.0 | 60.0 | 69.0 | 70.0 | 4.0 min | 251 k |",
        "| hybrid | hybrid | 90.0 | 73.0 | 68.0 | 80.0 | 5.0 min | 401 k |",
    ]
    assert "on 7 held-out samples" in table and f"Data set {DATA_VERSION};" in table
    assert "(13 min in all)" in table  # (120 + 120 + 240 + 300) s


@pytest.mark.timeout(60)
def test_report_passes_when_every_fused_model_survives_a_missing_modality(tmp_path) -> None:
    data, readme = _report_from(tmp_path, _zoo(late_audio_missing=0.72))
    gaps = data["checks"]["missing_modality"]
    assert gaps["late/audio_missing"] == {"vs": "video", "points_below": 3.0, "pass": True}
    assert data["checks"]["pass"] is True
    assert "| late (default) | late | 85.0 | 72.0 | 69.0 | 70.0 | 4.0 min | 251 k |" in readme
