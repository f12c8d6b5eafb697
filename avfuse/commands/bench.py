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

from avfuse.commands import _args
from avfuse.errors import UsageError

#: names the options accept (the same as avfuse.bench.config's, kept here so that
#: building the parser imports no benchmark machinery)
BACKENDS = ("torch", "ort", "torch-cuda", "ort-cuda", "tensorrt")
PROVIDERS = ("cpu", "cuda", "tensorrt")
#: accepted by --backends but not run by default (it needs a server: --triton-url)
OPT_IN_BACKENDS = ("triton",)
OPT_LEVELS = ("disable", "basic", "extended", "all")
PRECISIONS = ("fp32", "fp16", "int8")
QUANT = ("dynamic", "static")

#: documented ranges (see each option's help)
MAX_BATCH = 1024
MAX_STREAMS = 256
MAX_LATENCY_BOUND_MS = 60000.0
MAX_FPS = 240.0
MAX_MIN_DURATION_MS = 3_600_000
MAX_MIN_QUERIES = 10_000_000
MAX_WARMUP = 100_000
MAX_REPEATS = 100
MAX_E2E_SECONDS = 3600.0
MAX_ACCURACY_LIMIT = 10_000_000
MAX_TOLERANCE = 10.0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `bench` sub-command."""
    p = _args.add_command(
        sub,
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
        type=_args.name_list(BACKENDS + OPT_IN_BACKENDS),
        default=BACKENDS,
        help="comma list of torch, ort, torch-cuda, ort-cuda, tensorrt (default: these; "
        "absent ones are skipped with the reason) and triton (a Triton server, --triton-url: "
        "client-side latency plus the server's own statistics)",
    )
    p.add_argument(
        "--triton-url",
        metavar="URL",
        default=None,
        help="the server of --backends triton (default grpc://127.0.0.1:8001; options as "
        "for avfuse run --triton-url)",
    )
    p.add_argument(
        "--provider",
        choices=PROVIDERS,
        default=None,
        help="ONNX Runtime provider of the ort variants: cpu (the CPU sweeps, default), "
        "cuda, or tensorrt (one variant per --precisions on the GPU); ort only",
    )
    p.add_argument(
        "--threads",
        type=_args.thread_list(),
        default=(1, 2),
        help=f"thread counts, each {_args.threads_help(1)} (default 1,2)",
    )
    p.add_argument(
        "--opt-levels",
        type=_args.name_list(OPT_LEVELS),
        default=OPT_LEVELS,
        help="ONNX Runtime graph optimisation levels swept: disable, basic, extended, all "
        "(default: all four)",
    )
    p.add_argument(
        "--precisions",
        type=_args.name_list(PRECISIONS),
        default=("fp32", "int8"),
        help="fp32, int8 (quantised copy), fp16 (default fp32,int8)",
    )
    p.add_argument(
        "--quant",
        type=_args.name_list(QUANT),
        default=("dynamic",),
        help="int8 methods: dynamic, static (calibrated on the data)",
    )
    p.add_argument(
        "--batch-sizes",
        type=_args.int_list(1, MAX_BATCH),
        default=(1, 2, 4, 8, 16, 32, 64),
        help=f"offline batch sizes swept, each 1..{MAX_BATCH}",
    )
    p.add_argument(
        "--streams",
        type=_args.int_list(1, MAX_STREAMS, ascending=True),
        default=(1, 2, 4, 8, 12, 16, 24, 32),
        help=f"stream counts tried, strictly ascending, each 1..{MAX_STREAMS} (multi-stream)",
    )
    p.add_argument(
        "--latency-bound-ms",
        type=_args.finite_float(0.0, MAX_LATENCY_BOUND_MS, unit="ms", lo_open=True),
        default=50.0,
        help="p99 end-to-end bound of the multi-stream search, "
        f"0 < x <= {MAX_LATENCY_BOUND_MS:g} ms (default 50)",
    )
    p.add_argument(
        "--fps",
        type=_args.finite_float(0.0, MAX_FPS, lo_open=True),
        default=30.0,
        help=f"frame rate of each live stream, 0 < x <= {MAX_FPS:g} (default 30)",
    )
    p.add_argument(
        "--min-duration-ms",
        type=_args.int_range(0, MAX_MIN_DURATION_MS, unit="ms"),
        default=1000,
        help=f"LoadGen minimum run length per measurement, 0..{MAX_MIN_DURATION_MS} "
        "(default 1000; 0: LoadGen's own)",
    )
    p.add_argument(
        "--min-queries",
        type=_args.int_range(0, MAX_MIN_QUERIES),
        default=100,
        help=f"LoadGen minimum query count per measurement, 0..{MAX_MIN_QUERIES} "
        "(default 100; multi-stream at least 662, LoadGen's early-stopping minimum; "
        "0: LoadGen's own)",
    )
    p.add_argument(
        "--loadgen-rules",
        action="store_true",
        help="use LoadGen's own minimum duration and query count (600 s, 1024 queries for "
        "single-stream: long) instead of --min-duration-ms/--min-queries",
    )
    p.add_argument(
        "--warmup",
        type=_args.int_range(0, MAX_WARMUP),
        default=20,
        help=f"warm-up queries (reported apart), 0..{MAX_WARMUP} (default 20)",
    )
    p.add_argument(
        "--repeats",
        type=_args.int_range(1, MAX_REPEATS),
        default=3,
        help=f"repeats per measurement (noise), 1..{MAX_REPEATS} (default 3)",
    )
    p.add_argument(
        "--e2e-seconds",
        type=_args.finite_float(0.0, MAX_E2E_SECONDS, unit="s", lo_open=True),
        default=10.0,
        help="length of the single-stream end-to-end run (searches use <= 4 s), "
        f"0 < x <= {MAX_E2E_SECONDS:g} (default 10)",
    )
    p.add_argument(
        "--source",
        default="synthetic",
        help="end-to-end streams play this: synthetic (default) or a media file/URL",
    )
    p.add_argument("--no-accuracy", action="store_true", help="skip the test-split accuracy")
    p.add_argument(
        "--accuracy-limit",
        type=_args.int_range(0, MAX_ACCURACY_LIMIT),
        default=0,
        help=f"at most N test samples, 0..{MAX_ACCURACY_LIMIT} (default 0: all)",
    )
    p.add_argument(
        "--seed",
        type=_args.seed,
        default=0,
        help=f"seed of sample order, inputs, scenes, 0..{_args.SEED_MAX} (default 0)",
    )
    p.add_argument(
        "--data",
        default="test",
        choices=["test", "synthetic"],
        help="inputs: the AV-digits test split (default; generated and cached on "
        "first use) or seeded random inputs (no accuracy)",
    )
    p.add_argument(
        "--out",
        default="benchmarks/results",
        help="results folder (checked writable before the benchmark starts)",
    )
    p.add_argument(
        "--summary",
        default=None,
        help="also write the Markdown table here (checked writable before the benchmark starts)",
    )
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
        type=_args.finite_float(0.0, MAX_TOLERANCE),
        default=0.10,
        help=f"smallest relative change --compare flags, 0..{MAX_TOLERANCE:g} (default 0.10)",
    )
    p.set_defaults(func=run)


def preflight(args: argparse.Namespace) -> None:
    """Checks that need the file system, run before any measurement (UsageError: exit 2).

    With --compare both files must be readable; otherwise --out must be a folder that
    exists or can be created and --summary a writable file (nothing is created here).
    """
    if args.compare:
        for path in args.compare:
            _args.check_input_file(path, "--compare")
        return
    if args.provider is not None and "ort" not in args.backends:
        raise UsageError(
            f"--provider applies to --backend ort only, and --backends is "
            f"{','.join(args.backends)}: add ort or drop --provider"
        )
    if args.triton_url is not None and "triton" not in args.backends:
        raise UsageError("--triton-url is for --backends triton: add it or drop --triton-url")
    _args.check_output_folder(args.out, "--out")
    if args.summary is not None:
        _args.check_output_file(args.summary, "--summary")


def _compare(args: argparse.Namespace) -> int:
    from avfuse.bench import compare, format_comparison, load_result

    a, b = (load_result(x) for x in args.compare)
    c = compare(a, b, tolerance=args.tolerance)
    print(json.dumps(c, indent=1) if args.json else format_comparison(c, *args.compare))
    return 1 if c["regressions"] else 0


def run(args: argparse.Namespace) -> int:
    """Run the benchmark (or the comparison) and print the table."""
    preflight(args)
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
        provider=args.provider,
        extra={"triton_url": args.triton_url} if args.triton_url else {},
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
