"""The shared audio-visual embedding: symmetric InfoNCE, contrastive pre-training, retrieval.

Both encoders are projected into one L2-normalised space (`avfuse.models.fusion.EmbedFusion`)
and trained so that the image and the speech of the same sample land close together and
away from every other sample of the batch: a symmetric InfoNCE loss (CLIP's), audio ->
image and image -> audio cross-entropy over the batch's cosine similarities scaled by a
learned temperature. Pre-training needs no labels, only which image goes with which
speech, so it runs on every training pair even when only a share of them is labelled.

In AV-digits an image and its speech share only their digit (each is drawn on its own
given the label), so other samples of the same digit in a batch are negatives that are
really positives; the loss then clusters by digit, which is what the classifier and
the agreement check want. Retrieval is scored the same way: a retrieved item is right
when it shows or says the query's digit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from avfuse.errors import UsageError
from avfuse.models.augment import image_augment, spec_augment
from avfuse.models.features import Features

#: largest logit scale (1 / temperature), as CLIP clamps it
MAX_LOGIT_SCALE = 100.0
_EVAL_BATCH = 512


def info_nce(za: torch.Tensor, zv: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE over a batch of paired, L2-normalised embeddings.

    Row i of `za` and row i of `zv` are a positive pair; every other row is a negative.

    Args:
        za: [B, D] audio embeddings (unit norm).
        zv: [B, D] image embeddings (unit norm).
        logit_scale: scalar, 1 / temperature (clamped to `MAX_LOGIT_SCALE`).

    Returns:
        the mean of the audio -> image and image -> audio cross-entropies.
    """
    scale = logit_scale.clamp(max=MAX_LOGIT_SCALE)
    sim = scale * za @ zv.t()
    target = torch.arange(za.shape[0], device=za.device)
    ce = nn.functional.cross_entropy
    return 0.5 * (ce(sim, target) + ce(sim.t(), target))


@torch.inference_mode()
def embed(model: nn.Module, feats: Features) -> tuple[np.ndarray, np.ndarray]:
    """(audio, image) embeddings [N, D] float32 of every sample, in eval mode."""
    model.eval()
    za, zv = [], []
    for s in range(0, len(feats), _EVAL_BATCH):
        a = torch.from_numpy(feats.audio[s : s + _EVAL_BATCH])
        v = torch.from_numpy(feats.image[s : s + _EVAL_BATCH])
        ea, ev = model.embed(a, v)
        za.append(ea.numpy())
        zv.append(ev.numpy())
    return np.concatenate(za), np.concatenate(zv)


def retrieval(
    queries: np.ndarray,
    gallery: np.ndarray,
    query_labels: np.ndarray,
    gallery_labels: np.ndarray,
    *,
    ks: tuple[int, ...] = (1, 5),
) -> dict[str, float]:
    """Cross-modal retrieval by cosine similarity, scored by label.

    A query is a hit at k when any of its k most similar gallery items has its label.
    Ties are broken by gallery order (a stable sort), so the result is deterministic.

    Args:
        queries: [Q, D] unit-norm embeddings of one modality.
        gallery: [G, D] unit-norm embeddings of the other.
        query_labels / gallery_labels: class indices.
        ks: the cut-offs reported.

    Returns:
        {"top1": ..., "recall@5": ...} (fractions of queries); "top1" is recall at 1.
    """
    if len(gallery) < max(ks):
        raise UsageError(f"a gallery of {len(gallery)} items cannot rank the top {max(ks)}")
    sim = queries @ gallery.T
    order = np.argsort(-sim, axis=1, kind="stable")[:, : max(ks)]
    hit = gallery_labels[order] == query_labels[:, None]
    return {("top1" if k == 1 else f"recall@{k}"): float(hit[:, :k].any(1).mean()) for k in ks}


def retrieval_report(model: nn.Module, feats: Features) -> dict[str, Any]:
    """Audio -> image and image -> audio retrieval over a split (one item per sample).

    The gallery of each direction is the other modality of every sample of the split, so
    it has len(feats) candidates; the chance rates (a random ranking) are reported with it.
    """
    za, zv = embed(model, feats)
    y = feats.labels
    share = np.bincount(y, minlength=int(y.max()) + 1) / len(y)
    p = share[y]  # the chance that a random candidate has the query's label
    return {
        "gallery": "the other modality of every sample of the split, one per sample",
        "candidates": len(feats),
        "audio_to_image": retrieval(za, zv, y, y),
        "image_to_audio": retrieval(zv, za, y, y),
        "chance": {"top1": float(p.mean()), "recall@5": float((1 - (1 - p) ** 5).mean())},
    }


@dataclass
class PretrainResult:
    """What `pretrain` returns.

    Attributes:
        state: the best epoch's state dict (encoders and projections included).
        history: one dict per epoch (loss, val retrieval, seconds).
        best_epoch: 1-based epoch kept.
        seconds: wall time of the loop.
        cpu_seconds: CPU time of this process during the loop.
    """

    state: dict[str, torch.Tensor]
    history: list[dict[str, float]]
    best_epoch: int
    seconds: float
    cpu_seconds: float


def pretrain(
    model: nn.Module, train: Features, val: Features, config: Any, *, echo: bool = True
) -> PretrainResult:
    """Contrastive pre-training of `model`'s encoders and projections on every train pair.

    Labels are not read. Each batch gets SpecAugment and image jitter (no modality
    dropout: a pair needs both halves); the epoch kept is the one with the best mean
    top-1 retrieval on the validation split.

    Args:
        model: a module with `embed(audio, image)` and a `logit_scale` parameter.
        config: a `TrainConfig` (pretrain_epochs, pretrain_lr, batch_size, seed, augment).
        echo: print one summary line per epoch.
    """
    if not hasattr(model, "embed"):
        raise UsageError("contrastive pre-training needs a model with a shared embedding (embed)")
    torch.set_num_threads(config.threads)
    gen = torch.Generator().manual_seed(config.seed + 1)
    opt = torch.optim.AdamW(model.parameters(), lr=config.pretrain_lr, weight_decay=1e-2)
    batch = config.batch_size
    per_epoch = max(1, len(train) // batch)  # whole batches: a 3-item batch is a weak task
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt,
        max_lr=config.pretrain_lr,
        total_steps=config.pretrain_epochs * per_epoch,
        pct_start=0.15,
        final_div_factor=20,
    )
    audio_all, image_all = torch.from_numpy(train.audio), torch.from_numpy(train.image)
    history: list[dict[str, float]] = []
    best: tuple[float, int, dict[str, torch.Tensor]] = (-1.0, 0, {})
    t_start, cpu_start = time.perf_counter(), time.process_time()
    for epoch in range(1, config.pretrain_epochs + 1):
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(len(train), generator=gen)
        total = 0.0
        for k in range(per_epoch):
            idx = order[k * batch : (k + 1) * batch]
            a = spec_augment(audio_all[idx], config.augment, gen)
            v = image_augment(image_all[idx], config.augment, gen)
            za, zv = model.embed(a, v)
            loss = info_nce(za, zv, model.logit_scale.exp())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
        r = retrieval_report(model, val)
        score = 0.5 * (r["audio_to_image"]["top1"] + r["image_to_audio"]["top1"])
        row = {
            "epoch": epoch,
            "loss": total / per_epoch,
            "val_a2i_top1": r["audio_to_image"]["top1"],
            "val_i2a_top1": r["image_to_audio"]["top1"],
            "temperature": float(1.0 / model.logit_scale.detach().exp().clamp(max=MAX_LOGIT_SCALE)),
            "seconds": time.perf_counter() - t0,
        }
        history.append(row)
        if echo:
            print(
                f"pretrain epoch {epoch}: loss {row['loss']:.3f}, val a->i "
                f"{row['val_a2i_top1']:.3f}, i->a {row['val_i2a_top1']:.3f}",
                flush=True,
            )
        if score > best[0]:
            best = (score, epoch, {k: t.clone() for k, t in model.state_dict().items()})
    model.load_state_dict(best[2])
    return PretrainResult(
        state=best[2],
        history=history,
        best_epoch=best[1],
        seconds=time.perf_counter() - t_start,
        cpu_seconds=time.process_time() - cpu_start,
    )


__all__ = ["PretrainResult", "embed", "info_nce", "pretrain", "retrieval", "retrieval_report"]
