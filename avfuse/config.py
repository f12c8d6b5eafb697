"""Deployment config files: `avfuse run --config deploy.toml`.

A config file says in TOML what a command line says in flags; it is a serialisation of
the same typed options, so every flag `avfuse run` has is a key (its long name with
underscores) and a new flag is a new key for free:

    source = ["udp://127.0.0.1:5004"]          # a list for a repeatable flag
    av_offset_ms = 120
    sink = ["console", "jsonl:/var/lib/avfuse/events.jsonl"]
    threads = 1
    realtime = false                            # a switch: true or false

    [models.vad]                                # one table per model (--model NAME=PATH)
    path = "/opt/avfuse/models/silero-vad"
    threshold = 0.6                             # per-model flags: --threshold vad=0.6
    min_duration_ms = 250

Every value is checked by the flag's own rules (range, type), and an error names the
key, its line in the file and the accepted values. Flags given on the command line
override the file: a single-valued flag replaces the file's value, and a repeatable
flag given on the command line (e.g. --sink) replaces the file's whole list.

Reload (SIGHUP): the keys in `RELOADABLE` may change while the service runs (models,
their thresholds, sinks, the fusion plan); a changed file that touches any other key,
or that is invalid, is refused and the running config is kept.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avfuse.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: per-model keys of a [models.NAME] table, as the flags they become
MODEL_KEYS = (
    "threshold",
    "off_threshold",
    "min_duration_ms",
    "every_frames",
    "every_ms",
    "values",
)
#: keys a reload may change
RELOADABLE = ("models", "sink", "fusion", *MODEL_KEYS)
#: flags that make no sense in a config file
NOT_IN_FILES = ("config", "help")


@dataclass(frozen=True)
class ConfigFile:
    """A config file read and checked: the flag tokens it stands for, per key."""

    path: Path
    tokens: dict[str, list[str]]  # key -> argv tokens (e.g. "sink" -> ["--sink", "console"])
    models: dict[str, dict[str, Any]]

    def argv(self, *, without: set[str] = frozenset()) -> list[str]:
        """The file as command-line tokens (keys in `without` left out)."""
        out: list[str] = []
        for key, toks in self.tokens.items():
            if key not in without:
                out.extend(toks)
        return out

    def differs(self, other: ConfigFile) -> list[str]:
        """Keys whose values differ between two versions of the file."""
        keys = set(self.tokens) | set(other.tokens)
        return sorted(k for k in keys if self.tokens.get(k) != other.tokens.get(k))


def _line_of(text: str, key: str, table: str | None = None) -> int | None:
    """The 1-based line where `key` is set (inside [table] when given)."""
    in_table = table is None
    for n, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if s.startswith("["):
            in_table = table is not None and s.strip("[] ").replace('"', "") == table
            if table is None:
                in_table = False
            continue
        if (in_table or table is None) and re.match(rf"{re.escape(key)}\s*=", s):
            return n
    return None


def _where(path: Path, text: str, key: str, table: str | None = None) -> str:
    line = _line_of(text, key, table)
    place = f"[{table}] " if table else ""
    return f"{path}" + (f" line {line}" if line else "") + f": {place}{key}"


def _actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.dest: a for a in parser._actions if a.option_strings}


def _check(action: argparse.Action, text: str, where: str) -> None:
    """Run the flag's own type check on one value; errors become one line naming `where`."""
    if action.type is None:
        if action.choices is not None and text not in action.choices:
            raise UsageError(
                f"{where}: {text!r} is not one of {', '.join(map(str, action.choices))}"
            )
        return
    try:
        action.type(text)  # type: ignore[misc]
    except (argparse.ArgumentTypeError, ValueError, TypeError) as e:
        raise UsageError(f"{where}: {e}") from None


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        raise TypeError("a switch")
    if isinstance(v, (int, float, str)):
        return str(v)
    raise TypeError(type(v).__name__)


def read_config(path: str | Path, parser: argparse.ArgumentParser) -> ConfigFile:
    """Read and check a config file against the flags of `parser` (see the module).

    Raises:
        UsageError: unreadable file, TOML syntax (with its line), an unknown key, or a value
            the flag refuses; each one line naming the key and its line.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"--config {p}: cannot read it ({e}); check the path") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"--config {p}: not valid TOML: {e}") from None
    actions = _actions(parser)
    tokens: dict[str, list[str]] = {}
    models: dict[str, dict[str, Any]] = {}
    for key, value in data.items():
        if key == "models":
            models = _models(p, text, value, actions)
            continue
        where = _where(p, text, key)
        action = actions.get(key)
        if action is None or key in NOT_IN_FILES or key in MODEL_KEYS:
            hint = " (it belongs in a [models.NAME] table)" if key in MODEL_KEYS else ""
            known = ", ".join(sorted(k for k in actions if k not in NOT_IN_FILES + MODEL_KEYS))
            raise UsageError(f"{where}: unknown key{hint}; known keys: {known}")
        flag = action.option_strings[-1]
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            if not isinstance(value, bool):
                raise UsageError(f"{where}: must be true or false, got {value!r}")
            on = value if isinstance(action, argparse._StoreTrueAction) else not value
            tokens[key] = [flag] if on else []
            continue
        values = value if isinstance(value, list) else [value]
        if not isinstance(action, argparse._AppendAction) and len(values) != 1:
            raise UsageError(f"{where}: takes one value, got a list of {len(values)}")
        toks = []
        for v in values:
            try:
                s = _scalar(v)
            except TypeError as e:
                raise UsageError(f"{where}: must be a number or a string, not {e}") from None
            _check(action, s, where)
            toks += [f"{flag}={s}"]
        tokens[key] = toks
    for name, table in models.items():
        toks = [f"--model={name}={table['path']}"]
        for key in MODEL_KEYS:
            if key not in table:
                continue
            flag = actions[key].option_strings[-1]
            if key == "values":
                if table[key]:
                    toks.append(f"{flag}={name}")
                continue
            toks.append(f"{flag}={name}={table[key]}")
        tokens[f"models.{name}"] = toks
    return ConfigFile(path=p, tokens=tokens, models=models)


def _models(
    p: Path, text: str, value: Any, actions: dict[str, argparse.Action]
) -> dict[str, dict[str, Any]]:
    if not isinstance(value, dict):
        raise UsageError(f"{_where(p, text, 'models')}: must be tables [models.NAME]")
    out = {}
    for name, table in value.items():
        tname = f"models.{name}"
        if not isinstance(table, dict):
            raise UsageError(f"{p}: [{tname}] must be a table with a path")
        if "path" not in table:  # the bundled model, e.g. to set its cadence or thresholds
            from avfuse.assets import default_model_path

            table = {**table, "path": str(default_model_path())}
        if not isinstance(table["path"], str):
            raise UsageError(
                f"{_where(p, text, 'path', tname)}: must be a string (the model's folder; "
                "leave it out for the bundled model)"
            )
        for key, v in table.items():
            if key == "path":
                continue
            where = _where(p, text, key, tname)
            if key not in MODEL_KEYS:
                raise UsageError(
                    f"{where}: unknown key; a model takes path, {', '.join(MODEL_KEYS)}"
                )
            if key == "values":
                if not isinstance(v, bool):
                    raise UsageError(f"{where}: must be true or false")
                continue
            try:
                s = _scalar(v)
            except TypeError as e:
                raise UsageError(f"{where}: must be a number, not {e}") from None
            _check(actions[key], f"{name}={s}", where)
        out[str(name)] = dict(table)
    return out


def merge_argv(cfg: ConfigFile, argv: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """The config's tokens, then the command line's (flags override the file).

    A repeatable flag on the command line replaces the file's whole list; --model on the
    command line replaces the file's [models] tables.
    """
    given = set()
    actions = _actions(parser)
    for tok in argv:
        if not tok.startswith("--"):
            continue
        name = tok[2:].split("=", 1)[0].replace("-", "_")
        if name in actions:
            given.add(name)
    without = {k for k in given if isinstance(actions[k], argparse._AppendAction)}
    if "model" in given:
        without |= {k for k in cfg.tokens if k.startswith("models.")}
    return [*cfg.argv(without=without), *argv]


def reload_problem(old: ConfigFile, new: ConfigFile) -> str | None:
    """Why `new` cannot replace `old` in a running service, or None when it can."""
    for key in new.differs(old):
        base = key.split(".", 1)[0]
        if base not in RELOADABLE:
            return (
                f"{key} changed, and it cannot change while the service runs (restart the "
                f"service for it); reloadable: {', '.join(RELOADABLE)}"
            )
    return None


EXAMPLE = """# avfuse deploy.toml: the keys are `avfuse run`'s flags (see avfuse run --help).
# Flags on the command line override this file; SIGHUP reloads it
# (models, their thresholds, sinks and the fusion plan may change then).

# sources: one stream each (a file, a URL, camera:N, mic:NAME, synthetic)
source = ["udp://127.0.0.1:5004"]
# or a camera and a microphone as one stream:
# video = "camera:0"
# audio = "mic:default"

av_offset_ms = 0            # how much later the audio arrives than its video (ms)
audio_deadline_ms = 100     # longest wait for late audio (ms)
threads = 1                 # inference threads (0: half the usable cores, 1 to 4)
backend = "ort"             # ort, tensorrt, torch, triton (with triton_url), or auto
device = "cpu"              # cpu, cuda or cuda:N
# on a GPU: ONNX Runtime's TensorRT provider building fp16 engines
# device = "cuda:0"
# provider = "tensorrt"     # ort only: cpu, cuda or tensorrt
# precision = "fp16"        # fp32; fp16 or int8 with the tensorrt provider or backend

sink = ["jsonl:/var/lib/avfuse/events.jsonl"]
quiet = true

# one table per model; without any, the bundled model runs
# [models.digits]
# path = "/opt/avfuse/models/avfuse-late"
# threshold = 0.6           # score that opens a decision
# min_duration_ms = 400     # shorter decisions are not reported
"""


__all__ = [
    "EXAMPLE",
    "MODEL_KEYS",
    "RELOADABLE",
    "ConfigFile",
    "merge_argv",
    "read_config",
    "reload_problem",
]
