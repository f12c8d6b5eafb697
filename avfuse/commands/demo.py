"""`avfuse demo`: the bundled model on a synthetic scene, scored against its ground truth."""

from __future__ import annotations

import argparse
import sys

from avfuse.commands import _args
from avfuse.commands.run import (
    AV_OFFSET_MS,
    add_model_options,
    add_output_options,
    backend_spec,
    check_backend,
    check_outputs,
    print_outcome,
    sinks_from,
)
from avfuse.errors import UsageError

#: documented ranges of the scene's disturbances
MAX_DRIFT_PPM = 10000.0
MAX_JITTER_MS = 1000.0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `demo` sub-command."""
    p = _args.add_command(
        sub,
        "demo",
        help="run the bundled model on a synthetic scene (no devices needed)",
        description="Show digit cards to a virtual camera and speak the same digits into a "
        "virtual microphone (about 20 s, pre-rendered material: no camera, microphone, network "
        "or espeak-ng needed), recognise them with the bundled fused model, print events as "
        "they happen, the latency table at the end, and a score against the scene's ground "
        "truth. Exit status 0 when the run finished, whatever the score.",
    )
    p.add_argument(
        "--seed",
        type=_args.seed,
        default=0,
        help=f"scene seed: digit order and layout, 0..{_args.SEED_MAX} (default 0)",
    )
    p.add_argument(
        "--digits",
        type=_args.digit_string,
        default="0123456789",
        help="digits the scene shows, in any order: 1 to 50 of 0-9 (default 0123456789)",
    )
    p.add_argument(
        "--fast", action="store_true", help="run as fast as possible instead of in real time"
    )
    p.add_argument(
        "--av-offset-ms",
        type=_args.finite_float(-AV_OFFSET_MS, AV_OFFSET_MS, unit="ms"),
        default=0.0,
        help="make the scene's audio this late and tell the pipeline so, "
        f"-{AV_OFFSET_MS:g}..{AV_OFFSET_MS:g} ms (default 0)",
    )
    p.add_argument(
        "--drift-ppm",
        type=_args.finite_float(-MAX_DRIFT_PPM, MAX_DRIFT_PPM, unit="ppm"),
        default=0.0,
        help="audio clock drift of the virtual microphone, "
        f"-{MAX_DRIFT_PPM:g}..{MAX_DRIFT_PPM:g} ppm (default 0)",
    )
    p.add_argument(
        "--jitter-ms",
        type=_args.finite_float(0.0, MAX_JITTER_MS, unit="ms"),
        default=0.0,
        help=f"arrival jitter of the virtual devices, 0..{MAX_JITTER_MS:g} ms (default 0)",
    )
    add_model_options(p)
    add_output_options(p)
    p.set_defaults(func=run, drains=True)


def preflight(args: argparse.Namespace) -> None:
    """Checks that need the file system, run before the scene (UsageError: exit 2)."""
    check_backend(args)
    check_outputs(args)


def run(args: argparse.Namespace) -> int:
    """Run the scene and print the outcome."""
    preflight(args)
    from avfuse.api import demo
    from avfuse.commands.run import model_options
    from avfuse.engine.pipeline import PipelineConfig

    if getattr(args, "fusion", None):
        raise UsageError(
            "the demo runs one model: --fusion needs `avfuse run` with --model A --model B"
        )

    if not args.fast:
        print(
            "avfuse demo: a synthetic camera shows digit cards while a synthetic microphone "
            "speaks them; events appear as they are recognised.",
            file=sys.stderr,
        )
    result = demo(
        seed=args.seed,
        digits=args.digits,
        realtime=not args.fast,
        model=args.model,
        backend=backend_spec(args),
        device=args.device,
        provider=args.provider,
        precision=args.precision,
        threads=args.threads,
        sinks=sinks_from(args),
        av_offset_ms=args.av_offset_ms,
        drift_ppm=args.drift_ppm,
        jitter_ms=args.jitter_ms,
        config=PipelineConfig(kernel_impl=args.kernels),
        stop=getattr(args, "stop_token", None),
        options=model_options(args),
    )
    print_outcome(result, args)
    s = result.score or {}
    print(
        f"score: {s.get('n_recognised', 0)}/{s.get('n_truth', 0)} scripted digits recognised "
        f"with the right label (recall {s.get('recall', 0.0):.2f}), "
        f"{s.get('n_false', 0)} false event(s)",
        file=sys.stderr,
    )
    return 0
