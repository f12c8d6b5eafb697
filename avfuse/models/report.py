"""`avfuse train --zoo`: train every zoo member, judge fusion, write accuracy.json + README table.

The judgement is the issue's: the best fused model must beat the best
unimodal one on the clean test split by `MIN_FUSION_GAIN`, and every fused
model with one modality missing must stay within `MAX_MISSING_GAP` of the
unimodal model of the modality it still has. The default (bundled) model is the
fused model with the best validation score; test numbers never pick it.
"""

from __future__ import annotations

import json
import os
import platform
import re
import time
from pathlib import Path
from typing import Any

from avfuse.models.experiment import Prepared, prepare, run_training
from avfuse.models.train import TrainConfig
from avfuse.models.zoo import FUSED, UNIMODAL, ZOO

MIN_FUSION_GAIN = 0.08
MAX_MISSING_GAP = 0.05
TABLE_START = "<!-- accuracy-table:start -->"
TABLE_END = "<!-- accuracy-table:end -->"
_COLUMNS = (("clean", "clean"), ("audio_missing", "audio missing"),
            ("video_missing", "video missing"), ("low_snr", "low SNR"))  # fmt: skip


def machine_info() -> dict[str, Any]:
    """Where the numbers were measured."""
    from avfuse.export.manifest_step import versions

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": _torch_threads(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "versions": versions(),
    }


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def judge(models: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The fusion checks over per-model test metrics (fractions, not percent)."""
    clean = {n: m["test"]["clean"] for n, m in models.items()}
    fused = [n for n in FUSED if n in models]
    uni = [n for n in UNIMODAL if n in models]
    out: dict[str, Any] = {}
    if fused and uni:
        best_f = max(fused, key=clean.__getitem__)
        best_u = max(uni, key=clean.__getitem__)
        gain = clean[best_f] - clean[best_u]
        out["fusion_gain"] = {
            "best_fused": best_f,
            "best_unimodal": best_u,
            "points": round(100 * gain, 2),
            "pass": gain >= MIN_FUSION_GAIN,
        }
    gaps: dict[str, Any] = {}
    for n in fused:
        t = models[n]["test"]
        for cond, uni_name in (("audio_missing", "video"), ("video_missing", "audio")):
            if uni_name in models:
                gap = clean[uni_name] - t[cond]
                gaps[f"{n}/{cond}"] = {
                    "vs": uni_name,
                    "points_below": round(100 * gap, 2),
                    "pass": gap <= MAX_MISSING_GAP,
                }
    out["missing_modality"] = gaps
    out["pass"] = bool(out.get("fusion_gain", {}).get("pass")) and all(
        g["pass"] for g in gaps.values()
    )
    return out


def render_table(report: dict[str, Any]) -> str:
    """Markdown table (percent) of the zoo's test accuracy, with where it was measured."""
    head = "| model | fusion | " + " | ".join(c[1] for c in _COLUMNS) + " | train time | params |"
    lines = [head, "|" + " --- |" * (len(_COLUMNS) + 4)]
    for name, m in report["models"].items():
        cells = [
            "-" if m["test"].get(k) is None else f"{100 * m['test'][k]:.1f}" for k, _ in _COLUMNS
        ]
        star = " (default)" if name == report.get("default_model") else ""
        lines.append(
            f"| {name}{star} | {m['fusion']} | "
            + " | ".join(cells)
            + f" | {m['train_seconds'] / 60:.1f} min | {m['parameters'] / 1000:.0f} k |"
        )
    mach = report["machine"]
    v = mach["versions"]
    threads = report.get("train_config", {}).get("threads", mach["torch_threads"])
    total = sum(m["train_seconds"] for m in report["models"].values()) / 60
    lines += [
        "",
        f"Test accuracy (%) on {report['test_samples']} held-out samples (voices and image",
        'sources never seen in training); low SNR: the `test_low_snr` split; "missing": that',
        f"modality zeroed and flagged in the mask. Data set {report['data_version']}; "
        f"{mach['cpu_count']} CPU cores",
        f"({mach['processor']}), {threads} torch thread(s) per model, torch {v['torch']};",
        f"`avfuse train --zoo`, {report['finished']}. Train time is wall time per model",
        f"({total:.0f} min in all) on a machine shared with other jobs.",
    ]
    return "\n".join(lines)


def update_block(readme: Path, start: str, end: str, text: str) -> bool:
    """Replace the region between the `start` and `end` markers; False when they are absent."""
    if not readme.exists():
        return False
    content = readme.read_text()
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if not pattern.search(content):
        return False
    block = f"{start}\n{text}\n{end}"
    readme.write_text(pattern.sub(lambda _: block, content, count=1))
    return True


def update_readme(readme: Path, table: str) -> bool:
    """Replace the region between the accuracy-table markers; False when they are absent."""
    return update_block(readme, TABLE_START, TABLE_END, table)


def train_zoo(
    *,
    out_dir: str | Path,
    results: str | Path,
    readme: str | Path | None,
    train_config: TrainConfig = TrainConfig(),  # noqa: B008 - frozen dataclass
    data_config: Any = None,
    names: tuple[str, ...] = tuple(ZOO),
    prepared: Prepared | None = None,
    reuse: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Train `names`, write `results` (accuracy.json) and the README table; return the report.

    With `reuse`, a member whose folder already holds metrics.json and checkpoint.pt for
    the same data version is read instead of retrained (resume a zoo, or collect members
    trained as separate `avfuse train --model NAME --out DIR/NAME` runs).
    """
    t0 = time.time()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    prepared = prepared or prepare(data_config, progress=progress)
    models: dict[str, dict[str, Any]] = {}
    for name in names:
        done = _finished(Path(out_dir) / name, prepared.data_version) if reuse else None
        if done is not None:
            models[name] = {k: v for k, v in done.items() if k != "history"}
            continue
        m = run_training(
            name,
            out_dir=Path(out_dir) / name,
            train_config=train_config,
            prepared=prepared,
            progress=progress,
        )
        models[name] = {k: v for k, v in m.items() if k != "history"}
    fused = [n for n in FUSED if n in models]
    default = max(fused, key=lambda n: models[n]["val"]["score"]) if fused else None
    report = {
        "started": started,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "total_seconds": round(time.time() - t0, 1),
        "machine": machine_info(),
        "data_version": prepared.data_version,
        "data_config": prepared.data_config,
        "train_config": _plain(train_config),
        "test_samples": len(prepared.splits["test"]),
        "models": models,
        "default_model": default,
        "checks": judge(models),
    }
    results = Path(results)
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(report, indent=2) + "\n")
    report["readme_updated"] = bool(readme) and update_readme(Path(readme), render_table(report))
    return report


def _finished(folder: Path, data_version: str) -> dict[str, Any] | None:
    metrics = folder / "metrics.json"
    if not (metrics.exists() and (folder / "checkpoint.pt").exists()):
        return None
    m = json.loads(metrics.read_text())
    return m if m.get("data_version") == data_version else None


def _plain(obj: Any) -> Any:
    from dataclasses import asdict

    return asdict(obj)
