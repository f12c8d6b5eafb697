"""`avfuse train --pretraining`: does contrastive pre-training help, at all and at few labels?

Trains late fusion with and without contrastive pre-training (the zoo member ``embed``:
late fusion whose encoders are first pre-trained with InfoNCE on every train pair, then
trained on the labels with the InfoNCE term kept) at 100 % and 10 % of the train labels,
plus two ablations at 10 % (InfoNCE during supervised training only; pre-training only).
Writes the rows and the test split's cross-modal retrieval into accuracy.json (keys
``pretraining`` and ``retrieval``, the zoo's own keys left as they are) and two README
tables. The figures are reported whichever way they come out.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from avfuse.models.experiment import Prepared, prepare, run_training
from avfuse.models.report import _COLUMNS, machine_info
from avfuse.models.train import TrainConfig

PRETRAINING_START = "<!-- pretraining-table:start -->"
PRETRAINING_END = "<!-- pretraining-table:end -->"
RETRIEVAL_START = "<!-- retrieval-table:start -->"
RETRIEVAL_END = "<!-- retrieval-table:end -->"
#: epochs and patience of the runs at fewer labels (10 % of the labels is 1/10 the steps)
FEW_LABEL_EPOCHS = 30
FEW_LABEL_PATIENCE = 10


@dataclass(frozen=True, kw_only=True)
class Variant:
    """One row of the study.

    Attributes:
        key: the row's name in the table and in accuracy.json.
        model: the zoo member trained.
        fraction: share of the train labels used.
        pretrain: contrastive pre-training (embed only).
        contrastive: keep the InfoNCE term during supervised training (embed only).
    """

    key: str
    model: str
    fraction: float
    pretrain: bool = False
    contrastive: bool = False

    @property
    def folder(self) -> str:
        """Its run folder's name."""
        return self.key.replace("%", "").replace(" ", "-").replace("(", "").replace(")", "")


VARIANTS = (
    Variant(key="late@100%", model="late", fraction=1.0),
    Variant(key="late+contrastive@100%", model="embed", fraction=1.0, pretrain=True,
            contrastive=True),
    Variant(key="late@10%", model="late", fraction=0.1),
    Variant(key="late+contrastive@10%", model="embed", fraction=0.1, pretrain=True,
            contrastive=True),
    Variant(key="late+infonce-only@10%", model="embed", fraction=0.1, contrastive=True),
    Variant(key="late+pretrain-only@10%", model="embed", fraction=0.1, pretrain=True),
)  # fmt: skip
#: the rows without the two ablations (`avfuse train --pretraining --no-ablations`)
MAIN_VARIANTS = VARIANTS[:4]


def variant_config(
    v: Variant, base: TrainConfig, few_label_epochs: int = FEW_LABEL_EPOCHS
) -> TrainConfig:
    """The TrainConfig of a row: `base` at 100 % of the labels; at fewer labels
    `few_label_epochs` and `FEW_LABEL_PATIENCE` (the same for every row at that share:
    an epoch over 10 % of the labels is a tenth of the steps)."""
    cfg = replace(
        base,
        label_fraction=v.fraction,
        pretrain_epochs=base.pretrain_epochs if v.pretrain else 0,
        contrastive_weight=base.contrastive_weight if v.contrastive else 0.0,
    )
    if v.fraction < 1.0:
        cfg = replace(cfg, epochs=few_label_epochs, patience=FEW_LABEL_PATIENCE)
    return cfg


def pretraining_study(
    *,
    out_dir: str | Path,
    results: str | Path,
    readme: str | Path | None,
    train_config: TrainConfig = TrainConfig(),  # noqa: B008 - frozen dataclass
    data_config: Any = None,
    variants: tuple[Variant, ...] = VARIANTS,
    prepared: Prepared | None = None,
    reuse: bool = False,
    progress: bool = True,
    few_label_epochs: int = FEW_LABEL_EPOCHS,
    command: str | None = None,
) -> dict[str, Any]:
    """Train every variant (one shared pre-training), merge the figures into `results`.

    The embedding model at 100 % of the labels is trained first (the conflict benchmark
    and the bundled embedding model need it soonest); the rows keep `variants`' order.
    With `reuse`, a variant whose folder holds metrics.json for the same data version and
    settings is read instead of retrained.
    """
    t0 = time.time()
    prepared = prepared or prepare(data_config, progress=progress)
    out = Path(out_dir)
    done_rows: dict[str, dict[str, Any]] = {}
    for v in sorted(variants, key=lambda v: v.model != "embed" or v.fraction < 1.0):
        cfg = variant_config(v, train_config, few_label_epochs)
        folder = out / v.folder
        done = _finished(folder, prepared.data_version, cfg) if reuse else None
        m = done or run_training(
            v.model,
            out_dir=folder,
            train_config=cfg,
            prepared=prepared,
            progress=progress,
            echo=True,
            pretrain_cache=out / "pretrain.pt",
        )
        done_rows[v.key] = {k: x for k, x in m.items() if k != "history"}
        done_rows[v.key]["variant"] = asdict(v)
    rows = {v.key: done_rows[v.key] for v in variants}
    report = {
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "total_seconds": round(time.time() - t0, 1),
        "machine": machine_info(),
        "data_version": prepared.data_version,
        "test_samples": len(prepared.splits["test"]),
        "train_config": asdict(train_config),
        "few_label_epochs": few_label_epochs,
        "command": command,
        "rows": rows,
    }
    retrieval = {k: r["retrieval"] for k, r in rows.items() if "retrieval" in r}
    merged = json.loads(Path(results).read_text()) if Path(results).exists() else {}
    merged["pretraining"] = report
    merged["retrieval"] = retrieval
    Path(results).parent.mkdir(parents=True, exist_ok=True)
    Path(results).write_text(json.dumps(merged, indent=2) + "\n")
    if readme:
        from avfuse.models.report import update_block

        update_block(Path(readme), PRETRAINING_START, PRETRAINING_END, render_rows(report))
        update_block(Path(readme), RETRIEVAL_START, RETRIEVAL_END, render_retrieval(retrieval))
    return merged


def _finished(folder: Path, data_version: str, cfg: TrainConfig) -> dict[str, Any] | None:
    p = folder / "metrics.json"
    if not (p.exists() and (folder / "checkpoint.pt").exists()):
        return None
    m = json.loads(p.read_text())
    same = m.get("data_version") == data_version and m.get("train_config") == asdict(cfg)
    return m if same else None


def render_rows(report: dict[str, Any]) -> str:
    """Markdown rows in the accuracy table's layout (percent), with where they were made."""
    head = "| model | fusion | " + " | ".join(c[1] for c in _COLUMNS) + " | labels | train time |"
    lines = [head, "|" + " --- |" * (len(_COLUMNS) + 4)]
    for key, m in report["rows"].items():
        cells = [
            "-" if m["test"].get(k) is None else f"{100 * m['test'][k]:.1f}" for k, _ in _COLUMNS
        ]
        minutes = (m["train_seconds"] + m.get("pretrain", {}).get("seconds", 0.0)) / 60
        lines.append(
            f"| {key} | {m['fusion']} | " + " | ".join(cells)
            + f" | {m['labelled_samples']} | {minutes:.1f} min |"
        )  # fmt: skip
    mach = report["machine"]
    lines += [
        "",
        f"Test accuracy (%) on {report['test_samples']} held-out samples, data set "
        f"{report['data_version']}; `avfuse train --pretraining`, {report['finished']},",
        f"{mach['cpu_count']} shared CPU cores, {mach['torch_threads']} torch thread(s). "
        "Train time includes the contrastive pre-training (one run, shared by the rows that",
        "use it). labels: labelled train samples used; pre-training sees all train pairs.",
    ]
    return "\n".join(lines)


def render_retrieval(retrieval: dict[str, Any]) -> str:
    """Markdown table (percent) of audio -> image and image -> audio retrieval."""
    lines = [
        "| model | audio->image top-1 | audio->image R@5 | image->audio top-1 "
        "| image->audio R@5 | chance top-1 / R@5 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    n = None
    for key, r in retrieval.items():
        a, i, c = r["audio_to_image"], r["image_to_audio"], r["chance"]
        n = r["candidates"]
        lines.append(
            f"| {key} | {100 * a['top1']:.1f} | {100 * a['recall@5']:.1f} | "
            f"{100 * i['top1']:.1f} | {100 * i['recall@5']:.1f} | "
            f"{100 * c['top1']:.1f} / {100 * c['recall@5']:.1f} |"
        )
    lines += [
        "",
        f"Queries: each test sample's speech (audio->image) or image (image->audio); gallery: "
        f"the other modality of every test sample ({n} candidates, one per sample), ranked",
        "by cosine similarity in the shared embedding. A retrieved item is right when it has "
        "the query's digit (an image and its speech share nothing else in AV-digits).",
    ]
    return "\n".join(lines)


__all__ = [
    "MAIN_VARIANTS",
    "VARIANTS",
    "Variant",
    "pretraining_study",
    "render_retrieval",
    "render_rows",
]
