"""Footprint of the lean runtime, measured from a wheel installed into a fresh venv.

    python benchmarks/footprint.py [--duration 12] [--repeats 3] [--keep DIR]

Builds the wheel (`pip wheel . --no-deps`), makes a venv in a temp folder and installs
the wheel with its runtime dependencies only (no extras, so no torch and no numba; pip
itself stays outside the venv, `pip --python`), then measures, each time from that venv:

    size        bytes of every installed distribution (its RECORD), biggest first, and
                `du` of site-packages
    demo        `avfuse demo --fast`: the bundled model on the scripted scene, scored
    cold start  process start to the first processed frame (the first `value` record of
                `avfuse run --source synthetic --realtime --values --sink jsonl:-`), with
                a warm cache: the first run is discarded (page cache, byte code, numba's
                cache where numba is installed); the import time of each top-level
                package (`python -X importtime`) names where it goes
    RSS         VmRSS of the run at 30 fps (`--source synthetic --realtime`, one stream),
                sampled from /proc every 50 ms over its steady state; the mapped files
                holding the most resident memory (/proc/PID/smaps) name the contributors
    CPU         share of one core over the same steady state (avfuse.bench.cpu: every
                thread, from /proc), with the busiest threads

Then it adds the `fast` extra (numba) to the same venv, fills numba's cache as
scripts/install.sh does (`python -m avfuse.kernels.warm`) and measures again, so the
JSON holds the lean runtime (numpy kernels) and the runtime with numba side by side.
The synthetic source stands in for a camera and a microphone (these machines have
neither): it delivers 320x240 frames at 30 fps and 20 ms audio blocks, as they would;
the installed set is what a camera (OpenCV) and a microphone (sounddevice) need.

Writes benchmarks/results/footprint.json and prints the table. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import footprint_probe as probe  # noqa: E402  (beside this script)

from avfuse.bench.env import machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
GOALS = {"size_mb": 400.0, "cold_start_s": 2.0, "rss_mb": 300.0, "cpu_share": 0.05}


def _run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=probe.CHILD_ENV, **kw)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:4]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def build_wheel(work: Path) -> Path:
    """The project's wheel, built without its dependencies from a copy of the files git
    tracks (a stale build/ folder in the checkout cannot leak into it); without build
    isolation when this interpreter has setuptools, which keeps it offline and fast."""
    files = _run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT).stdout.split()
    src = work / "src"
    for f in files:
        if (ROOT / f).is_file():
            (src / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, src / f)
    dist = work / "dist"
    cmd = [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "-q", "-w", str(dist)]
    try:
        import setuptools  # noqa: F401

        cmd.append("--no-build-isolation")
    except ImportError:
        pass
    _run(cmd, cwd=src, timeout=600)
    (wheel,) = dist.glob("avfuse-*.whl")
    return wheel


def make_venv(folder: Path, wheel: Path, extras: list[str]) -> Path:
    """A venv without pip holding the wheel, its runtime requirements and `extras`."""
    _run([sys.executable, "-m", "venv", "--without-pip", str(folder)], timeout=120)
    python = folder / "bin" / "python"
    install(python, [*probe.runtime_requirements(wheel), *extras])
    install(python, ["--no-deps", str(wheel)])
    return python


def install(python: Path, args: list[str]) -> None:
    """pip (this interpreter's) installs into the venv of `python`, quietly."""
    cmd = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", *args]
    _run(cmd, timeout=1200, cwd=probe.CHILD_CWD)


def measure(python: Path, *, label: str, duration: float, repeats: int) -> dict[str, Any]:
    """Every figure of one installed runtime."""
    site = probe.site_packages(python)
    sizes = probe.distribution_sizes(python)
    print(f"[{label}] {sizes['total_mb']:.1f} MB installed", flush=True)
    demo = probe.demo(python)
    print(f"[{label}] demo: {demo['score_line']}", flush=True)
    cold = probe.cold_start(python, repeats=repeats)
    print(f"[{label}] cold start {cold['median_s']:.2f} s", flush=True)
    live = probe.live_run(python, duration=duration)
    print(
        f"[{label}] 30 fps: RSS {live['rss_mb_median']:.0f} MB, "
        f"CPU {100 * live['cpu_share']:.1f} % of a core",
        flush=True,
    )
    return {
        "label": label,
        "site_packages": str(site),
        "installed": sizes,
        "kernels": probe.kernel_names(python),
        "imports_absent": probe.absent(python, ["torch", "numba", "av", "llvmlite"]),
        "demo": demo,
        "cold_start": cold,
        "live_30fps": live,
    }


def table(runs: list[dict[str, Any]]) -> str:
    """The Markdown table of both runtimes against the goals."""
    head = "| figure | goal | " + " | ".join(r["label"] for r in runs) + " |"
    lines = [head, "| --- | ---: |" + " ---: |" * len(runs)]

    def row(name: str, goal: str, cells: list[str]) -> None:
        lines.append(f"| {name} | {goal} | " + " | ".join(cells) + " |")

    row("installed size (MB)", "< 400", [f"{r['installed']['total_mb']:.0f}" for r in runs])
    row("biggest", "", [", ".join(f"{d['name']} {d['mb']:.0f}" for d in r["installed"]["dists"][:4])
                        for r in runs])  # fmt: skip
    row(
        "kernels (auto)", "", [f"{r['kernels']['log_mel']} / {r['kernels']['image']}" for r in runs]
    )
    row(
        "cold start to first frame (s)", "< 2", [f"{r['cold_start']['median_s']:.2f}" for r in runs]
    )
    row("RSS at 30 fps, steady (MB)", "< 300", [f"{r['live_30fps']['rss_mb_median']:.0f}"
                                              for r in runs])  # fmt: skip
    row("RSS peak (MB)", "", [f"{r['live_30fps']['rss_mb_peak']:.0f}" for r in runs])
    row("CPU at 30 fps (% of a core)", "< 5", [f"{100 * r['live_30fps']['cpu_share']:.1f}"
                                              for r in runs])  # fmt: skip
    for stage in ("preprocess", "inference"):
        row(f"  {stage}: ms per frame (p50), share", "", [
            f"{r['live_30fps']['stages'][stage]['p50_ms']:.2f}, "
            f"{100 * r['live_30fps']['stages'][stage]['share']:.1f} %" for r in runs])  # fmt: skip
    row("demo --fast", "10/10", [r["demo"]["score"] for r in runs])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Build, install, measure both runtimes, write the JSON; exit 0 when the lean one
    meets every goal, 1 otherwise."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=12.0, help="seconds of each 30 fps run")
    ap.add_argument("--repeats", type=int, default=3, help="timed cold starts (after one)")
    ap.add_argument("--keep", type=Path, default=None, help="build the venvs here and keep them")
    ap.add_argument("--out", type=Path, default=RESULTS / "footprint.json")
    args = ap.parse_args(argv)
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    host = machine()  # its load average is the one at the start
    with tempfile.TemporaryDirectory() as name:
        work = args.keep or Path(name)
        work.mkdir(parents=True, exist_ok=True)
        wheel = build_wheel(work)
        print(f"built {wheel.name} ({wheel.stat().st_size / 1e6:.1f} MB)", flush=True)
        python = make_venv(work / "venv", wheel, [])
        lean = measure(python, label="lean (numpy kernels)", duration=args.duration,
                       repeats=args.repeats)  # fmt: skip
        install(python, probe.extra_requirements(wheel, "fast"))
        warm = subprocess.run([str(python), "-m", "avfuse.kernels.warm"], capture_output=True,
                              text=True, timeout=600)  # fmt: skip
        fast = measure(python, label="lean + fast (numba)", duration=args.duration,
                       repeats=args.repeats)  # fmt: skip
        fast["numba_warm"] = {"returncode": warm.returncode, "stderr": warm.stderr[-500:]}
        wheel_mb = wheel.stat().st_size / 1e6
        requirements = probe.runtime_requirements(wheel)
    lean_ok = {
        "size": lean["installed"]["total_mb"] < GOALS["size_mb"],
        "cold_start": lean["cold_start"]["median_s"] < GOALS["cold_start_s"],
        "rss": lean["live_30fps"]["rss_mb_median"] < GOALS["rss_mb"],
        "cpu": lean["live_30fps"]["cpu_share"] < GOALS["cpu_share"],
        "demo": lean["demo"]["score"] == "10/10",
    }
    record = {
        "format": "avfuse-footprint",
        "started_utc": started,
        "finished_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": host,
        "load_avg_end": list(os.getloadavg()),
        "wheel": {"name": wheel.name, "mb": wheel_mb, "requires": requirements},
        "units": "MB = 10**6 bytes; sizes are the files each distribution's RECORD lists",
        "goals": GOALS,
        "lean_meets": lean_ok,
        "runs": [lean, fast],
        "note": "shared 2-core VM: timings move with the load (see machine.load_avg)",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(table(record["runs"]))
    print(f"lean runtime meets: {lean_ok}; wrote {args.out}")
    return 0 if all(lean_ok.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
