"""One training run end to end: features -> train -> test metrics -> checkpoint + metrics JSON.

`prepare` loads every split's features once (normalised with train statistics),
so `avfuse train --zoo` shares them across all zoo members; `run_training`
trains one member and writes ``checkpoint.pt`` and ``metrics.json`` into its folder.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from avfuse.kernels.reference import AudioParams, VideoParams
from avfuse.models.checkpoint import CHECKPOINT_NAME, save_checkpoint
from avfuse.models.features import Features, Normalisation, load_features
from avfuse.models.train import (
    TrainConfig,
    TrainResult,
    accuracy,
    labelled_subset,
    train_model,
)
from avfuse.models.zoo import EMBEDDING, ModelConfig, build_model, count_parameters

#: test conditions reported per model: name -> (split, condition)
TEST_CONDITIONS = {
    "clean": ("test", "clean"),
    "audio_missing": ("test", "audio_missing"),
    "video_missing": ("test", "video_missing"),
    "low_snr": ("test_low_snr", "clean"),
}


@dataclass(frozen=True, kw_only=True)
class Prepared:
    """Normalised features of every split plus the statistics used.

    Attributes:
        norm: train-split normalisation statistics.
        splits: split name -> normalised features.
        data_version: the data set's version key.
        labels: class names.
        data_config: the data set's DataConfig as a dict (stored in checkpoints).
    """

    norm: Normalisation
    splits: dict[str, Features]
    data_version: str
    labels: tuple[str, ...]
    data_config: dict[str, Any]

    @property
    def audio_params(self) -> AudioParams:
        """Manifest audio parameters (with the train mean/std)."""
        return self.norm.audio_params()

    @property
    def video_params(self) -> VideoParams:
        """Manifest video parameters (with the train mean/std)."""
        return self.norm.video_params()


def prepare(
    data_config: Any = None,
    *,
    splits: tuple[str, ...] = ("train", "val", "test", "test_low_snr"),
    progress: bool = True,
) -> Prepared:
    """Load (or compute and cache) features, fit normalisation on train, apply it to all."""
    from avfuse.data import LABELS, DataConfig

    data_config = data_config if data_config is not None else DataConfig()
    raw = {s: load_features(s, data_config=data_config, progress=progress) for s in splits}
    norm = Normalisation.fit(raw["train"])
    return Prepared(
        norm=norm,
        splits={s: norm.apply(f) for s, f in raw.items()},
        data_version=raw["train"].version,
        labels=tuple(LABELS),
        data_config=asdict(data_config),
    )


def test_metrics(model: Any, config: ModelConfig, prepared: Prepared) -> dict[str, float | None]:
    """Accuracy under each of `TEST_CONDITIONS` (None where a unimodal model has no input)."""
    out: dict[str, float | None] = {}
    for name, (split, cond) in TEST_CONDITIONS.items():
        if split in prepared.splits:
            out[name] = accuracy(model, config, prepared.splits[split], cond)
    return out


def model_config_for(
    name: str, prepared: Prepared, overrides: dict[str, Any] | None = None
) -> ModelConfig:
    """The ModelConfig of zoo member `name` for the shapes of `prepared`'s features."""
    sample = prepared.splits["train"]
    return ModelConfig(
        name=name,
        n_mels=sample.audio.shape[1],
        n_frames=sample.audio.shape[2],
        channels=sample.image.shape[1],
        height=sample.image.shape[2],
        width=sample.image.shape[3],
        n_classes=len(prepared.labels),
        **(overrides or {}),
    )


def pretrain_member(
    config: ModelConfig,
    prepared: Prepared,
    train_config: TrainConfig,
    *,
    cache: str | Path | None = None,
    echo: bool = True,
) -> dict[str, Any]:
    """Contrastive pre-training of an embedding member on every train pair (no labels).

    With `cache`, a file written by an earlier call with the same data version, model
    config and pre-training settings is read instead (members trained at several label
    fractions share one pre-training).

    Returns:
        {"state": state dict, "best_epoch", "epochs", "seconds", "cpu_seconds", "history",
        "retrieval_val"}.
    """
    import torch

    from avfuse.models.contrastive import pretrain

    key = {
        "data_version": prepared.data_version,
        "config": config.to_dict(),
        "pretrain_epochs": train_config.pretrain_epochs,
        "pretrain_lr": train_config.pretrain_lr,
        "batch_size": train_config.batch_size,
        "seed": train_config.seed,
        "augment": asdict(train_config.augment),
    }
    path = Path(cache) if cache is not None else None
    if path is not None and path.exists():
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if blob.get("key") == key:
            return blob["result"]
    torch.manual_seed(train_config.seed)
    model = build_model(config)
    r = pretrain(model, prepared.splits["train"], prepared.splits["val"], train_config, echo=echo)
    result = {
        "state": r.state,
        "best_epoch": r.best_epoch,
        "epochs": len(r.history),
        "seconds": round(r.seconds, 1),
        "cpu_seconds": round(r.cpu_seconds, 1),
        "history": r.history,
    }
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"key": key, "result": result}, path)
    return result


def run_training(
    name: str,
    *,
    out_dir: str | Path,
    train_config: TrainConfig = TrainConfig(),  # noqa: B008 - frozen dataclass
    prepared: Prepared | None = None,
    data_config: Any = None,
    model_overrides: dict[str, Any] | None = None,
    progress: bool = True,
    echo: bool | None = None,
    pretrain_cache: str | Path | None = None,
) -> dict[str, Any]:
    """Train zoo member `name`, evaluate it and write checkpoint.pt + metrics.json.

    Only `train_config.label_fraction` of the train labels are used; an embedding member
    (`EMBEDDING`) is first pre-trained contrastively on every train pair when
    `train_config.pretrain_epochs` > 0 (cached in `pretrain_cache` when given), and its
    metrics get the test split's cross-modal retrieval.

    Returns:
        the metrics dict written to metrics.json.
    """
    prepared = prepared or prepare(data_config, progress=progress)
    config = model_config_for(name, prepared, model_overrides)
    embedding = name in EMBEDDING
    pre = None
    if embedding and train_config.pretrain_epochs > 0:
        echo_pre = progress if echo is None else echo
        pre = pretrain_member(config, prepared, train_config, cache=pretrain_cache, echo=echo_pre)
    labelled = labelled_subset(
        prepared.splits["train"], train_config.label_fraction, train_config.seed
    )
    result: TrainResult = train_model(
        config,
        labelled,
        prepared.splits["val"],
        train_config,
        progress=progress,
        echo=echo,
        init_state=pre["state"] if pre is not None else None,
    )
    tests = test_metrics(result.model, config, prepared)
    extra: dict[str, Any] = {}
    if embedding:
        from avfuse.models.contrastive import retrieval_report

        extra["retrieval"] = retrieval_report(result.model, prepared.splits["test"])
    if pre is not None:
        extra["pretrain"] = {k: v for k, v in pre.items() if k != "state"}
    metrics = {
        "model": name,
        "fusion": config.fusion,
        "test": tests,
        "val": {k: v for k, v in result.history[result.best_epoch - 1].items() if k != "epoch"},
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "train_seconds": round(result.seconds, 1),
        "train_cpu_seconds": round(result.cpu_seconds, 1),
        "parameters": count_parameters(result.model),
        "train_samples": len(prepared.splits["train"]),
        "labelled_samples": len(labelled),
        "label_fraction": train_config.label_fraction,
        **extra,
        "data_version": prepared.data_version,
        "seed": train_config.seed,
        "train_config": asdict(train_config),
        "history": result.history,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_dict = asdict(train_config)
    save_checkpoint(
        out / CHECKPOINT_NAME,
        model=result.model,
        config=config,
        audio=prepared.audio_params,
        video=prepared.video_params,
        labels=prepared.labels,
        metrics={"test": tests, "best_epoch": result.best_epoch, **_brief(extra)},
        data_version=prepared.data_version,
        data_config=prepared.data_config,
        train=train_dict,
    )
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def _brief(extra: dict[str, Any]) -> dict[str, Any]:
    """What of the extra metrics goes into the checkpoint (and so the manifest)."""
    out: dict[str, Any] = {}
    if "retrieval" in extra:
        out["retrieval"] = extra["retrieval"]
    if "pretrain" in extra:
        out["pretrain"] = {k: extra["pretrain"][k] for k in ("epochs", "best_epoch", "seconds")}
    return out
