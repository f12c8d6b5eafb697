"""CPU time of the A/V sync monitor per frame, against pre-processing and inference.

    .venv/bin/python benchmarks/sync_cost.py [--seconds 60] [--repeats 5] [--baseline FILE]

One stream at 30 fps with the bundled model's shapes: per frame the monitor gets
`push_video` (a pre-processed (C, H, W) image), `push_audio` (the 97-column energy
window of the frame, 3-4 columns new) and one `poll`, as the pipeline calls them. The
content is a clapperboard (a flash and a sound once a second), so the monitor finds
onsets and makes its estimates; their cost is spread over the frames. In the same run
and process: the model's image pre-processing kernel on a 320x240 bgr24 frame and one
ONNX Runtime inference (batch 1, one thread). All figures are CPU time of this one
thread (`time.thread_time_ns`), median over the repeats.

`--baseline FILE` also measures another implementation of the monitor (a copy of an
earlier `avfuse/engine/sync.py`), with `--baseline-polls` polls per frame (the pipeline
used to poll on every loop iteration). Writes benchmarks/results/sync_cost.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from avfuse.assets import default_model_path
from avfuse.backends import create_backend
from avfuse.bench.env import machine, versions
from avfuse.engine.sync import SyncMonitor
from avfuse.kernels import image_kernel
from avfuse.manifest import Manifest, load_manifest

RESULTS = Path(__file__).resolve().parent / "results"
FPS = 30.0


def _content(m: Manifest, seconds: float) -> dict[str, Any]:
    """Frames, times and energy windows of a clapperboard scene, all made beforehand."""
    a, v = m.audio, m.video
    assert a is not None and v is not None  # main() checked
    hop = a.hop_length / a.sample_rate
    shape = (v.channels, v.height, v.width)
    dark = np.full(shape, -2.0, np.float32)  # what black becomes after normalisation
    bright = np.full(shape, 2.0, np.float32)
    n_frames = int(seconds * FPS)
    n_cols = int(seconds / hop) + a.frames + 2
    t_col = np.arange(n_cols) * hop
    energy = (-60.0 + np.random.default_rng(0).standard_normal(n_cols)).astype(np.float32)
    energy[(t_col % 1.0) < 0.1] = -20.0  # 100 ms of sound from each flash on
    frames, times, windows, ends = [], [], [], []
    for k in range(n_frames):
        t = 1.0 + k / FPS  # from 1 s on, so every frame has a full audio window
        last = int(t / hop + 1e-9)
        frames.append(bright if (t % 1.0) < 2 / FPS else dark)
        times.append(t)
        windows.append(energy[last - a.frames + 1 : last + 1])
        ends.append(float(t_col[last]))
    return {
        "shape": shape,
        "hop": hop,
        "scale": float(np.mean(v.std)),
        "frames": frames,
        "times": times,
        "windows": windows,
        "ends": ends,
    }


def _monitor_ns(cls: type, c: dict[str, Any], polls: int) -> tuple[float, int]:
    """CPU ns per frame of one pass over the content; and the warnings it gave."""
    mon = cls(
        configured_offset_ms=0.0, hop_s=c["hop"], image_shape=c["shape"], video_scale=c["scale"]
    )
    frames, times, windows, ends = c["frames"], c["times"], c["windows"], c["ends"]
    warnings = 0
    t0 = time.thread_time_ns()
    for k in range(len(frames)):
        mon.push_video(times[k], frames[k])
        mon.push_audio(ends[k], windows[k])
        for _ in range(polls):
            warnings += len(mon.poll())
    return (time.thread_time_ns() - t0) / len(frames), warnings


def _per_call_ns(fn: Any, n: int) -> float:
    t0 = time.thread_time_ns()
    for _ in range(n):
        fn()
    return (time.thread_time_ns() - t0) / n


def _load_class(path: str) -> type:
    spec = importlib.util.spec_from_file_location("sync_baseline", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}: give a copy of avfuse/engine/sync.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while it loads
    spec.loader.exec_module(mod)
    return mod.SyncMonitor


def main(argv: list[str] | None = None) -> int:
    """Measure, write the JSON, print the figures."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="model folder (default: the bundled model)")
    p.add_argument("--seconds", type=float, default=60.0, help="content length per pass")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--baseline", default=None, help="another sync.py to measure as well")
    p.add_argument("--baseline-polls", type=int, default=1, help="its polls per frame")
    p.add_argument("--out", default=str(RESULTS / "sync_cost.json"))
    args = p.parse_args(argv)
    m = load_manifest(args.model or default_model_path())
    if m.audio is None or m.video is None:
        raise SystemExit(f"{m.name} is not an audio + video model: the monitor needs both")
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    c = _content(m, args.seconds)
    n = len(c["frames"])

    mon = [_monitor_ns(SyncMonitor, c, 1) for _ in range(args.repeats)]
    base = None
    if args.baseline:
        cls = _load_class(args.baseline)
        base = [_monitor_ns(cls, c, args.baseline_polls) for _ in range(args.repeats)]

    img = image_kernel(m.video)
    img.warmup()
    frame = np.random.default_rng(1).integers(0, 256, (240, 320, 3), np.uint8)
    out = np.empty(img.out_shape, np.float32)
    pre = [_per_call_ns(lambda: img(frame, "bgr24", out), n) for _ in range(args.repeats)]

    feeds = {s.name: np.zeros((1, *s.shape[1:]), np.float32) for s in m.inputs}
    with create_backend("ort", threads=1).load(m) as be:
        for _ in range(20):
            be.infer(feeds)
        inf = [_per_call_ns(lambda: be.infer(feeds), min(n, 2000)) for _ in range(args.repeats)]

    mon_us = float(np.median([x[0] for x in mon])) / 1e3
    pre_us, inf_us = float(np.median(pre)) / 1e3, float(np.median(inf)) / 1e3
    record: dict[str, Any] = {
        "format": "avfuse-sync-cost",
        "started_utc": started,
        "machine": machine(),
        "versions": versions(),
        "model": {"name": m.name, "path": str(m.model_path), "sha256": m.sha256},
        "settings": {
            "fps": FPS,
            "seconds": args.seconds,
            "frames_per_pass": n,
            "repeats": args.repeats,
            "image_shape": list(c["shape"]),
            "audio_window_columns": len(c["windows"][0]),
            "image_kernel": img.name,
            "backend": "ort t1 batch 1",
            "clock": "time.thread_time_ns (CPU time of the measuring thread)",
        },
        "us_per_frame": {
            "monitor": round(mon_us, 3),
            "image_preprocess": round(pre_us, 3),
            "inference": round(inf_us, 3),
        },
        "monitor_warnings_per_pass": mon[0][1],
        "ratio_monitor_to_preprocess_plus_inference": round(mon_us / (pre_us + inf_us), 5),
    }
    if base is not None:
        base_us = float(np.median([x[0] for x in base])) / 1e3
        record["baseline"] = {
            "file": args.baseline,
            "polls_per_frame": args.baseline_polls,
            "us_per_frame": round(base_us, 3),
            "ratio_to_preprocess_plus_inference": round(base_us / (pre_us + inf_us), 5),
            "warnings_per_pass": base[0][1],
        }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(
        f"per frame: monitor {mon_us:.2f} us, image pre-processing ({img.name}) {pre_us:.2f} us, "
        f"inference {inf_us:.2f} us; monitor / (pre + inference) = "
        f"{record['ratio_monitor_to_preprocess_plus_inference']:.4f}"
    )
    if base is not None:
        b = record["baseline"]
        print(
            f"baseline {args.baseline} ({args.baseline_polls} polls/frame): "
            f"{b['us_per_frame']:.2f} us per frame, ratio {b['ratio_to_preprocess_plus_inference']}"
        )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
