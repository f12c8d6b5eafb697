"""Run the full benchmark set in one command and refresh benchmarks/results/summary.md.

    .venv/bin/python benchmarks/run_bench.py            # every scenario, default settings
    .venv/bin/python benchmarks/run_bench.py --quick    # shorter runs, fewer sweeps

It calls `avfuse bench --scenario all` (the same code an installed wheel runs), so
the JSON, the Markdown table and the plots land in benchmarks/results/, named
by machine and date, and summary.md plus the README plot are the latest run.
Extra arguments are passed to `avfuse bench` unchanged.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from avfuse.cli import main

RESULTS = Path(__file__).resolve().parent / "results"

FULL = [
    "--scenario",
    "all",
    "--repeats",
    "3",
    "--min-duration-ms",
    "2000",
    "--min-queries",
    "200",
    "--precisions",
    "fp32,int8",
    "--quant",
    "dynamic,static",
]
QUICK = [
    "--scenario",
    "all",
    "--repeats",
    "2",
    "--min-duration-ms",
    "500",
    "--min-queries",
    "64",  # LoadGen's early-stopping minimum for single-stream's p90 (multi-stream: 662)
    "--opt-levels",
    "disable,all",
    "--batch-sizes",
    "1,8,32",
    "--streams",
    "1,2,4,8,16",
    "--e2e-seconds",
    "5",
]


def run(argv: list[str]) -> int:
    """Run the set, then copy the newest plots to stable names the README can embed."""
    quick = "--quick" in argv
    rest = [a for a in argv if a != "--quick"]
    args = [
        "bench",
        *(QUICK if quick else FULL),
        "--out",
        str(RESULTS),
        "--summary",
        str(RESULTS / "summary.md"),
        *rest,
    ]
    code = main(args)
    if code == 0:
        for kind in ("cdf", "stages", "streams"):
            newest = sorted(RESULTS.glob(f"*-all-{kind}.png"), key=lambda p: p.stat().st_mtime)
            if newest:
                shutil.copyfile(newest[-1], RESULTS / f"latest-{kind}.png")
    return code


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
