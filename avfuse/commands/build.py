"""`avfuse build`: a TensorRT engine (fp16, or int8 from an accuracy-gated Q/DQ model)."""

from __future__ import annotations

import argparse
import sys

from avfuse.commands import _args

MAX_BATCH = 1024
MAX_CALIBRATION = 100_000


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `build` sub-command."""
    p = _args.add_command(
        sub,
        "build",
        help="build a TensorRT engine (fp16, or int8 from a quantised model)",
        description="Write a model folder with a TensorRT engine beside its ONNX: fp16 (or "
        "fp32) from the model as it is; int8 from a Q/DQ copy made with ONNX Runtime's "
        "static quantisation, calibrated on the val split and refused when it loses more "
        "than 1 point of accuracy against fp32 on the test split (--force keeps it). The "
        "engine's optimisation profile spans batch 1..--max-batch; kernel timings are cached "
        "for later builds. `avfuse run --model DIR --backend tensorrt` runs it. Needs "
        "TensorRT and an NVIDIA GPU (pip install 'avfuse[gpu]'), except --onnx-only.",
        epilog="Examples: avfuse build models/digits --precision fp16 | avfuse build "
        "--precision int8 --data demo --onnx-only --out digits-int8",
    )
    p.add_argument(
        "model",
        nargs="?",
        default=None,
        help="model folder, manifest.json or model.onnx (default: the bundled model)",
    )
    p.add_argument(
        "--precision", required=True, choices=("fp32", "fp16", "int8"), help="engine precision"
    )
    p.add_argument(
        "--out", default=None, metavar="DIR", help="output folder (default: ./NAME-PRECISION)"
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="keep an int8 model that fails the 1-point accuracy gate",
    )
    p.add_argument(
        "--onnx-only",
        action="store_true",
        help="int8: write the quantised ONNX model and its accuracy record, no "
        "engine (needs no TensorRT or GPU; ONNX Runtime runs it)",
    )
    p.add_argument(
        "--max-batch",
        type=_args.int_range(1, MAX_BATCH),
        default=64,
        help=f"largest batch of the optimisation profile, 1..{MAX_BATCH} (default 64)",
    )
    p.add_argument(
        "--device",
        type=_args.device,
        default="cuda",
        help="GPU to build on: cuda or cuda:N (default cuda)",
    )
    p.add_argument(
        "--data",
        choices=("test", "demo"),
        default="test",
        help="int8 samples: test (calibrate on val, score on test; the data extra) "
        "or demo (the bundled 60 demo samples for both: seconds, a smoke check)",
    )
    p.add_argument(
        "--calibration-samples",
        type=_args.int_range(1, MAX_CALIBRATION),
        default=128,
        help="int8 calibration rows (default 128)",
    )
    p.set_defaults(func=run)


def preflight(args: argparse.Namespace) -> None:
    """Refuse contradictions and an output folder that cannot be written (exit 2)."""
    from avfuse.errors import UsageError

    if args.onnx_only and args.precision != "int8":
        raise UsageError(
            f"--onnx-only writes a quantised ONNX model: it needs --precision "
            f"int8, not {args.precision}"
        )
    if args.device == "cpu" and not args.onnx_only:
        raise UsageError("a TensorRT engine is built on the GPU: use --device cuda[:N]")
    if args.out is not None:
        _args.check_output_folder(args.out, "--out")


def run(args: argparse.Namespace) -> int:
    """Build and say what was written."""
    preflight(args)
    from avfuse.export.build import build

    r = build(
        args.model,
        precision=args.precision,
        out=args.out,
        device=args.device,
        max_batch=args.max_batch,
        force=args.force,
        onnx_only=args.onnx_only,
        data=args.data,
        calibration_samples=args.calibration_samples,
    )
    q = r.record.get("int8")
    if q is not None:
        forced = " (kept by --force)" if q["forced"] else ""
        print(
            f"int8: accuracy {q['fp32_accuracy'] * 100:.2f} % fp32 -> "
            f"{q['int8_accuracy'] * 100:.2f} % int8 ({q['loss_points']:+.2f} points lost, "
            f"limit {q.get('limit_points', q['max_loss_points']):.3g}) on "
            f"{q['evaluation']}{forced}",
            file=sys.stderr,
        )
    wrote = [r.manifest.model_path, r.manifest.path] + ([r.engine] if r.engine else [])
    print("wrote " + ", ".join(str(x) for x in wrote))
    return 0
