"""The engine's own overhead at 30 fps with the default model, in one command.

    .venv/bin/python benchmarks/engine_overhead.py [--model DIR] [--seconds 20] [--repeats 3]

One live synthetic stream (camera + microphone, 30 fps, 20 ms audio blocks) runs
through the whole pipeline with ONNX Runtime on CPU. For every processed frame:

    end-to-end        capture timestamp -> decision (inference finished)
    inference         the backend call that frame was in
    algorithmic wait  capture -> end of the audio block holding the frame's time
                      (the audio window [t - 1 s, t] is not complete before; a
                      property of the source, not of the engine)
    overhead          end-to-end - inference - algorithmic wait: ingest, alignment,
                      scheduling, pre-processing, waking the loop

Target (streaming-runtime issue): overhead p99 < 2 ms (median over the runs). Writes
benchmarks/results/engine_overhead.json (machine, versions, settings, per-frame
summaries, the pipeline's own stage breakdown) and prints the verdict.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path

import numpy as np

from avfuse.assets import default_model_path
from avfuse.backends import create_backend
from avfuse.bench.e2e import run_streams
from avfuse.bench.env import machine, versions
from avfuse.manifest import load_manifest

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_MS = 2.0


def main(argv: list[str] | None = None) -> int:
    """Measure, write the JSON, print the verdict; exit 0 (met) or 1 (missed)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="model folder (default: the bundled model)")
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--seconds", type=float, default=20.0, help="length of each run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(RESULTS / "engine_overhead.json"))
    args = p.parse_args(argv)
    m = load_manifest(args.model or default_model_path())
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    runs = []
    with create_backend("ort", threads=args.threads).load(m) as be:
        for r in range(args.repeats):
            run = run_streams(
                be, streams=1, fps=args.fps, seconds=args.seconds, seed=r, per_frame=True
            )
            pf = run.get("per_frame", {})
            print(
                f"run {r + 1}/{args.repeats}: {pf.get('frames', 0)} frames, overhead p99 "
                f"{run.get('overhead_p99_ms', float('nan')):.3f} ms, end-to-end p99 "
                f"{run['latency_ms'].get('p99')} ms, inference p99 "
                f"{pf.get('inference_ms', {}).get('p99', float('nan')):.3f} ms"
            )
            runs.append(run)
    p99s = [r["overhead_p99_ms"] for r in runs if r.get("overhead_p99_ms") is not None]
    worst = max(p99s) if p99s else None
    record = {
        "format": "avfuse-engine-overhead",
        "started_utc": started,
        "machine": machine(),
        "versions": versions(),
        "model": {"name": m.name, "path": str(m.model_path), "sha256": m.sha256},
        "settings": {
            "fps": args.fps,
            "seconds": args.seconds,
            "repeats": args.repeats,
            "backend": f"ort t{args.threads} opt-all fp32",
            "streams": 1,
            "audio_block_ms": 20.0,
            "source": "synthetic (realtime)",
        },
        "target_overhead_p99_ms": TARGET_MS,
        "overhead_p99_ms": {
            "per_run": p99s,
            "median": float(np.median(p99s)) if p99s else None,
            "worst": worst,
        },
        # the verdict uses the median over the runs (one disturbed run is noise; the load
        # average is recorded); the worst run is kept beside it
        "met": bool(p99s) and float(np.median(p99s)) < TARGET_MS,
        "runs": runs,
    }
    record["load_avg_end"] = list(os.getloadavg())
    busy = max(record["machine"]["load_avg"][0], record["load_avg_end"][0])
    if busy > (record["machine"]["cores_usable"] or 1):
        print(
            f"note: load average {busy:.1f} exceeds the {record['machine']['cores_usable']} "
            "usable cores: other work shares the CPU and inflates the tail; re-run when quiet"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1, default=str) + "\n")
    verdict = "met" if record["met"] else "MISSED"
    med = record["overhead_p99_ms"]["median"]
    print(
        f"engine overhead p99: median {med} ms over {len(p99s)} runs (worst {worst} ms); "
        f"target < {TARGET_MS} ms: {verdict}; wrote {out}"
    )
    return 0 if record["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
