"""One-line messages on stderr, as text or as JSON (`--log-format json`, for journald,
containers and log shippers).

    text  avfuse run: error: the model file ... does not exist: ...
    json  {"type": "log", "level": "error", "command": "run", "message": "...",
           "wall_time": "2026-12-01T21:11:36.123Z"}

Records (warnings, faults) keep their own JSON layout in JSON mode (avfuse.engine.records).
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from avfuse.engine.records import utc_now

FORMATS = ("text", "json")
_state = {"format": "text"}


def set_format(fmt: str) -> None:
    """Choose how `log` writes (one of FORMATS)."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {FORMATS}")
    _state["format"] = fmt


def json_logs() -> bool:
    """True when messages are written as JSON."""
    return _state["format"] == "json"


def log(level: str, message: str, *, command: str | None = None, out: TextIO | None = None,
        **fields: Any) -> None:  # fmt: skip
    """Write one message line to stderr (or `out`)."""
    stream = out or sys.stderr
    if json_logs():
        rec = {"type": "log", "level": level, "command": command, "message": message, **fields,
               "wall_time": utc_now()}  # fmt: skip
        stream.write(json.dumps(rec) + "\n")
    else:
        prefix = f"avfuse {command}: " if command else "avfuse: "
        tag = f"{level}: " if level in ("error", "warning") else ""
        stream.write(prefix + tag + message + "\n")
    stream.flush()


__all__ = ["FORMATS", "json_logs", "log", "set_format"]
