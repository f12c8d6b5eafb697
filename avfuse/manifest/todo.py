"""Values a draft manifest leaves for the user: the "TODO" placeholder and the listing of
every field that still holds it.

A draft (`avfuse manifest init`) writes "TODO" where only the user knows the value (a
sample rate, a chunk, colour order, class names). The parser refuses such a field like
any wrong value, but stops at the first; `load_complete` loads a manifest and, when it
is refused, names every TODO field of the file in the one-line error, so one look at
`avfuse info` says all that is left to fill.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from avfuse.errors import ManifestError
from avfuse.manifest.files import load_manifest
from avfuse.manifest.spec import MANIFEST_NAME, Manifest

#: the placeholder of a value only the user knows
TODO = "TODO"


def todo_fields(data: Any, where: str = "") -> list[str]:
    """Dotted paths (as ManifestError names fields) of every value that is still TODO.

    "comment" entries are prose and are not looked into.
    """
    found: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "comment":
                continue
            path = f"{where}.{key}" if where else str(key)
            found.extend([path] if value == TODO else todo_fields(value, path))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            path = f"{where}[{i}]"
            found.extend([path] if value == TODO else todo_fields(value, path))
    return found


def _manifest_file(path: Path) -> Path:
    """The file `load_manifest` reads for `path` (it has already found it)."""
    if path.is_dir():
        return path / MANIFEST_NAME
    if path.suffix == ".onnx":
        return path.parent / MANIFEST_NAME
    return path


def incomplete(path: str | Path, error: ManifestError) -> ManifestError:
    """`error` with every TODO field of the manifest at `path` named, or `error` itself
    when the file holds none (or cannot be read again)."""
    file = _manifest_file(Path(path))
    try:
        todos = todo_fields(json.loads(file.read_text(encoding="utf-8")))
    except (OSError, ValueError, RecursionError):
        return error
    if not todos:
        return error
    fix = f"fill them as the comments in {file} say"
    at = error.field or ""
    # a block's own check (colour of a video block) names the block: the TODO inside it
    hit = next((t for t in todos if t == at or t.startswith(at + ".")), None) if at else None
    if hit is not None:
        rest = [t for t in todos if t != hit]
        also = f"; also missing: {', '.join(rest)}" if rest else ""
        return ManifestError(f'is missing (still "{TODO}"){also}; {fix}', field=hit)
    cause = str(error)
    return ManifestError(f"{cause}; and still {TODO}: {', '.join(todos)}; {fix}")


def load_complete(path: str | Path, **kw: Any) -> Manifest:
    """`load_manifest`, whose error names every field still TODO (see the module)."""
    try:
        return load_manifest(path, **kw)
    except ManifestError as e:
        err = incomplete(path, e)
        if err is e:
            raise
        raise err from None


__all__ = ["TODO", "incomplete", "load_complete", "todo_fields"]
