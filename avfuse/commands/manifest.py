"""`avfuse manifest`: draft a manifest from an ONNX graph (`init`), and check one by
running its model on demo media (`check`).

    avfuse manifest init silero_vad.onnx        # writes manifest.json beside it
    avfuse info silero_vad.onnx                 # names every field still TODO
    avfuse manifest check silero_vad.onnx       # output ranges and hints

Both are one call in Python: `avfuse.manifest.draft.write_draft` and
`avfuse.manifest.check.check_model`.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from avfuse.commands import _args
from avfuse.errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `manifest` sub-command with its actions `init` and `check`."""
    p = _args.add_command(
        sub,
        "manifest",
        help="draft a manifest from an ONNX graph, or check one on demo media",
        description="Bring a pretrained ONNX model: `init` reads the graph and writes a "
        "commented draft manifest (every value only you can know is TODO; `avfuse info` names "
        "each one), `check` runs the model on the bundled demo media and says whether its "
        "outputs look as the manifest declares.",
        epilog="Example: avfuse manifest init silero_vad.onnx && avfuse info silero_vad.onnx",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", parser_class=_args.CommandParser)
    init = _args.add_command(
        actions,
        "init",
        help="write a draft manifest from the graph",
        description="Read MODEL.onnx and write a version-2 manifest with everything the graph "
        "tells: names, shapes, dtypes, dynamic axes, recurrent-state inputs paired with their "
        "outputs, each output's kind from the op the graph ends in (Softmax: probabilities, "
        "Sigmoid: score or sigmoid, else logits), class names from the ONNX metadata. Guesses "
        'are said in each block\'s "comment"; values only you can know are "TODO", which '
        "`avfuse info` and `avfuse run` refuse naming the field.",
    )
    init.add_argument("model", type=Path, help="the .onnx file")
    init.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="PATH",
        help="the manifest to write, or a folder for PATH/manifest.json (default: "
        "manifest.json beside the model)",
    )
    init.add_argument("--force", action="store_true", help="replace an existing manifest")
    init.set_defaults(func=run_init)
    check = _args.add_command(
        actions,
        "check",
        help="run the model on demo media and judge its outputs",
        description="Run the model through the runtime on the bundled demo scene (digit cards "
        "shown and spoken, with pauses) or on --source, print each output's range, and hint "
        "where the numbers contradict the manifest: rows summing to 1 on a logits output, "
        "values outside [0, 1] on probabilities, an output constant over time (check the "
        "pre-processing), NaN or infinity, a driving output that never reaches decision.on, "
        "a raw-audio model that only moves with the other sample scale (float or int16). "
        "Exit 0 when the model ran, whatever the hints.",
    )
    check.add_argument(
        "model",
        nargs="?",
        default=None,
        help="model.onnx, its manifest.json or its folder (default: the bundled model)",
    )
    check.add_argument(
        "--source", metavar="SRC", default=None, help="run on this media file or stream instead"
    )
    check.add_argument(
        "--seed",
        type=_args.seed,
        default=0,
        help=f"demo scene seed, 0..{_args.SEED_MAX} (default 0)",
    )
    check.add_argument(
        "--digits",
        type=_args.digit_string,
        default="0123456789",
        help="digits the demo scene shows: 1 to 50 of 0-9 (default 0123456789)",
    )
    check.add_argument(
        "--threads",
        type=_args.threads(1),
        default=1,
        metavar="N",
        help=f"inference threads, {_args.threads_help(1)} (default 1)",
    )
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(func=run_check)
    p.set_defaults(func=_no_action)


def _no_action(args: argparse.Namespace) -> int:
    raise UsageError("give an action: avfuse manifest init MODEL.onnx, or check MODEL")


def run_init(args: argparse.Namespace) -> int:
    """Write the draft and say what is left to fill."""
    from avfuse.manifest.draft import write_draft

    _args.check_input_file(args.model, "MODEL", fix="give the path of the .onnx file")
    if args.out is not None and not args.out.is_dir():
        _args.check_output_file(args.out, "--out")
    path, todo = write_draft(args.model, args.out, force=args.force)
    print(f"wrote {path}")
    if todo:
        print(f"to fill ({len(todo)}): {', '.join(todo)}")
        print(f"then: avfuse info {path}  and  avfuse manifest check {path}")
    else:
        print(f"nothing left TODO: check the guesses with avfuse manifest check {path}")
    return 0


def _num(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.4g}"


def run_check(args: argparse.Namespace) -> int:
    """Run the check and print the report."""
    from avfuse.assets import default_model_path
    from avfuse.manifest.check import check_model

    report = check_model(
        args.model or default_model_path(),
        source=args.source,
        seed=args.seed,
        digits=args.digits,
        threads=args.threads,
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0
    print(f"model     {report.model}  ({report.manifest})")
    print(f"media     {report.media}")
    print(f"events    {report.events}")
    for s in report.outputs:
        line = (
            f"output    {s.name:<8} {s.kind:<13} {s.calls} calls x {s.columns}: "
            f"{_num(s.low)} to {_num(s.high)} (mean {_num(s.mean)})"
        )
        if s.columns > 1:
            line += f", row sums {_num(s.row_sum[0])} to {_num(s.row_sum[1])}"
        if s.peak is not None:
            line += f", peak probability {_num(s.peak)}"
        print(f"{line}; looks like {s.looks_like}{', flat' if s.flat else ''}")
    for h in report.hints:
        where = f"outputs '{h.output}'" if h.output else (h.field or "model")
        print(f"hint      {where}: {h.message}")
    for n in report.notes:
        print(f"ok        {n}" if "as declared" in n else f"note      {n}")
    return 0
