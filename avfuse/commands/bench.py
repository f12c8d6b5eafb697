"""`avfuse bench`: measure the model and the pipeline, side by side across backends.

A thin shell over `avfuse.bench`: parses the options into a `BenchConfig`, runs
it, writes the result JSON (+ Markdown table and plots) and prints the table;
`--compare A.json B.json` prints the ratio table instead and exits 1 when a
regression beyond noise is found.
"""

from __future__ import annotations

import argparse
import json
import sys

from avfuse.errors import UsageError


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `bench` sub-command."""
    p = sub.add_parser(
        "bench",
        help="benchmark backends and the pipeline (MLPerf LoadGen scenarios)",
        description="Run MLPerf LoadGen scenarios (single-stream, multi-stream, offline) on the "
        "model with every available backend side by side, and the end-to-end streaming "
        "scenario through the pipeline. Writes JSON (+ Markdown, PNG) under --out and prints "
        "the table. Absent backends (no GPU, package missing) are skipped with the reason.",
    )
    p.add_argument(
        "--scenario",
        default="single-stream",
        choices=["single-stream", "multi-stream", "offline", "end-to-end", "all"],
        help="single-stream (default): batch-1 latency; multi-stream: most live streams "
        "under --latency-bound-ms; offline: throughput; end-to-end: one live stream "
        "through the pipeline; all: every one",
    )
    p.add_argument("--model", default=None, help="model folder/manifest (default: bundled)")
    p.add_argument(
        "--backends",
        type=_names,
        default=("torch", "ort", "torch-cuda", "ort-cuda", "tensorrt"),
        help="comma list of torch, ort, torch-cuda, ort-cuda, tensorrt (default: all; "
        "absent ones are skipped with the reason)",
    )
    p.add_argument("--threads", type=_ints, default=(1, 2), help="thread counts (default 1,2)")
    p.add_argument(
        "--opt-levels",
        type=_names,
        default=("disable", "basic", "extended", "all"),
        help="ONNX Runtime graph optimisation levels swept",
    )
    p.add_argument(
        "--precisions",
        type=_names,
        default=("fp32", "int8"),
        help="fp32, int8 (quantised copy), fp16 (default fp32,int8)",
    )
    p.add_argument(
        "--quant",
        type=_names,
        default=("dynamic",),
        help="int8 methods: dynamic, static (calibrated on the data)",
    )
    p.add_argument(
        "--batch-sizes",
        type=_ints,
        default=(1, 2, 4, 8, 16, 32, 64),
        help="offline batch sizes swept",
    )
    p.add_argument(
        "--streams",
        type=_ints,
        default=(1, 2, 4, 8, 12, 16, 24, 32),
        help="stream counts tried, ascending (multi-stream)",
    )
    p.add_argument(
        "--latency-bound-ms",
        type=float,
        default=50.0,
        help="p99 end-to-end bound of the multi-stream search (default 50)",
    )
    p.add_argument("--fps", type=float, default=30.0, help="frame rate of each live stream")
    p.add_argument(
        "--min-duration-ms",
        type=int,
        default=1000,
        help="LoadGen minimum run length per measurement (default 1000)",
    )
    p.add_argument(
        "--min-queries",
        type=int,
        default=100,
        help="LoadGen minimum query count per measurement (default 100)",
    )
    p.add_argument(
        "--loadgen-rules",
        action="store_true",
        help="use LoadGen's own minimum duration and query count (600 s, 1024 queries for "
        "single-stream: long) instead of --min-duration-ms/--min-queries",
    )
    p.add_argument("--warmup", type=int, default=20, help="warm-up queries (reported apart)")
    p.add_argument("--repeats", type=int, default=3, help="repeats per measurement (noise)")
    p.add_argument(
        "--e2e-seconds",
        type=float,
        default=10.0,
        help="length of the single-stream end-to-end run (searches use <= 4 s)",
    )
    p.add_argument(
        "--source",
        default="synthetic",
        help="end-to-end streams play this: synthetic (default) or a media file/URL",
    )
    p.add_argument("--no-accuracy", action="store_true", help="skip the test-split accuracy")
    p.add_argument("--accuracy-limit", type=int, default=0, help="at most N test samples")
    p.add_argument("--seed", type=int, default=0, help="seed of sample order, inputs, scenes")
    p.add_argument(
        "--data",
        default="test",
        choices=["test", "synthetic"],
        help="inputs: the AV-digits test split (default; generated and cached on "
        "first use) or seeded random inputs (no accuracy)",
    )
    p.add_argument("--out", default="benchmarks/results", help="results folder")
    p.add_argument("--summary", default=None, help="also write the Markdown table here")
    p.add_argument("--no-plots", action="store_true", help="write no PNG plots")
    p.add_argument("--json", action="store_true", help="print the result JSON, not the table")
    p.add_argument(
        "--compare",
        nargs=2,
        metavar=("A.json", "B.json"),
        help="print B/A ratios and flag regressions beyond noise (exit 1 if any)",
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=0.10,
        help="smallest relative change --compare flags (default 0.10)",
    )
    p.set_defaults(func=run)


def _compare(args: argparse.Namespace) -> int:
    from avfuse.bench import compare, format_comparison, load_result

    a, b = (load_result(x) for x in args.compare)
    c = compare(a, b, tolerance=args.tolerance)
    print(json.dumps(c, indent=1) if args.json else format_comparison(c, *args.compare))
    return 1 if c["regressions"] else 0


def run(args: argparse.Namespace) -> int:
    """Run the benchmark (or the comparison) and print the table."""
    if args.compare:
        return _compare(args)
    from pathlib import Path

    from avfuse.bench import BenchConfig, run_bench, summary_table, write_result

    cfg = BenchConfig(
        scenario=args.scenario,
        model=args.model,
        backends=args.backends,
        threads=args.threads,
        optimizations=args.opt_levels,
        precisions=args.precisions,
        quant=args.quant,
        batch_sizes=args.batch_sizes,
        streams=args.streams,
        latency_bound_ms=args.latency_bound_ms,
        fps=args.fps,
        min_duration_ms=0 if args.loadgen_rules else args.min_duration_ms,
        min_query_count=0 if args.loadgen_rules else args.min_queries,
        warmup_queries=args.warmup,
        repeats=args.repeats,
        e2e_seconds=args.e2e_seconds,
        source=args.source,
        accuracy=not args.no_accuracy,
        accuracy_limit=args.accuracy_limit,
        seed=args.seed,
        data=args.data,
        out_dir=args.out,
        plots=not args.no_plots,
    )
    log = (lambda s: print(s, file=sys.stderr)) if args.json else print
    record = run_bench(cfg, progress=log)
    path = write_result(record, args.out)
    table = summary_table(record)
    path.with_suffix(".md").write_text(table)
    if args.summary:
        Path(args.summary).parent.mkdir(parents=True, exist_ok=True)
        Path(args.summary).write_text(table)
    written = [path, path.with_suffix(".md")]
    if cfg.plots:
        from avfuse.bench.plots import write_plots

        try:
            written += write_plots(record, path.with_suffix(""))
        except UsageError:
            raise
        except ImportError as e:
            log(f"plots skipped: {e}")
    if args.json:
        print(json.dumps(record, indent=1, default=str))
    else:
        print()
        print(table)
    log("wrote " + ", ".join(str(p) for p in written))
    return 0
