"""The training loop and evaluation of one zoo member on feature arrays.

AdamW with a cosine schedule, a seeded and deterministic data order, modality
dropout + SpecAugment + image jitter (and, when configured, the voice and writer
warps of `avfuse.models.warp`) on every batch, an auxiliary unimodal loss
for fused models (it keeps each encoder useful alone, which is what runs when
one modality is missing), and early stopping on validation accuracy.

For fused models the early-stopping score is the mean of the clean accuracy and
the mean of the two one-modality-missing accuracies, so the kept epoch is good
both with everything present and in degraded mode.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from avfuse.errors import UsageError
from avfuse.models.augment import AugmentConfig, image_augment, modality_dropout, spec_augment
from avfuse.models.contrastive import info_nce
from avfuse.models.features import Features
from avfuse.models.warp import audio_warp, image_warp
from avfuse.models.zoo import ModelConfig, build_model

CONDITIONS = ("clean", "audio_missing", "video_missing")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Optimisation settings.

    Attributes:
        epochs: maximum epochs.
        batch_size: samples per step.
        lr: peak AdamW learning rate (cosine decay to 5% over `epochs`).
        weight_decay: AdamW weight decay.
        patience: epochs without a better validation score before stopping.
        aux_weight: weight of the unimodal auxiliary losses (fused models).
        seed: seeds the weights, the data order and every augmentation draw.
        threads: torch intra-op threads.
        augment: augmentation strengths.
        label_fraction: share of the train split whose labels are used (a stratified,
            seeded subset); contrastive pre-training still sees every train pair.
        pretrain_epochs: contrastive pre-training epochs before the supervised ones, for
            members with a shared embedding (`avfuse.models.zoo.EMBEDDING`); 0: none.
        pretrain_lr: peak learning rate of the pre-training.
        contrastive_weight: weight of the InfoNCE term kept during supervised training of
            those members (it keeps the exported embedding aligned); 0: none.
    """

    epochs: int = 20
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-2
    patience: int = 5
    aux_weight: float = 0.5
    seed: int = 0
    threads: int = 2
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    label_fraction: float = 1.0
    pretrain_epochs: int = 30
    pretrain_lr: float = 3e-3
    contrastive_weight: float = 0.5

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1:
            raise UsageError("epochs, batch_size and patience must be >= 1")
        if self.lr <= 0 or self.pretrain_lr <= 0:
            raise UsageError("lr and pretrain_lr must be positive")
        if not 0.0 < self.label_fraction <= 1.0:
            raise UsageError(f"label_fraction must be in (0, 1]; got {self.label_fraction}")
        if self.pretrain_epochs < 0 or self.contrastive_weight < 0:
            raise UsageError("pretrain_epochs and contrastive_weight must be >= 0")


@dataclass
class TrainResult:
    """What `train_model` returns.

    Attributes:
        model: the module with the best epoch's weights, in eval mode.
        history: one dict per epoch (loss, val accuracies, score, seconds).
        best_epoch: 1-based epoch whose weights were kept.
        seconds: wall time of the whole loop.
        cpu_seconds: CPU time of this process during the loop (all threads); unlike wall
            time it barely changes when other jobs share the machine.
    """

    model: nn.Module
    history: list[dict[str, float]]
    best_epoch: int
    seconds: float
    cpu_seconds: float = 0.0


def labelled_subset(feats: Features, fraction: float, seed: int) -> Features:
    """A stratified, seeded `fraction` of `feats` (at least one sample of each label).

    The same (fraction, seed) picks the same samples whatever model is trained, so rows
    of a table trained "at 10 % of the labels" saw the same labels.
    """
    if fraction >= 1.0:
        return feats
    rng = np.random.default_rng([seed, 4242])
    keep = []
    for label in np.unique(feats.labels):
        idx = np.flatnonzero(feats.labels == label)
        n = max(1, int(round(fraction * len(idx))))
        keep.append(rng.choice(idx, n, replace=False))
    return feats.subset(np.sort(np.concatenate(keep)))


def condition_inputs(feats: Features, condition: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(audio, image, mask) for a test condition; a missing modality is zeroed and flagged."""
    if condition not in CONDITIONS:
        raise UsageError(f"unknown condition {condition!r}; use one of {CONDITIONS}")
    n = len(feats)
    mask = np.ones((n, 2), dtype=np.float32)
    audio, image = feats.audio, feats.image
    if condition == "audio_missing":
        audio, mask[:, 0] = np.zeros_like(audio), 0.0
    elif condition == "video_missing":
        image, mask[:, 1] = np.zeros_like(image), 0.0
    return audio, image, mask


def model_args(config: ModelConfig, audio: Any, image: Any, mask: Any) -> list[Any]:
    """The forward() arguments `config`'s model takes, in order."""
    by_name = {"audio": audio, "image": image, "mask": mask}
    return [by_name[n] for n in config.inputs]


@torch.inference_mode()
def predict(
    model: nn.Module, config: ModelConfig, feats: Features, condition: str = "clean"
) -> np.ndarray:
    """Logits (N, classes) float32 under a condition, in batches of 512."""
    model.eval()
    audio, image, mask = condition_inputs(feats, condition)
    outs = []
    for s in range(0, len(feats), 512):
        args = model_args(
            config,
            torch.from_numpy(audio[s : s + 512]),
            torch.from_numpy(image[s : s + 512]),
            torch.from_numpy(mask[s : s + 512]),
        )
        outs.append(model(*args).numpy())
    return np.concatenate(outs) if outs else np.zeros((0, config.n_classes), np.float32)


def accuracy(
    model: nn.Module, config: ModelConfig, feats: Features, condition: str = "clean"
) -> float | None:
    """Top-1 accuracy under a condition; None when the model's only modality is missing."""
    if (config.name, condition) in (("audio", "audio_missing"), ("video", "video_missing")):
        return None
    logits = predict(model, config, feats, condition)
    return float((logits.argmax(1) == feats.labels).mean())


def _score(model: nn.Module, config: ModelConfig, val: Features) -> dict[str, float]:
    accs = {c: accuracy(model, config, val, c) for c in CONDITIONS}
    out = {f"val_{c}": a for c, a in accs.items() if a is not None}
    if config.name in ("audio", "video"):
        out["score"] = accs["clean"]
    else:
        out["score"] = 0.5 * accs["clean"] + 0.25 * (accs["audio_missing"] + accs["video_missing"])
    return out


def train_model(
    model_config: ModelConfig,
    train: Features,
    val: Features,
    config: TrainConfig = TrainConfig(),  # noqa: B008 - frozen dataclass
    *,
    progress: bool = True,
    echo: bool | None = None,
    init_state: dict[str, torch.Tensor] | None = None,
) -> TrainResult:
    """Train one zoo member on normalised features; keeps the best validation epoch.

    Members with a shared embedding (`EmbedFusion`) also get `contrastive_weight` times
    the InfoNCE loss over the batch's pairs that have both modalities.

    Args:
        progress: tqdm bars per epoch.
        echo: print one summary line per epoch (default: same as `progress`).
        init_state: weights to start from (e.g. contrastive pre-training's), else a
            seeded random initialisation.
    """
    echo = progress if echo is None else echo
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    model = build_model(model_config)
    if init_state is not None:
        model.load_state_dict(init_state)
    joint = hasattr(model, "train_terms")
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps = config.epochs * max(1, -(-len(train) // config.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=config.lr, total_steps=steps, pct_start=0.15, final_div_factor=20
    )
    audio_all, image_all = torch.from_numpy(train.audio), torch.from_numpy(train.image)
    labels_all = torch.from_numpy(train.labels)
    fused = model_config.name not in ("audio", "video")
    ce = nn.CrossEntropyLoss()
    history: list[dict[str, float]] = []
    best = (-1.0, 0, None)
    t_start, cpu_start = time.perf_counter(), time.process_time()
    for epoch in range(1, config.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(len(train), generator=gen)
        batches = range(0, len(train), config.batch_size)
        bar = _bar(batches, progress, f"{model_config.name} epoch {epoch}/{config.epochs}")
        total, count = 0.0, 0
        for s in bar:
            idx = order[s : s + config.batch_size]
            a = spec_augment(audio_warp(audio_all[idx], config.augment, gen), config.augment, gen)
            v = image_augment(image_warp(image_all[idx], config.augment, gen), config.augment, gen)
            y = labels_all[idx]
            if fused:
                a, v, m = modality_dropout(a, v, config.augment, gen)
            else:
                m = torch.ones(len(idx), 2)
            if joint:  # one encoder pass gives every term
                logits, la, lv, za, zv = model.train_terms(a, v, m)
                loss = ce(logits, y)
            else:
                loss = ce(model(*model_args(model_config, a, v, m)), y)
                if fused and config.aux_weight > 0:
                    la, lv = model.unimodal_logits(a, v)
            if fused and config.aux_weight > 0:
                loss = loss + config.aux_weight * (
                    _masked_ce(la, y, m[:, 0]) + _masked_ce(lv, y, m[:, 1])
                )
            if joint and config.contrastive_weight > 0:
                both = (m[:, 0] * m[:, 1]) > 0
                if int(both.sum()) > 1:
                    loss = loss + config.contrastive_weight * info_nce(
                        za[both], zv[both], model.logit_scale.exp()
                    )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
            if progress and hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{total / count:.3f}")
        row = {"epoch": epoch, "loss": total / max(count, 1), **_score(model, model_config, val)}
        row["seconds"] = time.perf_counter() - t0
        history.append(row)
        if echo:
            shown = ", ".join(f"{k} {v:.3f}" for k, v in row.items() if k.startswith("val_"))
            print(f"{model_config.name} epoch {epoch}: loss {row['loss']:.3f}, {shown}", flush=True)
        if row["score"] > best[0]:
            best = (row["score"], epoch, {k: t.clone() for k, t in model.state_dict().items()})
        elif epoch - best[1] >= config.patience:
            break
    model.load_state_dict(best[2])
    model.eval()
    return TrainResult(
        model=model,
        history=history,
        best_epoch=best[1],
        seconds=time.perf_counter() - t_start,
        cpu_seconds=time.process_time() - cpu_start,
    )


def _masked_ce(logits: torch.Tensor, y: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    per = nn.functional.cross_entropy(logits, y, reduction="none")
    return (per * present).sum() / present.sum().clamp(min=1.0)


def _bar(it: range, enabled: bool, desc: str) -> Any:
    if not enabled:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, desc=desc, leave=False)
