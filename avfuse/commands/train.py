"""`avfuse train`: train one zoo model, or the whole zoo with its accuracy report."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from avfuse.commands import _args
from avfuse.errors import UsageError
from avfuse.models.zoo import EMBEDDING, ZOO

ZOO_NAMES = tuple(ZOO)

#: documented ranges (see each option's help)
MAX_EPOCHS = 10000
MAX_BATCH_SIZE = 4096
MAX_LR = 10.0
MAX_PATIENCE = 10000


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `train` sub-command."""
    p = _args.add_command(
        sub,
        "train",
        help="train a fusion model (or the whole zoo) on AV-digits",
        description="Train a model of the zoo on the AV-digits data set (generated and cached "
        "on first use) with modality dropout, SpecAugment and image jitter; early stopping on "
        "validation accuracy. Writes checkpoint.pt and metrics.json into --out. With --zoo, "
        "trains every model, writes the accuracy report (clean, audio missing, video missing, "
        "low SNR) to --results and the README table, and exports the best fused model as the "
        "bundled default. With --pretraining, trains late fusion with and without contrastive "
        "pre-training at 100%% and 10%% of the labels and writes those rows and the cross-modal "
        "retrieval figures into --results and README. "
        "Needs: pip install 'avfuse[train,export,data]'.",
        epilog="Models: audio, video (unimodal baselines); early, late, attention, hybrid "
        "(fused, inputs audio + image + mask); embed (late fusion with a shared audio-visual "
        "embedding, pre-trained contrastively). Example: avfuse train --model hybrid --epochs 12",
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--model", choices=ZOO_NAMES, help="the zoo model to train")
    what.add_argument("--zoo", action="store_true", help="train every zoo model and report")
    what.add_argument(
        "--pretraining",
        action="store_true",
        help="train late fusion with and without contrastive pre-training at 100%% and 10%% "
        "of the labels and report (rows and retrieval in --results and README)",
    )
    p.add_argument(
        "--epochs",
        type=_args.int_range(1, MAX_EPOCHS),
        default=16,
        help=f"maximum epochs, 1..{MAX_EPOCHS} (default 16)",
    )
    p.add_argument(
        "--seed",
        type=_args.seed,
        default=0,
        help=f"seed for weights, data order, augmentation, 0..{_args.SEED_MAX} (default 0)",
    )
    p.add_argument(
        "--batch-size",
        type=_args.int_range(1, MAX_BATCH_SIZE),
        default=64,
        help=f"samples per step, 1..{MAX_BATCH_SIZE} (default 64)",
    )
    p.add_argument(
        "--lr",
        type=_args.finite_float(0.0, MAX_LR, lo_open=True),
        default=3e-3,
        help=f"peak AdamW learning rate, 0 < lr <= {MAX_LR:g} (default 0.003)",
    )
    p.add_argument(
        "--patience",
        type=_args.int_range(1, MAX_PATIENCE),
        default=5,
        help=f"early-stopping patience in epochs, 1..{MAX_PATIENCE} (default 5)",
    )
    p.add_argument(
        "--threads",
        type=_args.threads(minimum=1),
        default=2,
        help=f"torch threads, {_args.threads_help(1)} (default 2)",
    )
    p.add_argument(
        "--p-audio-missing",
        type=_args.finite_float(0.0, 1.0),
        default=0.15,
        help="modality dropout: share of training samples without audio, 0..1, with "
        "--p-video-missing summing to at most 1 (default 0.15)",
    )
    p.add_argument(
        "--p-video-missing",
        type=_args.finite_float(0.0, 1.0),
        default=0.15,
        help="modality dropout: share of training samples without video, 0..1 (default 0.15)",
    )
    p.add_argument(
        "--base-weight",
        action="append",
        default=[],
        metavar="BASE=W",
        type=_base_weight,
        help="weight of an espeak-ng train base voice in the train split's voice pool "
        "(repeatable; unnamed bases weigh 1), e.g. en-us=4 for as many American as British "
        "voices; val and test are unchanged (default: every base and variant equally)",
    )
    p.add_argument(
        "--augment",
        choices=("basic", "varied"),
        default="basic",
        help="augmentation recipe: basic (SpecAugment, shifts, contrast) or varied (also "
        "vocal-tract length, tempo and EQ warps of the audio, rotation, zoom, slant, pen "
        "width and blur of the image) (default basic)",
    )
    p.add_argument(
        "--label-fraction",
        type=_args.finite_float(0.0, 1.0, lo_open=True),
        default=1.0,
        help="--model: share of the train labels used, 0 < f <= 1 (a stratified, seeded "
        "subset; contrastive pre-training still sees every pair) (default 1)",
    )
    p.add_argument(
        "--pretrain-epochs",
        type=_args.int_range(0, MAX_EPOCHS),
        default=None,
        help=f"embed: contrastive pre-training epochs, 0..{MAX_EPOCHS} (default 30)",
    )
    p.add_argument(
        "--contrastive-weight",
        type=_args.finite_float(0.0, 100.0),
        default=None,
        help="embed: weight of the InfoNCE term during supervised training, 0..100 (default 0.5)",
    )
    p.add_argument(
        "--few-label-epochs",
        type=_args.int_range(1, MAX_EPOCHS),
        default=None,
        help=f"--pretraining: epochs of the rows at 10%% of the labels, 1..{MAX_EPOCHS} "
        "(default 30: an epoch over a tenth of the labels is a tenth of the steps)",
    )
    p.add_argument(
        "--no-ablations",
        action="store_true",
        help="--pretraining: only the four main rows (late fusion with and without "
        "contrastive pre-training at 100%% and 10%% of the labels)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default runs/<model>, runs/zoo or runs/pretraining)",
    )
    p.add_argument("--tiny", action="store_true", help="tiny data set (for tests; seconds)")
    p.add_argument(
        "--quiet", action="store_true", help="no progress bars (one line per epoch still)"
    )
    p.add_argument(
        "--results",
        type=Path,
        default=Path("benchmarks/results/accuracy.json"),
        help="--zoo, --pretraining: where to write the accuracy report (checked writable "
        "before training)",
    )
    p.add_argument(
        "--readme",
        type=Path,
        default=Path("README.md"),
        help="--zoo, --pretraining: README whose table markers get the tables",
    )
    p.add_argument(
        "--reuse",
        action="store_true",
        help="--zoo, --pretraining: reuse members already trained in --out on the same data "
        "version",
    )
    p.add_argument(
        "--no-bundle",
        action="store_true",
        help="--zoo: do not export the best fused model into avfuse/assets/model",
    )
    p.set_defaults(func=run)


def _base_weight(text: str) -> tuple[str, float]:
    """``BASE=W`` -> (base, weight); the base itself is checked by DataConfig."""
    base, sep, w = text.partition("=")
    try:
        weight = float(w)
    except ValueError:
        weight = float("nan")
    if not sep or not base or not 0 < weight < float("inf"):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not BASE=W with a positive weight W, e.g. en-us=4"
        )
    return base, weight


def preflight(args: argparse.Namespace) -> None:
    """Checks across options and of the output paths, run before any data is made.

    Raises:
        UsageError: the two dropout shares sum past 1, or an output cannot be written.
    """
    pa, pv = args.p_audio_missing, args.p_video_missing
    if pa + pv > 1:
        raise UsageError(
            f"--p-audio-missing {pa:g} and --p-video-missing {pv:g} sum to {pa + pv:g}: "
            "the two shares must sum to at most 1"
        )
    embed_only = [
        opt
        for opt, v in (("--pretrain-epochs", args.pretrain_epochs),
                       ("--contrastive-weight", args.contrastive_weight))
        if v is not None
    ]  # fmt: skip
    if embed_only and args.model is not None and args.model not in EMBEDDING:
        raise UsageError(
            f"{embed_only[0]} applies to a model with a shared embedding ({', '.join(EMBEDDING)}),"
            f" not {args.model}: drop the option or use --model embed"
        )
    if args.no_ablations and not args.pretraining:
        raise UsageError("--no-ablations applies to --pretraining: drop it or add --pretraining")
    if args.few_label_epochs is not None and not args.pretraining:
        raise UsageError(
            "--few-label-epochs applies to --pretraining: drop it or add --pretraining"
        )
    if args.label_fraction != 1.0 and args.model is None:
        raise UsageError(
            "--label-fraction applies to --model; --pretraining trains at 100% and 10% itself"
        )
    _args.check_output_folder(args.out or Path("runs") / _default_out(args), "--out")
    if args.zoo or args.pretraining:
        _args.check_output_file(args.results, "--results")
        if args.readme.exists():
            _args.check_output_file(args.readme, "--readme")


def _default_out(args: argparse.Namespace) -> str:
    return args.model or ("zoo" if args.zoo else "pretraining")


def run(args: argparse.Namespace) -> int:
    """Train as asked and print where the results went."""
    preflight(args)
    from avfuse.models.augment import AugmentConfig
    from avfuse.models.train import TrainConfig

    pa, pv = args.p_audio_missing, args.p_video_missing
    embed = {
        k: v
        for k, v in (("pretrain_epochs", args.pretrain_epochs),
                     ("contrastive_weight", args.contrastive_weight))
        if v is not None
    }  # fmt: skip
    cfg = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        patience=args.patience,
        seed=args.seed,
        threads=args.threads,
        augment=(AugmentConfig.varied if args.augment == "varied" else AugmentConfig)(
            p_audio_missing=pa, p_video_missing=pv
        ),
        label_fraction=args.label_fraction,
        **embed,
    )
    data_config = _data_config(args.tiny, tuple(args.base_weight))
    progress = not args.quiet
    if args.zoo:
        return _zoo(args, cfg, data_config, progress)
    if args.pretraining:
        return _pretraining(args, cfg, data_config, progress)
    from avfuse.models.experiment import run_training

    out = args.out or Path("runs") / args.model
    m = run_training(
        args.model,
        out_dir=out,
        train_config=cfg,
        data_config=data_config,
        progress=progress,
        echo=True,
    )
    tests = ", ".join(f"{k} {v:.3f}" for k, v in m["test"].items() if v is not None)
    print(f"{args.model}: test {tests}; {m['train_seconds']:.0f} s; wrote {out}/checkpoint.pt")
    return 0


def _pretraining(args: argparse.Namespace, cfg, data_config, progress: bool) -> int:
    import shlex
    import sys

    from avfuse.models.study import (
        MAIN_VARIANTS,
        VARIANTS,
        pretraining_study,
        render_retrieval,
        render_rows,
    )

    out = args.out or Path("runs") / "pretraining"
    merged = pretraining_study(
        out_dir=out,
        results=args.results,
        readme=args.readme,
        train_config=cfg,
        data_config=data_config,
        reuse=args.reuse,
        progress=progress,
        variants=MAIN_VARIANTS if args.no_ablations else VARIANTS,
        command="avfuse " + shlex.join(sys.argv[1:]),
        **({"few_label_epochs": args.few_label_epochs} if args.few_label_epochs else {}),
    )
    print(render_rows(merged["pretraining"]))
    print()
    print(render_retrieval(merged["retrieval"]))
    print(f"wrote {args.results}; the embedding model is {out}/late+contrastive@100/checkpoint.pt")
    return 0


def _data_config(tiny: bool, base_weights: tuple[tuple[str, float], ...] = ()):
    from avfuse.data import DataConfig

    base = DataConfig.tiny() if tiny else DataConfig()
    return replace(base, train_base_weights=base_weights) if base_weights else base


def _zoo(args: argparse.Namespace, cfg, data_config, progress: bool) -> int:
    from avfuse.assets import default_model_path
    from avfuse.models.report import render_table, train_zoo

    out = args.out or Path("runs") / "zoo"
    report = train_zoo(
        out_dir=out,
        results=args.results,
        readme=args.readme,
        train_config=cfg,
        data_config=data_config,
        reuse=args.reuse,
        progress=progress,
    )
    print(render_table(report))
    print(f"wrote {args.results}" + (f" and {args.readme}" if report["readme_updated"] else ""))
    if not report["checks"]["pass"]:
        print(f"fusion checks FAILED: {report['checks']}")
    default = report["default_model"]
    if default and not args.no_bundle:
        from avfuse.export import export_model

        dest = default_model_path().parent
        r = export_model(out / default / "checkpoint.pt", dest, progress=progress)
        print(
            f"bundled {default} in {dest} (exporter {r.exporter}, parity max abs error "
            f"{r.parity.max_abs_error:.2e} on {r.parity.samples} samples)"
        )
    return 0
