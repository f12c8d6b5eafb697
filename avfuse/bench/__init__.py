"""The benchmark harness behind `avfuse bench` (lives in the package so wheels have it).

    from avfuse.bench import BenchConfig, run_bench, write_result, summary_table
    record = run_bench(BenchConfig(scenario="single-stream"))
    path = write_result(record, "benchmarks/results")

Model-level scenarios (single-stream, multi-stream, offline) run through the real
MLPerf LoadGen; the end-to-end streaming scenario drives the pipeline with a
synthetic source (avfuse.bench.e2e). See benchmarks/README.md.
"""

from __future__ import annotations

from avfuse.bench.compare import compare, format_comparison
from avfuse.bench.config import BenchConfig, Variant
from avfuse.bench.report import load_result, summary_table, validate, write_result
from avfuse.bench.runner import run_bench

__all__ = [
    "BenchConfig",
    "Variant",
    "compare",
    "format_comparison",
    "load_result",
    "run_bench",
    "summary_table",
    "validate",
    "write_result",
]
