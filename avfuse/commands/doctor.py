"""`avfuse doctor`: check this machine for avfuse and print a pass/fail table (or JSON)."""

from __future__ import annotations

import argparse
from pathlib import Path

from avfuse.commands import _args
from avfuse.errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `doctor` sub-command."""
    p = _args.add_command(
        sub,
        "doctor",
        help="check this machine: packages, GPU, devices, model and backends",
        description="Check what avfuse needs and can use here: Python, numpy, ONNX Runtime "
        "and its providers, the NVIDIA driver, CUDA runtime, GPU (name, compute "
        "capability), TensorRT, torch, PyAV, OpenCV, FFmpeg, PortAudio, microphones and "
        "cameras; then load the model in every backend present, compare its outputs on "
        "bundled samples with the ONNX Runtime CPU reference (top-1 agreement, max error) "
        "and time single-stream latency. Prints one row per check with the fix for each "
        "failure. Exit 0 when nothing failed (optional parts may be absent), 1 when a "
        "check failed. Installs and downloads nothing.",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON (schema 1)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="time fewer calls per backend: quicker, noisier latency figures",
    )
    p.add_argument(
        "--model",
        default=None,
        metavar="PATH",
        help="model folder, manifest.json or model.onnx to check the backends with "
        "(default: the bundled model)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the checks, print the table or the JSON, return 0 or 1."""
    if args.model is not None and not Path(args.model).exists():
        raise UsageError(
            f"--model {args.model} does not exist: give a model folder, its manifest.json "
            "or its model.onnx"
        )
    from avfuse.doctor import run_doctor

    report = run_doctor(model=args.model, quick=args.quick)
    print(report.to_json() if args.json else report.table())
    return report.exit_status
