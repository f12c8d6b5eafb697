"""The `avfuse` command: a thin shell over the Python API.

Each sub-command lives in `avfuse.commands.<name>` and exposes
`register(subparsers)`; this module only builds the parser, runs the chosen
command and turns outcomes into the exit codes of the public contract:
0 done, 2 bad input or usage (one line naming the problem and the fix),
1 a failure at run time (including a sink that could not write: its records were
lost), 130 SIGINT, 143 SIGTERM, 129 SIGHUP, 141 stdout closed by its reader. Signals
drain the run first (see `avfuse.signals`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from avfuse import __version__
from avfuse.commands._args import CommandParser, OneLineParser
from avfuse.engine.control import StopToken
from avfuse.errors import AvfuseError, StdoutClosed, exit_code_for
from avfuse.logs import log, set_format
from avfuse.signals import drain_on_signals, exit_status

#: sub-command modules, in the order `--help` lists them
COMMANDS = (
    "demo",
    "run",
    "calibrate",
    "devices",
    "doctor",
    "info",
    "manifest",
    "config",
    "train",
    "export",
    "build",
    "serve",
    "bench",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (sub-command modules are imported, their heavy deps are not)."""
    parser = OneLineParser(
        prog="avfuse",
        description="Real-time audio-visual fusion inference: capture camera and microphone, "
        "align them on one clock, and recognise what is seen and heard.",
        epilog="Run `avfuse COMMAND --help` for a command's options. Exit codes: 0 done, "
        "2 bad input or usage, 1 failure at run time (an output that could not be written "
        "included), 130 SIGINT, 143 SIGTERM, 129 SIGHUP (each after draining the run), "
        "141 stdout closed by its reader.",
    )
    parser.add_argument("--version", action="version", version=f"avfuse {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CommandParser)
    for name in COMMANDS:
        importlib.import_module(f"avfuse.commands.{name}").register(sub)
    return parser


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's last flush cannot fail noisily."""
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, sys.stdout.fileno())
        os.close(fd)
    except (OSError, ValueError):
        pass


def _with_config(parser: argparse.ArgumentParser, argv: list[str], path: str) -> argparse.Namespace:
    """The arguments of `avfuse run --config FILE ...`: the file's, then the command line's."""
    from avfuse.config import merge_argv, read_config

    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    run_parser = sub.choices["run"]
    cfg = read_config(path, run_parser)
    rest = argv[argv.index("run") + 1 :]
    args = parser.parse_args(["run", *merge_argv(cfg, rest, run_parser)])
    args.config_file = cfg
    args.cli_argv = rest
    args.run_parser = run_parser
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    token = StopToken()
    set_format(getattr(args, "log_format", "text") or "text")
    try:
        if getattr(args, "config", None):
            args = _with_config(parser, argv, args.config)
            set_format(getattr(args, "log_format", "text") or "text")
        args.stop_token = token
        if getattr(args, "drains", False):
            on_hup = None
            if getattr(args, "config_file", None) is not None:
                # a service reloads on SIGHUP (the handler only hands it on)
                def on_hup() -> None:
                    handler = getattr(args, "on_hup", None)
                    if handler is not None:
                        handler()

            with drain_on_signals(token, on_hup=on_hup):
                rc = int(args.func(args) or 0)
        else:
            rc = int(args.func(args) or 0)
    except KeyboardInterrupt:
        log("info", "interrupted", command=args.command)
        return 130
    except StdoutClosed:
        _quiet_stdout()
        return StdoutClosed.exit_code
    except BrokenPipeError:
        _quiet_stdout()
        return StdoutClosed.exit_code
    except AvfuseError as e:
        log("error", str(e), command=args.command)
        return exit_code_for(e)
    code = exit_status(token.reason)
    if code is not None:
        log("info", f"stopped by {token.reason}; output drained", command=args.command)
        return code
    return rc


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
