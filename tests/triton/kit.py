"""Helpers of the Triton tests (fixtures are in conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def missing(reason: str) -> None:
    """Skip naming what to install; under CI, where `install.sh --all` installs it, fail.

    A skipped Triton test in CI would be a test counted as run that never ran.
    """
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI runs `bash scripts/install.sh --all`, which installs it)")
    pytest.skip(reason)


def need_tritonclient() -> None:
    """Skip (with the install command) when tritonclient is missing."""
    try:
        import tritonclient.grpc  # noqa: F401
        import tritonclient.http  # noqa: F401
    except (ImportError, RuntimeError) as e:
        missing(f"tritonclient is not installed ({e}): pip install 'tritonclient[grpc,http]'")


def start_server(repository: Path, models: tuple[str, ...], stub_env: Path, install, **ports):  # noqa: ANN001, ANN003, ANN201
    """A started TritonServer on free ports (or the ones given)."""
    from avfuse.tritonserver import TritonServer

    kw = {"grpc_port": 0, "http_port": 0, "metrics_port": 0, **ports}
    server = TritonServer(
        repository=repository, models=models, install=install, python_env=stub_env, **kw
    )
    return server.start(ready_timeout_s=120)


def env() -> dict[str, str]:
    """The environment of an `avfuse` subprocess (this checkout first on the path)."""
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    return e
