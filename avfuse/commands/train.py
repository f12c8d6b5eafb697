"""`avfuse train`: train one zoo model, or the whole zoo with its accuracy report."""

from __future__ import annotations

import argparse
from pathlib import Path

from avfuse.errors import UsageError
from avfuse.models.zoo import ZOO

ZOO_NAMES = tuple(ZOO)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `train` sub-command."""
    p = sub.add_parser(
        "train",
        help="train a fusion model (or the whole zoo) on AV-digits",
        description="Train a model of the zoo on the AV-digits data set (generated and cached "
        "on first use) with modality dropout, SpecAugment and image jitter; early stopping on "
        "validation accuracy. Writes checkpoint.pt and metrics.json into --out. With --zoo, "
        "trains every model, writes the accuracy report (clean, audio missing, video missing, "
        "low SNR) to --results and the README table, and exports the best fused model as the "
        "bundled default. Needs: pip install 'avfuse[train,export,data]'.",
        epilog="Models: audio, video (unimodal baselines); early, late, attention, hybrid "
        "(fused, inputs audio + image + mask). Example: avfuse train --model hybrid --epochs 12",
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--model", choices=ZOO_NAMES, help="the zoo model to train")
    what.add_argument("--zoo", action="store_true", help="train every zoo model and report")
    p.add_argument("--epochs", type=int, default=16, help="maximum epochs (default 16)")
    p.add_argument("--seed", type=int, default=0, help="seed for weights, data order, augmentation")
    p.add_argument("--batch-size", type=int, default=64, help="samples per step (default 64)")
    p.add_argument("--lr", type=float, default=3e-3, help="peak AdamW learning rate")
    p.add_argument("--patience", type=int, default=5, help="early-stopping patience in epochs")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument(
        "--p-audio-missing",
        type=float,
        default=0.15,
        help="modality dropout: share of training samples without audio (default 0.15)",
    )
    p.add_argument(
        "--p-video-missing",
        type=float,
        default=0.15,
        help="modality dropout: share of training samples without video (default 0.15)",
    )
    p.add_argument(
        "--out", type=Path, default=None, help="output folder (default runs/<model> or runs/zoo)"
    )
    p.add_argument("--tiny", action="store_true", help="tiny data set (for tests; seconds)")
    p.add_argument(
        "--quiet", action="store_true", help="no progress bars (one line per epoch still)"
    )
    p.add_argument(
        "--results",
        type=Path,
        default=Path("benchmarks/results/accuracy.json"),
        help="--zoo: where to write the accuracy report",
    )
    p.add_argument(
        "--readme",
        type=Path,
        default=Path("README.md"),
        help="--zoo: README whose accuracy-table markers get the table",
    )
    p.add_argument(
        "--reuse",
        action="store_true",
        help="--zoo: reuse members already trained in --out on the same data version",
    )
    p.add_argument(
        "--no-bundle",
        action="store_true",
        help="--zoo: do not export the best fused model into avfuse/assets/model",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train as asked and print where the results went."""
    from avfuse.models.augment import AugmentConfig
    from avfuse.models.train import TrainConfig

    if args.epochs < 1 or args.threads < 1:
        raise UsageError("--epochs and --threads must be >= 1")
    pa, pv = args.p_audio_missing, args.p_video_missing
    if pa < 0 or pv < 0 or pa + pv > 1:
        raise UsageError("--p-audio-missing and --p-video-missing must be >= 0 with a sum <= 1")
    cfg = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        patience=args.patience,
        seed=args.seed,
        threads=args.threads,
        augment=AugmentConfig(p_audio_missing=pa, p_video_missing=pv),
    )
    data_config = _data_config(args.tiny)
    progress = not args.quiet
    if args.zoo:
        return _zoo(args, cfg, data_config, progress)
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


def _data_config(tiny: bool):
    from avfuse.data import DataConfig

    return DataConfig.tiny() if tiny else DataConfig()


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
