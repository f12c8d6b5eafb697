"""`avfuse export`: checkpoint -> model.onnx + manifest.json (+ checkpoint.pt), parity-gated."""

from __future__ import annotations

import argparse
from pathlib import Path

from avfuse.commands import _args

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
        epilog="Example: avfuse export runs/hybrid/checkpoint.pt --out models/hybrid",
    )
    p.add_argument("checkpoint", type=Path, help="checkpoint.pt from `avfuse train`")
    p.add_argument("--out", type=Path, required=True, help="output folder")
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
    _args.check_input_file(
        args.checkpoint, "checkpoint", fix="give a checkpoint.pt written by `avfuse train`"
    )
    _args.check_output_folder(args.out, "--out")


def run(args: argparse.Namespace) -> int:
    """Run the export chain and print what it wrote."""
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
