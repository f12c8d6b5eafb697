"""`avfuse config`: an example deployment config, and checking one."""

from __future__ import annotations

import argparse

from avfuse.commands import _args


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `config` sub-command."""
    p = _args.add_command(
        sub,
        "config",
        help="print an example deploy.toml, or check one",
        description="A config file holds `avfuse run`'s options for a service: its keys are "
        "run's flags (with underscores), one [models.NAME] table per model. `avfuse run "
        "--config FILE` reads it (flags given on the command line override it) and reloads "
        "it on SIGHUP. Exits 2 naming the key and line of a bad value.",
    )
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--example", action="store_true", help="print a commented example")
    g.add_argument("--check", metavar="FILE.toml", help="check a config file and exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the example, or check a file with run's own flag rules."""
    from avfuse.config import EXAMPLE, read_config

    if args.example:
        print(EXAMPLE, end="")
        return 0
    from avfuse.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    cfg = read_config(args.check, sub.choices["run"])
    n = sum(1 for k in cfg.tokens if not k.startswith("models."))
    print(f"{cfg.path}: valid ({n} option(s), {len(cfg.models)} model(s))")
    return 0
