"""The `avfuse` command: a thin shell over the Python API.

Each sub-command lives in `avfuse.commands.<name>` and exposes
`register(subparsers)`; this module only builds the parser, runs the chosen
command and turns errors into the exit codes of the public contract:
0 done, 2 bad input or usage (one line naming the problem and the fix),
1 a failure at run time, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from avfuse import __version__
from avfuse.errors import AvfuseError, exit_code_for

#: sub-command modules, in the order `--help` lists them
COMMANDS = ("demo", "run", "devices", "info", "train", "export", "bench")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (sub-command modules are imported, their heavy deps are not)."""
    parser = argparse.ArgumentParser(
        prog="avfuse",
        description="Real-time audio-visual fusion inference: capture camera and microphone, "
        "align them on one clock, and recognise what is seen and heard.",
        epilog="Run `avfuse COMMAND --help` for a command's options. Exit codes: 0 done, "
        "2 bad input or usage, 1 failure at run time, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"avfuse {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"avfuse.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"avfuse.commands.{name}":
                continue  # command not built into this version
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("avfuse: interrupted", file=sys.stderr)
        return 130
    except AvfuseError as e:
        print(f"avfuse {args.command}: error: {e}", file=sys.stderr)
        return exit_code_for(e)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
