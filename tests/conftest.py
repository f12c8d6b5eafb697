"""Suite-wide pytest set-up: GPU tests skip cleanly (with the reason) where no GPU exists."""

from __future__ import annotations

import shutil
import subprocess

import pytest


def _gpu_available() -> bool:
    if shutil.which("nvidia-smi") is None:
        return False
    try:
        return subprocess.run(["nvidia-smi", "-L"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked `gpu` on machines without a working NVIDIA driver."""
    if _gpu_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (nvidia-smi found no device)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
