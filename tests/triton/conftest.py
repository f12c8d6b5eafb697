"""Fixtures for the Triton tests: a real tritonserver (nvidia-pytriton's) on 127.0.0.1.

The server's only backend is `python`; its stub embeds the interpreter of a Python
environment that must have numpy < 2 (the stub of pytriton 0.7 passes empty tensors
under numpy 2) and onnxruntime. `stub_env` uses $AVFUSE_TRITON_PYTHON_ENV, else the
checkout's `.venv-triton` (made by `scripts/install.sh --all`) when it is such an
environment, else builds one once in pytest's cache folder with pip (numpy<2 and this
environment's onnxruntime version, so the server computes what `ort` does).
Without tritonclient or a tritonserver the tests that need them skip with the reason.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from avfuse.assets import default_model_path
from tests.fixtures.models import write_tiny_model
from tests.triton.kit import missing, need_tritonclient, start_server

ROOT = Path(__file__).resolve().parents[2]
STUB_PACKAGES = ("numpy<2", f"onnxruntime=={importlib.metadata.version('onnxruntime')}")


@pytest.fixture(scope="session")
def install():  # noqa: ANN201 - ServerInstall
    """The tritonserver to run, or skip naming what to install."""
    need_tritonclient()
    from avfuse.errors import BackendUnavailable
    from avfuse.tritonserver import find_tritonserver

    try:
        return find_tritonserver()
    except BackendUnavailable as e:
        missing(f"{e} (pip install --no-deps nvidia-pytriton)")


@pytest.fixture(scope="session")
def stub_env(  # noqa: ANN001
    install, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A Python environment the python backend's stub can run ONNX Runtime in."""
    from avfuse.tritonserver import inspect_python_env, python_env_problem

    given = os.environ.get("AVFUSE_TRITON_PYTHON_ENV") or str(ROOT / ".venv-triton")
    if Path(given).is_dir() and python_env_problem(inspect_python_env(given), install) is None:
        return Path(given)
    cache = getattr(request.config, "cache", None)  # None under -p no:cacheprovider
    where = cache.mkdir("triton-python-env") if cache else tmp_path_factory.mktemp("stub")
    folder = Path(where) / "env"
    stamp = folder / "avfuse-packages.json"
    built = stamp.is_file() and json.loads(stamp.read_text()) == list(STUB_PACKAGES)
    if built and python_env_problem(inspect_python_env(folder), install) is None:
        return folder
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(folder)], check=True, timeout=120)
    pip = subprocess.run(
        [str(folder / "bin/python"), "-m", "pip", "install", "-q", *STUB_PACKAGES],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if pip.returncode != 0:
        missing(f"cannot build the python stub's environment: {pip.stderr.strip()[-300:]}")
    problem = python_env_problem(inspect_python_env(folder), install)
    if problem is not None:
        missing(f"the python stub's environment is unusable: {problem}")
    stamp.write_text(json.dumps(list(STUB_PACKAGES)))
    return folder


@pytest.fixture(scope="session")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository with the bundled model and the tiny stateful model, both variants."""
    from avfuse.export.triton import export_triton

    root = tmp_path_factory.mktemp("triton")
    repository = root / "repo"
    export_triton(default_model_path(), repository)
    write_tiny_model(root / "stateful", stateful=True)
    export_triton(root / "stateful", repository, max_batch=4)
    return repository


@pytest.fixture(scope="session")
def server(repo: Path, stub_env: Path, install) -> Iterator:  # noqa: ANN001
    """One server for the read-only tests: the python variants of both models."""
    s = start_server(repo, ("avfuse-late_python", "tiny-stateful_python"), stub_env, install)
    try:
        yield s
    finally:
        s.stop()
