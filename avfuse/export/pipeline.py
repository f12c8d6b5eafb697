"""The export chain: checkpoint -> ONNX -> check -> slim -> check -> parity -> manifest.

`export_model` runs every step (each is also usable alone from its module) and
leaves ``model.onnx``, ``manifest.json`` and ``checkpoint.pt`` (for the torch
backend) together in one folder. Nothing is written as the final manifest
unless the parity gate passed.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avfuse.export.check import check_onnx
from avfuse.export.manifest_step import build_manifest, write_manifest
from avfuse.export.onnx_export import to_onnx
from avfuse.export.parity import ATOL, MIN_SAMPLES, ParityReport, check_parity, parity_feeds
from avfuse.export.slim import slim_onnx
from avfuse.manifest import Manifest, file_sha256
from avfuse.models.checkpoint import (
    CHECKPOINT_NAME,
    audio_params_of,
    load_model,
    model_config_of,
    video_params_of,
)
from avfuse.models.features import Normalisation, load_features
from avfuse.models.zoo import ModelConfig

MODEL_NAME = "model.onnx"


@dataclass(frozen=True, kw_only=True)
class ExportResult:
    """What `export_model` produced.

    Attributes:
        model_path: the ONNX file.
        manifest_path: manifest.json beside it.
        checkpoint_path: checkpoint.pt beside it.
        manifest: the written manifest.
        parity: the parity gate's numbers.
        exporter: "dynamo" or "legacy".
        slimmed: whether onnxslim ran.
    """

    model_path: Path
    manifest_path: Path
    checkpoint_path: Path
    manifest: Manifest
    parity: ParityReport
    exporter: str
    slimmed: bool


def data_config_from(stored: dict[str, Any] | None) -> Any:
    """The DataConfig recorded in a checkpoint or manifest (lists back to tuples)."""
    from avfuse.data import DataConfig

    if not stored:
        return DataConfig()
    return DataConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in stored.items()})


def held_out_feeds(blob: dict[str, Any], config: ModelConfig, *, progress: bool = False):
    """Parity feeds from the test split of the data set the checkpoint was trained on."""
    data_config = data_config_from(blob.get("data_config"))
    a, v = audio_params_of(blob), video_params_of(blob)
    raw = load_features("test", data_config=data_config, progress=progress)
    norm = Normalisation(
        audio_mean=a.mean, audio_std=a.std, video_mean=v.mean[0], video_std=v.std[0]
    )
    return parity_feeds(config, norm.apply(raw)), raw.version


def export_model(
    checkpoint: str | Path,
    out_dir: str | Path,
    *,
    slim: bool = True,
    feeds: dict[str, np.ndarray] | None = None,
    atol: float = ATOL,
    min_samples: int = MIN_SAMPLES,
    prefer_dynamo: bool = True,
    name: str | None = None,
    progress: bool = False,
) -> ExportResult:
    """Export a training checkpoint to a runnable model folder.

    Args:
        checkpoint: a checkpoint.pt written by `avfuse train`.
        out_dir: folder for model.onnx, manifest.json and checkpoint.pt.
        slim: run onnxslim (the parity gate checks the slimmed graph).
        feeds: held-out graph feeds for the parity gate; default: the test split of the
            checkpoint's data set, each sample under every modality condition.
        atol: parity tolerance on logits.
        min_samples: fewest rows the parity gate accepts.
        prefer_dynamo: try the dynamo exporter first (else the legacy one only).
        name: manifest name (default "avfuse-<zoo name>").
        progress: show progress while computing held-out features.

    Raises:
        ExportError / ParityError: a step failed; the folder then has no manifest.json.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model, blob = load_model(checkpoint)
    config = model_config_of(blob)
    onnx_path = out / MODEL_NAME
    stale = out / "manifest.json"
    if stale.exists():
        stale.unlink()
    exported = to_onnx(model, config, onnx_path, prefer_dynamo=prefer_dynamo)
    check_onnx(onnx_path)
    slim_version = slim_onnx(onnx_path) if slim else None
    if slim_version:
        check_onnx(onnx_path)
    data_version = blob.get("data_version")
    if feeds is None:
        feeds, data_version = held_out_feeds(blob, config, progress=progress)
    provenance = {
        "exporter": exported.exporter,
        "exporter_fallback_reason": exported.fallback_reason,
        "onnxslim_applied": bool(slim_version),
        "data_version": data_version,
        "data_config": blob.get("data_config"),
        "checkpoint_sha256": file_sha256(checkpoint),
        "train": blob.get("train", {}),
    }

    def manifest_with(metrics: dict[str, Any]) -> Manifest:
        return build_manifest(
            onnx_path=onnx_path,
            config=config,
            audio=audio_params_of(blob),
            video=video_params_of(blob),
            labels=tuple(blob["labels"]),
            opset=exported.opset,
            metrics=metrics,
            provenance=provenance,
            name=name,
        )

    metrics = dict(blob.get("metrics", {}))
    report = check_parity(
        model, config, manifest_with(metrics), feeds, atol=atol, min_samples=min_samples
    )
    manifest = manifest_with({**metrics, "parity": report.to_dict()})
    manifest_path = write_manifest(manifest, out)
    ckpt_out = out / CHECKPOINT_NAME
    if Path(checkpoint).resolve() != ckpt_out.resolve():
        shutil.copyfile(checkpoint, ckpt_out)
    return ExportResult(
        model_path=onnx_path,
        manifest_path=manifest_path,
        checkpoint_path=ckpt_out,
        manifest=manifest,
        parity=report,
        exporter=exported.exporter,
        slimmed=bool(slim_version),
    )
