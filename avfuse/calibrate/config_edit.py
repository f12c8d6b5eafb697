"""Saving a measured offset in a deployment config (`avfuse run --config FILE`).

The offset goes under the key `avfuse run` reads for `--av-offset-ms`: `av_offset_ms`,
at the top level (avfuse has one offset per run, no per-source key). A new file gets
just that key. In an existing file only that key's value changes: the line that sets
it is edited in place (its comment kept), or, when there is none, one line is added
after the comments at the top; every other byte stays as it was. Before anything is
written the edited text is checked twice: it must parse to exactly the old keys with
the new offset, and `avfuse run`'s own config reader must accept it. Otherwise nothing
is written and the message says why. The file is replaced in one rename, so a reader
never sees half of it.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

from avfuse.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: the config key (and `avfuse run` flag, with dashes) the offset is saved as
KEY = "av_offset_ms"
_LINE = re.compile(
    rf"""^(?P<lead>[ \t]*(?:{KEY}|"{KEY}"|'{KEY}')[ \t]*=[ \t]*)"""
    r"""(?P<value>"[^"\n]*"|'[^'\n]*'|[^\s#]+)(?P<rest>[ \t]*(?:#.*)?)$""",
    re.MULTILINE,
)


def _value(offset_ms: float) -> str:
    return f"{round(offset_ms, 1):.1f}"


def _edited(text: str, offset_ms: float, note: str) -> tuple[str, str | None]:
    """The text with the key set, and the value it had (None when the key was added)."""
    first_table = re.search(r"^[ \t]*\[", text, re.MULTILINE)
    top_end = first_table.start() if first_table else len(text)
    for m in _LINE.finditer(text, 0, top_end):
        new = text[: m.start("value")] + _value(offset_ms) + text[m.end("value") :]
        return new, m.group("value")
    lines = text.splitlines(keepends=True)
    at = 0
    while at < len(lines) and (not lines[at].strip() or lines[at].lstrip().startswith("#")):
        at += 1
    if lines and not lines[-1].endswith("\n") and at == len(lines):
        lines[-1] += "\n"
    line = f"{KEY} = {_value(offset_ms)}  # {note}\n" if note else f"{KEY} = {_value(offset_ms)}\n"
    return "".join([*lines[:at], line, *lines[at:]]), None


def _check_with_run(path: Path, shown: Path) -> None:
    """`avfuse run --config` must accept the file (its own reader, its own flag rules)."""
    import argparse

    from avfuse.cli import build_parser
    from avfuse.config import read_config

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    try:
        read_config(path, sub.choices["run"])
    except UsageError as e:
        problem = str(e).replace(str(path), str(shown))
        raise UsageError(
            f"--write-config {shown}: not written, avfuse run would refuse it ({problem}); "
            f"fix the file (avfuse config --check {shown}) and save the offset again"
        ) from None


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _prepare(p: Path, offset_ms: float, note: str) -> tuple[str, str, bool]:
    """(new text, what is done, whether the file exists), or UsageError (see write_offset)."""
    if p.is_dir():
        raise UsageError(f"--write-config {p} is a folder: give a file such as {p}/deploy.toml")
    if not p.exists():
        if not p.parent.is_dir():
            raise UsageError(f"--write-config {p}: the folder {p.parent} does not exist")
        header = "# avfuse deploy config (keys: avfuse run's flags; see avfuse config --example)\n"
        text, _ = _edited(header, offset_ms, note)
        return text, f"created {p} with {KEY} = {_value(offset_ms)}", False
    try:
        old = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"--write-config {p}: cannot read it ({e}); check the path") from None
    try:
        before = tomllib.loads(old)
    except tomllib.TOMLDecodeError as e:
        raise UsageError(
            f"--write-config {p} is not valid TOML ({e}): fix it, or save the offset to "
            "another file"
        ) from None
    text, was = _edited(old, offset_ms, note)
    try:
        after = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        after = None
    if after != {**before, KEY: round(offset_ms, 1)}:
        raise UsageError(
            f"--write-config {p}: {KEY} is set in a way that cannot be edited alone "
            f"(inside a multi-line string?): set {KEY} = {_value(offset_ms)} by hand"
        )
    if was is None:
        return text, f"added {KEY} = {_value(offset_ms)} to {p}", True
    return text, f"set {KEY} = {_value(offset_ms)} in {p} (was {was})", True


def _store(p: Path, text: str, exists: bool, *, write: bool) -> None:
    """Write `text` beside `p`, check it with avfuse run's reader, then rename it over `p`."""
    try:
        fd, tmp_name = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".toml")
    except OSError as e:
        raise UsageError(f"--write-config {p}: cannot write in {p.parent} ({e.strerror})") from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        _check_with_run(tmp, p)
        if write:
            os.chmod(tmp, p.stat().st_mode & 0o7777 if exists else 0o666 & ~_umask())
            os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)


def check_offset_target(path: str | os.PathLike[str]) -> None:
    """Check before a measurement that `write_offset` will be able to save into `path`.

    Raises:
        UsageError: as `write_offset` would; nothing is written.
    """
    p = Path(path)
    text, _, exists = _prepare(p, 0.0, "")
    _store(p, text, exists, write=False)


def write_offset(path: str | os.PathLike[str], offset_ms: float, *, note: str = "") -> str:
    """Set `av_offset_ms` in the config file at `path` (created when missing).

    Args:
        path: the TOML file.
        offset_ms: the offset (ms, positive: audio late), saved to 0.1 ms.
        note: a comment for a line that is added (not for one that is edited).

    Returns:
        What was done, one line ("created FILE ...", "set av_offset_ms = X in FILE (was 0)").

    Raises:
        UsageError: the path is a folder, the file cannot be read or is not valid TOML, or
            the edit would change anything but the offset or give a file `avfuse run`
            refuses; the file is left as it was.
    """
    p = Path(path)
    text, done, exists = _prepare(p, offset_ms, note)
    _store(p, text, exists, write=True)
    return done


__all__ = ["KEY", "check_offset_target", "write_offset"]
