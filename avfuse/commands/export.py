"""`avfuse export`: checkpoint -> model.onnx + manifest.json (+ checkpoint.pt), parity-gated."""

from __future__ import annotations

import argparse
from pathlib import Path

from avfuse.commands import _args
from avfuse.errors import UsageError

#: largest parity tolerance accepted (logits differing by more are not the same model)
MAX_ATOL = 1.0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `export` sub-command."""
    p = _args.add_command(
        sub,
        "export",
        help="export a trained checkpoint to ONNX with its manifest",
        description="Export a checkpoint written by `avfuse train` to DIR/model.onnx (dynamic "
        "batch axis), check it with onnx.checker, slim it with onnxslim, run the parity gate "
        "(ONNX Runtime vs torch on >= 500 held-out samples: max abs logit error <= --atol and "
        "identical top-1, else exit 1 with the numbers), then write DIR/manifest.json (inputs, "
        "pre-processing, labels, metrics, provenance) and copy checkpoint.pt beside them for "
        "the torch backend. Needs: pip install 'avfuse[export]'.",
        epilog="Example: avfuse export runs/hybrid/checkpoint.pt --out models/hybrid. "
        "With --triton REPO, MODEL is a model avfuse runs (folder, model.onnx or manifest.json) "
        "and REPO becomes a Triton model repository: avfuse export --triton repo models/hybrid "
        "(see docs/triton.md).",
    )
    p.add_argument(
        "checkpoint",
        type=Path,
        metavar="CHECKPOINT|MODEL",
        help="checkpoint.pt from `avfuse train`; with --triton, the model to serve",
    )
    p.add_argument(
        "--out", type=Path, default=None, help="output folder (required without --triton)"
    )
    t = p.add_argument_group("triton (with --triton REPO)")
    t.add_argument(
        "--triton", type=Path, metavar="REPO", default=None, help="write a Triton model repository"
    )
    t.add_argument(
        "--variants",
        metavar="LIST",
        type=_args.name_list(("onnx", "python", "plan")),
        default=("onnx", "python", "plan"),
        help="which models to write: onnx (onnxruntime backend), python (ONNX Runtime in the "
        "python backend), plan (TensorRT, only with a plan file); default all",
    )
    t.add_argument(
        "--plan", type=Path, default=None, help="a TensorRT plan built for the target GPU"
    )
    t.add_argument(
        "--max-batch",
        type=_args.int_range(1, 1024),
        default=8,
        metavar="N",
        help="max_batch_size when the graph's batch is dynamic (default 8, as avfuse run)",
    )
    t.add_argument(
        "--queue-delay-us",
        type=_args.int_range(0, 1_000_000),
        default=500,
        metavar="US",
        help="the dynamic batcher's max_queue_delay_microseconds (default 500)",
    )
    t.add_argument(
        "--instances",
        type=_args.int_range(1, 64),
        default=1,
        help="instances per model (default 1)",
    )
    t.add_argument("--gpu", action="store_true", help="KIND_GPU instances (onnx and plan variants)")
    p.add_argument("--no-slim", action="store_true", help="skip the onnxslim pass")
    p.add_argument(
        "--legacy", action="store_true", help="use the legacy TorchScript exporter, not dynamo"
    )
    p.add_argument(
        "--atol",
        type=_args.finite_float(0.0, MAX_ATOL, lo_open=True),
        default=1e-4,
        help=f"parity tolerance on logits, 0 < atol <= {MAX_ATOL:g} (default 1e-4)",
    )
    p.set_defaults(func=run)


def preflight(args: argparse.Namespace) -> None:
    """The checkpoint must be readable and --out a folder that can be written (exit 2)."""
    if args.out is None:
        raise UsageError("--out is required (or --triton REPO to write a Triton repository)")
    _args.check_input_file(
        args.checkpoint, "checkpoint", fix="give a checkpoint.pt written by `avfuse train`"
    )
    _args.check_output_folder(args.out, "--out")


def run(args: argparse.Namespace) -> int:
    """Run the export chain and print what it wrote."""
    if args.triton is not None:
        return run_triton(args)
    preflight(args)
    from avfuse.export import export_model

    r = export_model(
        args.checkpoint,
        args.out,
        slim=not args.no_slim,
        atol=args.atol,
        prefer_dynamo=not args.legacy,
        progress=True,
    )
    p = r.parity
    print(
        f"wrote {r.model_path} (opset {r.manifest.opset}, {r.exporter} exporter"
        f"{', slimmed' if r.slimmed else ''}), {r.manifest_path.name}, {r.checkpoint_path.name}"
    )
    print(
        f"parity: {p.samples} samples, max abs logit error {p.max_abs_error:.2e} "
        f"(limit {p.atol:g}), top-1 agreement {p.top1_agreement:.4f}"
    )
    return 0


def run_triton(args: argparse.Namespace) -> int:
    """`avfuse export --triton REPO MODEL`: write the repository and say how to serve it."""
    if args.out is not None:
        raise UsageError("--triton REPO and --out are two different exports: give one")
    _args.check_output_folder(args.triton, "--triton")
    from avfuse.export.triton import export_triton

    r = export_triton(
        args.checkpoint,
        args.triton,
        variants=tuple(args.variants),
        plan=args.plan,
        max_batch=args.max_batch,
        queue_delay_us=args.queue_delay_us,
        instances=args.instances,
        gpu=args.gpu,
    )
    batching = f"max_batch_size {r.max_batch_size}" if r.max_batch_size else "no server batching"
    for variant, folder in r.models.items():
        print(f"wrote {folder} ({variant}, {batching})")
    for note in r.notes:
        print(f"note: {note}")
    print(f"serve it: avfuse serve {r.repository}")
    return 0
