"""Argument types and checks of the avfuse commands: bad input stops before any work.

Every numeric option is parsed by a `type=` validator from this module, so a value
out of its documented range is refused by argparse itself: exit 2 and one line
naming the option, the value given and the range accepted, e.g.

    avfuse run: error: argument --av-offset-ms: expected a finite number in
    [-10000, 10000] ms, got 'nan' (see `avfuse run --help`)

(printed on one line). Checks that need the file system (an input that must be read, an
output that must be writable) run in each command's `preflight`, before the command
starts its real work, and raise `UsageError` (exit 2 too). Nothing here creates or
truncates a file: a run that fails its checks leaves the disk as it was.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import stat
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NoReturn

from avfuse.errors import UsageError

#: largest seed accepted everywhere (numpy's legacy 32-bit seed range)
SEED_MAX = 2**32 - 1
#: thread options accept at most this many threads per CPU core
THREADS_PER_CORE = 4


def cpu_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def _interval(lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False) -> str:
    return f"{'(' if lo_open else '['}{_num(lo)}, {_num(hi)}{')' if hi_open else ']'}"


def _fail(expected: str, text: str, note: str = "") -> NoReturn:
    raise argparse.ArgumentTypeError(
        f"expected {expected}{f' ({note})' if note else ''}, got {text!r}"
    )


# ---------------------------------------------------------------------- numbers


def finite_float(
    lo: float,
    hi: float,
    *,
    unit: str = "",
    lo_open: bool = False,
    note: str = "",
) -> Callable[[str], float]:
    """A `type=` for a finite float in [lo, hi] (or (lo, hi] with `lo_open`).

    Args:
        lo, hi: the accepted range.
        unit: appended to the range in the message ("ms", "s").
        lo_open: exclude `lo` itself (for "> 0" quantities such as a duration).
        note: what special values mean, added to the message.
    """
    where = _interval(lo, hi, lo_open=lo_open) + (f" {unit}" if unit else "")

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            _fail(f"a number in {where}", text, note)
        if not math.isfinite(value) or not (lo < value if lo_open else lo <= value) or value > hi:
            _fail(f"a finite number in {where}", text, note)
        return value

    parse.__name__ = "number"
    return parse


def per_model(parse: Callable[[str], Any]) -> Callable[[str], tuple[str | None, Any]]:
    """A `type=` for `[MODEL=]VALUE`: (model name or None, the value parsed by `parse`)."""

    def parse_named(text: str) -> tuple[str | None, Any]:
        name, sep, value = text.rpartition("=")
        if sep and name.strip():
            return name.strip(), parse(value)
        return None, parse(text)

    parse_named.__name__ = getattr(parse, "__name__", "value")
    return parse_named


def _int_or_none(text: str) -> int | None:
    """The integer `text` writes in ASCII decimal digits (surrounding blanks allowed)."""
    t = text.strip()
    return int(t) if re.fullmatch(r"[+-]?[0-9]{1,30}", t) else None


def int_range(lo: int, hi: int, *, unit: str = "", note: str = "") -> Callable[[str], int]:
    """A `type=` for an integer in [lo, hi] (ASCII decimal digits only: no 1e3, 2.0, 1_000)."""
    where = _interval(lo, hi) + (f" {unit}" if unit else "")

    def parse(text: str) -> int:
        value = _int_or_none(text)
        if value is None or not lo <= value <= hi:
            _fail(f"an integer in {where}", text, note)
        return value

    parse.__name__ = "integer"
    return parse


def int_list(
    lo: int, hi: int, *, ascending: bool = False, note: str = ""
) -> Callable[[str], tuple[int, ...]]:
    """A `type=` for comma-separated integers, each in [lo, hi], at least one."""
    order = ", strictly ascending" if ascending else ""
    expected = f"comma-separated integers in {_interval(lo, hi)}{order}"

    def parse(text: str) -> tuple[int, ...]:
        values: list[int] = []
        for item in (x for x in text.split(",") if x.strip()):
            v = _int_or_none(item)
            if v is None or not lo <= v <= hi or (ascending and values and v <= values[-1]):
                _fail(expected, text, note)
            values.append(v)
        if not values:
            _fail(expected, text, note)
        return tuple(values)

    parse.__name__ = "integers"
    return parse


def threads_help(minimum: int) -> str:
    """The range of a thread option as its help shows it, with this machine's numbers."""
    cores = cpu_cores()
    return (
        f"{minimum}..{THREADS_PER_CORE * cores} ({THREADS_PER_CORE} x the {cores} CPU cores here)"
    )


def _threads_note(cores: int) -> str:
    return f"at most {THREADS_PER_CORE} x the {cores} CPU core{'s' if cores > 1 else ''} here"


def threads(minimum: int = 0) -> Callable[[str], int]:
    """A `type=` for a thread count in [minimum, 4 x the CPU cores of this machine]."""
    cores = cpu_cores()
    note = _threads_note(cores)
    if minimum == 0:
        note = "0: the backend's default; " + note
    return int_range(minimum, THREADS_PER_CORE * cores, note=note)


def thread_list() -> Callable[[str], tuple[int, ...]]:
    """A `type=` for comma-separated thread counts, each in [1, 4 x the CPU cores]."""
    cores = cpu_cores()
    return int_list(1, THREADS_PER_CORE * cores, note=_threads_note(cores))


#: a seed: a non-negative integer
seed = int_range(0, SEED_MAX)


# ---------------------------------------------------------------------- words


def name_list(choices: Iterable[str]) -> Callable[[str], tuple[str, ...]]:
    """A `type=` for comma-separated names, each one of `choices`, at least one."""
    allowed = tuple(choices)

    def parse(text: str) -> tuple[str, ...]:
        names = tuple(x.strip() for x in text.split(",") if x.strip())
        if not names or any(n not in allowed for n in names):
            _fail(f"comma-separated names from {', '.join(allowed)}", text)
        return names

    parse.__name__ = "names"
    return parse


def one_of(
    choices: Callable[[], Iterable[str]], *, what: str, default: str | None = None
) -> Callable[[str], str]:
    """A `type=` for one name of a registry, looked up only for a name other than `default`.

    argparse passes string defaults through `type=` too; the default needs no registry,
    so parsing the defaults imports nothing.
    """

    def parse(text: str) -> str:
        if default is not None and text == default:
            return text
        allowed = tuple(choices())
        if text not in allowed:
            _fail(f"a {what}: one of {', '.join(allowed)}", text)
        return text

    parse.__name__ = what
    return parse


def device(text: str) -> str:
    """A `type=` for an inference device: cpu, cuda or cuda:N (N in [0, 63])."""
    m = re.fullmatch(r"cpu|cuda(?::(\d{1,2}))?", text)
    if m is None or (m.group(1) is not None and int(m.group(1)) > 63):
        _fail("cpu, cuda or cuda:N with N in [0, 63]", text)
    return text


def digit_string(text: str) -> str:
    """A `type=` for the digits of a scene: 1 to 50 characters, each 0-9."""
    if not re.fullmatch(r"[0-9]{1,50}", text):
        _fail("1 to 50 digits 0-9, e.g. 0123456789", text)
    return text


# ---------------------------------------------------------------------- files


def _shown(p: Path | str) -> str:
    """A path as messages print it: as it is, or quoted with escapes if it has control chars."""
    text = str(p)
    return text if text.isprintable() else repr(text)


def check_output_file(path: str | os.PathLike[str], flag: str) -> Path:
    """Check that `path` can be written later, without creating or truncating it.

    Accepted: an existing regular file that opens for writing (opened in append mode
    and closed at once: the content is kept), or a missing file whose nearest existing
    ancestor is a folder in which a file can be created (missing folders in between are
    created only when the output is written).

    Raises:
        UsageError: naming `flag`, the path and why it cannot be written.
    """
    p = Path(path)
    q = _shown(p)
    fix = f"give {flag} a writable file path"
    if str(path) == "":
        raise UsageError(f"{flag} is empty: {fix}")
    try:
        st = p.stat()
    except (FileNotFoundError, NotADirectoryError):  # the ancestor check says which
        st = None
    except OSError as e:
        raise UsageError(f"{flag} {q}: cannot be checked ({e.strerror or e}): {fix}") from None
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise UsageError(
                f"{flag} {q} is a folder, not a file: {fix}, e.g. {_shown(p / 'out.json')}"
            )
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"{flag} {q} is not a regular file: {fix}")
        try:
            with open(p, "ab"):
                pass
        except OSError as e:
            raise UsageError(f"{flag} {q} cannot be written ({e.strerror or e}): {fix}") from None
        return p
    _check_creatable(p, flag, fix)
    return p


def check_output_folder(path: str | os.PathLike[str], flag: str) -> Path:
    """Check that `path` is a folder or can be created as one (creating nothing now).

    Raises:
        UsageError: `path` is a file, or its nearest existing ancestor is not a
            writable folder.
    """
    p = Path(path)
    q = _shown(p)
    fix = f"give {flag} a folder that exists or can be created"
    if str(path) == "":
        raise UsageError(f"{flag} is empty: {fix}")
    if p.exists():
        if not p.is_dir():
            raise UsageError(f"{flag} {q} is a file, not a folder: {fix}")
        _probe(p, flag, p, fix)
        return p
    _check_creatable(p, flag, fix)
    return p


def _check_creatable(p: Path, flag: str, fix: str) -> None:
    """The nearest existing ancestor of `p` must be a folder that takes new entries."""
    q = _shown(p)
    ancestor = p.absolute().parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        if ancestor.is_symlink():  # a dangling link: nothing can be created through it
            raise UsageError(f"{flag} {q}: {_shown(ancestor)} is a broken link: {fix}")
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UsageError(f"{flag} {q}: {_shown(ancestor)} is a file, not a folder: {fix}")
    _probe(ancestor, flag, p, fix)


def _probe(folder: Path, flag: str, p: Path, fix: str) -> None:
    """Create and remove a temporary file in `folder` (permission bits do not stop root)."""
    q = _shown(p)
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".avfuse-probe-"):
            pass
    except OSError as e:
        raise UsageError(
            f"{flag} {q}: nothing can be created in {_shown(folder)} ({e.strerror or e}): {fix}"
        ) from None


def check_input_file(
    path: str | os.PathLike[str], flag: str, *, fix: str = "check the path"
) -> Path:
    """Check that `path` is an existing regular file that can be opened for reading.

    Raises:
        UsageError: naming `flag`, the path, what is wrong and `fix`.
    """
    p = Path(path)
    q = _shown(p)
    if not p.exists():
        raise UsageError(f"{flag} {q} does not exist: {fix}")
    if not p.is_file():
        raise UsageError(f"{flag} {q} is not a file: {fix}")
    try:
        with open(p, "rb"):
            pass
    except OSError as e:
        raise UsageError(f"{flag} {q} cannot be read ({e.strerror or e}): {fix}") from None
    return p


def read_truth(path: str | os.PathLike[str], flag: str = "--truth") -> list[dict[str, Any]]:
    """Read and check a ground-truth file: a JSON list of {label, start, end} records.

    `label` is a string (or an integer), `start` and `end` finite numbers of stream
    seconds with start <= end; other keys are kept as they are.

    Raises:
        UsageError: naming the file and the first bad record.
    """
    p = check_input_file(path, flag)
    q = _shown(p)
    fix = "give a JSON list of {label, start, end} records in stream seconds"
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, RecursionError) as e:
        why = getattr(e, "strerror", None) or type(e).__name__
        raise UsageError(f"{flag} {q} cannot be read ({why}): {fix}") from None
    except json.JSONDecodeError as e:
        raise UsageError(
            f"{flag} {q} is not valid JSON ({e.msg} at line {e.lineno}): {fix}"
        ) from None
    if not isinstance(data, list):
        raise UsageError(f"{flag} {q} holds a JSON {type(data).__name__}, not a list: {fix}")
    for i, rec in enumerate(data):
        where = f"{flag} {q}: record [{i}]"
        if not isinstance(rec, dict):
            raise UsageError(f"{where} is not an object: {fix}")
        for key in ("label", "start", "end"):
            if key not in rec:
                raise UsageError(f"{where} has no {key!r}: {fix}")
        label = rec["label"]
        if isinstance(label, bool) or not isinstance(label, (str, int)):
            raise UsageError(f"{where}: label must be a string, got {label!r}: {fix}")
        for key in ("start", "end"):
            v = rec[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise UsageError(f"{where}: {key} must be a finite number, got {v!r}: {fix}")
        if rec["start"] > rec["end"]:
            raise UsageError(f"{where}: start {rec['start']} is after end {rec['end']}: {fix}")
    return data


# ---------------------------------------------------------------------- parsers


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line: the problem and where help is."""

    def error(self, message: str) -> NoReturn:
        """Print `PROG: error: MESSAGE (see `PROG --help`)` on stderr and exit 2."""
        text = " ".join(message.splitlines())
        m = re.fullmatch(r"argument (\S+): expected one argument", text)
        if m is not None:  # e.g. "--av-offset-ms -1e3": argparse takes -1e3 for an option
            flag = m.group(1).split("/")[-1]
            text += f"; write a value that starts with '-' as {flag}=VALUE"
        self.exit(2, f"{self.prog}: error: {text} (see `{self.prog} --help`)\n")


class CommandParser(OneLineParser):
    """The parser of one sub-command: also refuses unknown arguments itself, in one line.

    (The sub-command sees every argument after its name, so whatever it does not know
    is unknown to the whole command line.)
    """

    def parse_known_args(  # type: ignore[override]
        self, args: list[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """As ArgumentParser's, with leftover arguments an error."""
        for token in sys.argv[1:] if args is None else args:
            if token == "--":
                break
            if token.startswith("-") and token.endswith("=--"):
                self._refuse_dashes(token[:-3])
        ns, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return ns, extras

    def _refuse_dashes(self, option: str) -> NoReturn:
        """OPTION=-- : argparse would store [] and skip the type check; refuse it here."""
        action = self._option_string_actions.get(option)
        check = getattr(action, "type", None)
        if callable(check):
            try:
                check("--")
            except (argparse.ArgumentTypeError, TypeError, ValueError) as e:
                self.error(f"argument {option}: {e}")
        self.error(f"argument {option}: expected one argument, got '--'")


def add_command(sub: argparse._SubParsersAction, name: str, **kwargs: Any) -> CommandParser:
    """`sub.add_parser(name, ...)` whose errors are one line (`CommandParser`)."""
    p = sub.add_parser(name, **kwargs)
    if not isinstance(p, CommandParser):
        # the top-level parser picked the class; a command's own errors are decided here
        p.__class__ = CommandParser
    return p  # type: ignore[return-value]
