"""Soak: the real pipeline for half an hour, in real time, with faults on a schedule.

    .venv/bin/python benchmarks/soak.py [--seconds 1800] [--fault-every 120]

An edge box runs for months unattended: what grows a little per hour or per fault is
what kills it. This runs three streams (the demo scene looped live, the demo scene as
an mp4 file played in real time, another demo scene streamed by a real ffmpeg over UDP
on 127.0.0.1) through the bundled model on ONNX Runtime, into a rotating JSONL file,
a webhook (a real HTTP server on 127.0.0.1) and a callback sink, and every
`--fault-every` seconds injects the next fault in turn:

    stream_kill     the UDP sender is killed, and restarted after --outage seconds
    webhook_stall   the webhook endpoint stops answering for --stall seconds
    slow_sink       the callback sink blocks the pipeline's thread for 1 s, once
    backend_error   one inference raises BackendError

It samples the process's RSS, open fds, threads and CPU time every --sample-every
seconds, and end-to-end latency and frames per stream from the pipeline's stats, and
judges (avfuse.bench.soak): RSS growth after the warm-up (goal < 5 MB), fds and threads
flat, p99 of the last third within 20 % of the first (outside faults), frames lost
only to faults, every fault recovered. Progress goes to stderr every 30 s.

Writes benchmarks/results/soak.json (commit, the exact command, machine, versions, the
time series, every fault, the verdicts) and soak.png beside it (when matplotlib is
installed). Exit status 1 when a verdict fails. `--sabotage KIND` adds a deliberate
defect per fault (an fd or a thread left open, 2 MiB kept, a slower backend, the
sender never restarted) to check that the matching verdict fails.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from avfuse.bench.env import machine, versions
from avfuse.bench.soak import SoakGoals
from avfuse.bench.soak_faults import FAULT_KINDS
from avfuse.bench.soak_run import SABOTAGE, SoakConfig, run_soak
from avfuse.provenance import git_commit

RESULTS = Path(__file__).resolve().parent / "results"


def _verdict_lines(result: dict[str, Any]) -> list[str]:
    v = result["verdicts"]
    word = {True: "pass", False: "FAIL", None: "n/a "}
    rss, fds, th, p99, fr, fa = (v[k] for k in ("rss", "fds", "threads", "p99", "frames", "faults"))
    lines = [
        f"{word[rss['pass']]}  rss       growth {rss.get('growth_mb')} MB after the warm-up "
        f"(goal < {rss.get('goal_mb')}), slope {rss.get('slope_mb_per_h')} MB/h",
        f"{word[fds['pass']]}  fds       {fds.get('baseline_fds')} -> {fds.get('end_fds')} "
        f"(at most {fds.get('max_during_faults')} during faults)",
        f"{word[th['pass']]}  threads   {th.get('baseline_os')} -> {th.get('end_os')} kernel, "
        f"{th.get('baseline_py')} -> {th.get('end_py')} Python",
        f"{word[p99['pass']]}  p99       {(p99.get('first') or {}).get('p99_ms')} -> "
        f"{(p99.get('last') or {}).get('p99_ms')} ms, ratio {p99.get('ratio')} "
        f"(goal <= {p99.get('goal_ratio')})",
    ]
    for name, s in fr["streams"].items():
        bad = [
            f"{f['kind']} lost {f['lost']} > {f['budget']}" for f in s["faults"] if not f["pass"]
        ]
        lines.append(
            f"{word[s['pass']]}  frames    {name}: {s['loss_fraction_outside_faults']} lost "
            f"outside faults" + (f"; {', '.join(bad)}" if bad else "")
        )
    lines.append(
        f"{word[fa['pass']]}  faults    {fa['recovered']}/{fa['injected']} recovered "
        f"({fa.get('skipped', 0)} skipped)"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run the soak and write its result; 1 when a verdict fails."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=1800.0, help="length of the run")
    p.add_argument("--fault-every", type=float, default=120.0, help="seconds between faults")
    p.add_argument("--warmup", type=float, default=None, help="not judged (default: run/6, <=120)")
    p.add_argument("--sample-every", type=float, default=2.0, help="sampling period, seconds")
    p.add_argument("--faults", default=",".join(FAULT_KINDS), help="kinds, in turn")
    p.add_argument("--outage", type=float, default=4.0, help="seconds the sender stays dead")
    p.add_argument("--stall", type=float, default=6.0, help="seconds the webhook does not answer")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads")
    p.add_argument("--path", choices=("session", "pipeline"), default="session",
                   help="avfuse.api.start (as avfuse run) or the Pipeline alone")  # fmt: skip
    p.add_argument("--sabotage", choices=SABOTAGE, default=None, help="check the checks")
    p.add_argument("--rss-goal-mb", type=float, default=5.0)
    p.add_argument("--p99-ratio", type=float, default=1.2)
    p.add_argument("--loss-goal", type=float, default=0.01, help="share of frames, outside faults")
    p.add_argument("--out", type=Path, default=RESULTS / "soak.json")
    p.add_argument("--no-plot", action="store_true")
    args = p.parse_args(argv)
    cfg = SoakConfig(
        seconds=args.seconds,
        fault_every_s=args.fault_every,
        warmup_s=args.warmup,
        sample_every_s=args.sample_every,
        faults=tuple(k for k in args.faults.split(",") if k),
        outage_s=args.outage,
        stall_s=args.stall,
        threads=args.threads,
        path=args.path,
        sabotage=args.sabotage,
        goals=SoakGoals(
            rss_growth_mb=args.rss_goal_mb, p99_ratio=args.p99_ratio, loss_fraction=args.loss_goal
        ),
    )
    started = dt.datetime.now(dt.timezone.utc)
    m = machine()
    commit = git_commit()  # the code that runs: read before, not after, half an hour of it
    result = run_soak(cfg)
    record = {
        "commit": commit,
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "started_utc": started.isoformat(timespec="seconds"),
        "finished_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": m,
        "load_avg_end": list(os.getloadavg()),
        "versions": versions(),
        **result,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out}")
    if not args.no_plot:
        try:
            from avfuse.bench.plots import soak_timeline

            print(f"wrote {soak_timeline(record, args.out.with_suffix('.png'))}")
        except ImportError as e:
            print(f"no plot: {e}")
    for line in _verdict_lines(result):
        print(line)
    if result["run_error"]:
        print(f"run error: {result['run_error']}")
    return 0 if result["verdicts"]["pass"] and not result["run_error"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
