"""`avfuse info`: print a model's manifest summary and validate it against its ONNX graph."""

from __future__ import annotations

import argparse
import json

from avfuse.assets import default_model_path
from avfuse.commands import _args
from avfuse.errors import ModelError


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `info` sub-command."""
    p = _args.add_command(
        sub,
        "info",
        help="show and validate a model's manifest",
        description="Print the manifest summary of a model (inputs, pre-processing, labels, "
        "metrics, provenance) and check it against the ONNX graph. Exits 2 naming the field "
        "when the manifest is missing or inconsistent, and naming the file when the model, "
        "its manifest or the folder is missing.",
    )
    p.add_argument(
        "model",
        nargs="?",
        default=None,
        help="model.onnx, its manifest.json or its folder (default: the bundled model)",
    )
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load, validate (manifest + graph through ONNX Runtime) and print."""
    from avfuse.backends import create_backend
    from avfuse.manifest import load_manifest

    m = load_manifest(args.model or default_model_path())
    if not m.model_path.is_file():
        what = "is a folder" if m.model_path.is_dir() else "does not exist"
        raise ModelError(
            f"manifest {m.path} names the model file {m.model_file!r}, but {m.model_path} "
            f"{what}: put the exported model.onnx beside the manifest or fix model.file in it"
        )
    with create_backend("ort", threads=1) as be:
        be.load(m)  # checks the manifest against the graph
    if args.json:
        print(json.dumps(m.to_dict(), indent=2))
        return 0
    print(f"model     {m.name}  ({m.model_path})")
    print(f"fusion    {m.fusion}   labels {', '.join(m.labels)}")
    for s in m.inputs:
        print(f"input     {s.name:<8} {s.modality or '':<6} {s.dtype} {list(s.shape)}")
    for s in m.outputs:
        print(f"output    {s.name:<8} {'':<6} {s.dtype} {list(s.shape)}")
    if m.audio:
        a = m.audio
        print(
            f"audio     {a.sample_rate} Hz, {a.window_s:g} s window, n_fft {a.n_fft}, "
            f"win {a.win_length}, hop {a.hop_length}, {a.n_mels} mels {a.fmin:g}-{a.fmax:g} Hz"
        )
    if m.video:
        v = m.video
        print(
            f"video     {v.width}x{v.height} {v.colour}, resize {v.resize}, "
            f"mean {list(v.mean)} std {list(v.std)}"
        )
    if m.mask_order:
        print(f"mask      {', '.join(m.mask_order)}")
    for k, v in m.metrics.items():
        print(f"metric    {k}: {v}")
    for k, v in m.provenance.items():
        print(f"provenance {k}: {v}")
    print("manifest  valid")
    return 0
