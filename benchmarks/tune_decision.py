"""Choose a model's decision settings on validation scenes from allowed sources only.

    .venv/bin/python benchmarks/tune_decision.py [--model DIR] [--scenes 24] [--write DIR]

Records the model's decisions once on two sets of validation scenes
(`avfuse.data.valscenes`: espeak-ng val voices, val image sources; plain and "hard",
where voice and cards are shifted away from the training ones at once), replays a grid
of post-processing settings over them (`avfuse.bench.traces`) and picks, among the
settings with at most `MAX_FALSE_PER_MIN` false events per minute on each set, the one
with the highest recall on the hard set (then the plain set, then fewer false events).
The test-only scenes (flite, festival, MNIST) are never read here. Writes
benchmarks/results/decision_tuning.json; ``--write DIR`` copies the model folder to DIR
with the chosen settings in its manifest's ``decision`` section.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import shutil
import sys
import time
from pathlib import Path

from avfuse.api import load_backend
from avfuse.assets import default_model_path
from avfuse.bench.env import machine, versions
from avfuse.bench.traces import decision_config, record_traces, replay_summary
from avfuse.data.valscenes import validation_scenes
from avfuse.engine.postprocess import PostprocessConfig

RESULTS = Path(__file__).resolve().parent / "results"
#: a third of the gate's budget (1 / min) on scenes nearer training than the test-only ones
MAX_FALSE_PER_MIN = 0.3
GRID = {
    "on": (0.45, 0.5, 0.55, 0.6),
    "off": (0.3, 0.4),
    "min_duration_s": (0.2, 0.3, 0.4),
    "ema_alpha": (0.4, 0.6),
}


def _grid() -> list[PostprocessConfig]:
    out = []
    for on, off, md, a in itertools.product(*GRID.values()):
        if off <= on:
            out.append(
                PostprocessConfig(
                    on_threshold=on, off_threshold=off, min_duration_s=md, ema_alpha=a
                )
            )
    return out


def _key(c: PostprocessConfig) -> dict[str, float]:
    return {
        "on": c.on_threshold,
        "off": c.off_threshold,
        "min_duration_ms": round(c.min_duration_s * 1000),
        "ema_alpha": c.ema_alpha,
    }


def main(argv: list[str] | None = None) -> int:
    """Record, replay the grid, choose, write the JSON (and the tuned model folder)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="model folder or manifest (default: bundled)")
    p.add_argument("--scenes", type=int, default=24, help="scenes per validation set (24)")
    p.add_argument("--label", default="bundled", help="name of this run in the JSON")
    p.add_argument("--out", type=Path, default=RESULTS / "decision_tuning.json", help="JSON")
    p.add_argument("--write", type=Path, default=None, help="copy the model here, tuned")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    be = load_backend(args.model, threads=1)
    try:
        model = {"name": be.manifest.name, "sha256": be.manifest.sha256}
        current = decision_config(be.manifest.decision)
        sets = {}
        for name, hard in (("val", False), ("val_hard", True)):
            scenes = validation_scenes(n_scenes=args.scenes, hard=hard)
            sets[name] = record_traces(scenes, be)
            print(f"recorded {name}: {len(scenes)} scenes", flush=True)
    finally:
        be.close()
    rows = []
    for cfg in [current, *_grid()]:
        res = {n: replay_summary(tr, cfg) for n, tr in sets.items()}
        rows.append(
            {
                "settings": _key(cfg),
                **{
                    n: {
                        "recall": round(r["recall"], 4),
                        "false_per_min": round(r["false_per_min"], 3),
                        "n_recognised": r["n_recognised"],
                        "n_false": r["n_false"],
                    }
                    for n, r in res.items()
                },
            }
        )
    ok = [r for r in rows if all(r[n]["false_per_min"] <= MAX_FALSE_PER_MIN for n in sets)]
    best = max(
        ok or rows[:1],
        key=lambda r: (
            r["val_hard"]["recall"],
            r["val"]["recall"],
            -(r["val"]["n_false"] + r["val_hard"]["n_false"]),
        ),
    )
    print(f"current {rows[0]}\nchosen  {best}")
    doc = json.loads(args.out.read_text()) if args.out.exists() else {"runs": {}}
    doc["runs"][args.label] = {
        "model": model,
        "finished": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join(["benchmarks/tune_decision.py", *(argv or sys.argv[1:])]),
        "rule": f"max recall on val_hard, then val, with <= {MAX_FALSE_PER_MIN} false/min on each",
        "grid": {k: list(v) for k, v in GRID.items()},
        "scenes_per_set": args.scenes,
        "current": rows[0],
        "chosen": best,
        "rows": rows,
        "wall_s": round(time.perf_counter() - t0, 1),
        "machine": machine(),
        "versions": versions(),
    }
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    if args.write is not None:
        src = Path(args.model) if args.model else default_model_path().parent
        src = src.parent if src.suffix == ".json" else src
        shutil.copytree(src, args.write, dirs_exist_ok=True)
        man = json.loads((args.write / "manifest.json").read_text())
        s = best["settings"]
        man["decision"] = {
            "on": s["on"],
            "off": s["off"],
            "min_duration_ms": s["min_duration_ms"],
            "smoothing": "ema",
            "ema_alpha": s["ema_alpha"],
        }
        (args.write / "manifest.json").write_text(json.dumps(man, indent=2) + "\n")
        print(f"wrote {args.write}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
