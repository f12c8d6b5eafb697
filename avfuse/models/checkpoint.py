"""Checkpoints: a model's config, weights, pre-processing and metrics in one torch file.

Everything but the state dict is plain Python (dicts, lists, numbers, strings),
so `torch.load(..., weights_only=True)` reads it, and the exporter and the
torch backend rebuild the model with `build_model` without importing training code.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from avfuse.errors import ModelError
from avfuse.kernels.reference import AudioParams, VideoParams
from avfuse.models.zoo import ModelConfig, build_model

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT = "avfuse-checkpoint"


def save_checkpoint(
    path: str | Path,
    *,
    model: Any,
    config: ModelConfig,
    audio: AudioParams,
    video: VideoParams,
    labels: tuple[str, ...],
    metrics: dict[str, Any] | None = None,
    data_version: str | None = None,
    data_config: dict[str, Any] | None = None,
    train: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint (weights moved to CPU) and return its path."""
    import torch

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    v = asdict(video)
    v["mean"], v["std"] = list(v["mean"]), list(v["std"])
    blob = {
        "format": FORMAT,
        "config": config.to_dict(),
        "state_dict": {k: t.detach().cpu() for k, t in model.state_dict().items()},
        "audio_params": asdict(audio),
        "video_params": v,
        "labels": list(labels),
        "metrics": metrics or {},
        "data_version": data_version,
        "data_config": data_config,
        "train": train or {},
    }
    torch.save(blob, p)
    return p


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict (state dict on CPU); raises ModelError naming the fix."""
    import torch

    p = Path(path)
    if not p.exists():
        raise ModelError(f"checkpoint {p} does not exist; train one with `avfuse train`")
    try:
        blob = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ModelError(
            f"cannot read checkpoint {p}: {str(e).splitlines()[0]}; retrain with `avfuse train`"
        ) from e
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ModelError(f"{p} is not an avfuse checkpoint; train one with `avfuse train`")
    return blob


def model_config_of(blob: dict[str, Any]) -> ModelConfig:
    """The ModelConfig stored in a checkpoint dict."""
    return ModelConfig(**blob["config"])


def audio_params_of(blob: dict[str, Any]) -> AudioParams:
    """The (normalised) AudioParams stored in a checkpoint dict."""
    return AudioParams(**blob["audio_params"])


def video_params_of(blob: dict[str, Any]) -> VideoParams:
    """The (normalised) VideoParams stored in a checkpoint dict."""
    v = dict(blob["video_params"])
    v["mean"], v["std"] = tuple(v["mean"]), tuple(v["std"])
    return VideoParams(**v)


def load_model(path: str | Path, *, device: str = "cpu") -> tuple[Any, dict[str, Any]]:
    """Rebuild the model of a checkpoint, weights loaded, in eval mode on `device`.

    Returns:
        (model, checkpoint dict).
    """
    blob = read_checkpoint(path)
    model = build_model(model_config_of(blob))
    try:
        model.load_state_dict(blob["state_dict"])
    except RuntimeError as e:
        raise ModelError(
            f"checkpoint {path} does not fit its model config ({str(e).splitlines()[0]}); "
            "retrain with `avfuse train`"
        ) from e
    return model.to(device).eval(), blob
