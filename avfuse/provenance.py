"""Where a result came from: the git commit and the versions of the packages that decide it.

Model manifests and benchmark results both record this, so a number can be traced
to the code and libraries that produced it. Versions come from package metadata,
so asking never imports torch or onnx.
"""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from collections.abc import Iterable
from pathlib import Path


def git_commit(repo: Path | None = None, *, short: bool = False) -> str | None:
    """HEAD commit of the checkout holding avfuse (None outside a checkout or without git)."""
    where = repo or Path(__file__).resolve().parents[1]
    args = ["git", "-C", str(where), "rev-parse", *(["--short"] if short else []), "HEAD"]
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (r.stdout.strip() or None) if r.returncode == 0 else None


def package_versions(names: Iterable[str]) -> dict[str, str | None]:
    """Python's version and each distribution's installed version (None: not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out
