"""The `gpu` tests skip cleanly without a GPU and import nothing they do not need: no PyAV,
OpenCV or sounddevice (a GPU box runs them on a bare install), no torch or TensorRT at
import time (each test asks for what it uses)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GPU_TEST_MODULES = (
    "tests.backends.test_ort_gpu",
    "tests.backends.test_cudart",
    "tests.backends.test_tensorrt",
    "tests.kernels.test_native",
)
NOT_NEEDED = ("av", "cv2", "sounddevice", "torch", "tensorrt", "cupy")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("module", GPU_TEST_MODULES)
def test_gpu_test_modules_import_nothing_they_do_not_need(module: str) -> None:
    code = (
        "import importlib, json, sys; importlib.import_module(sys.argv[1]); "
        f"print(json.dumps([m for m in {list(NOT_NEEDED)!r} if m in sys.modules]))"
    )
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    r = subprocess.run(
        [sys.executable, "-c", code, module], cwd=ROOT, capture_output=True, text=True, env=env
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == []


@pytest.mark.timeout(120)
def test_gpu_tests_are_marked_and_skip_cleanly_here() -> None:
    from avfuse.backends.select import gpu_names

    if gpu_names():
        pytest.skip("a GPU is here: the gpu tests run")
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider",
         *(m.replace(".", "/") + ".py" for m in GPU_TEST_MODULES)],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    tail = r.stdout.strip().splitlines()[-1]
    assert "skipped" in tail and "passed" not in tail and "failed" not in tail, tail
