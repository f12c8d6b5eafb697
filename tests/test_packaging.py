"""The wheel: built without warnings, carries the model, demo material and record schema,
and no byte-code caches."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_wheel_builds_cleanly_with_what_the_runtime_needs(tmp_path: Path) -> None:
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
        text=True, check=True,
    ).stdout.split()  # fmt: skip
    src = tmp_path / "src"
    for f in files:
        if (ROOT / f).is_file():
            (src / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, src / f)
    # a stray byte-code cache in the tree, as any checkout that ran once has
    (src / "avfuse" / "assets" / "__pycache__").mkdir(exist_ok=True)
    (src / "avfuse" / "assets" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    env = {**os.environ, "AVFUSE_CUDA_ARCHITECTURES": "80"}  # one GPU target: a shorter build
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path / "dist")],
        cwd=src, capture_output=True, text=True, timeout=280, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = proc.stdout + proc.stderr
    assert "Warning" not in log and "warning" not in log.lower(), log[-3000:]
    (wheel,) = (tmp_path / "dist").glob("avfuse-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if "__pycache__" in n]
    for needed in (
        "avfuse/assets/model/model.onnx",
        "avfuse/assets/model/manifest.json",
        "avfuse/assets/demo/sources.json",
        "avfuse/schema/records.schema.json",
        "avfuse/schema/doctor.schema.json",
        "avfuse/kernels/cuda/avf_math.cuh",
    ):
        assert needed in names
    assert any(n.startswith("avfuse/assets/demo/utterances/") for n in names)
    # the native kernels: the CPU build of their math wherever cmake is, CUDA where nvcc is
    libs = {n for n in names if n.startswith("avfuse/kernels/cuda/lib/")}
    if shutil.which("cmake") and shutil.which("c++"):
        assert "avfuse/kernels/cuda/lib/libavfuse_kernels_host.so" in libs
        assert wheel.name.endswith("-py3-none-linux_x86_64.whl"), wheel.name
    if shutil.which("nvcc") or Path("/usr/local/cuda/bin/nvcc").is_file():
        assert "avfuse/kernels/cuda/lib/libavfuse_kernels_cuda.so" in libs


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_wheel_without_native_kernels_is_pure_python(tmp_path: Path) -> None:
    """Without cmake (here: AVFUSE_BUILD_NATIVE=0) the build succeeds, for any platform."""
    src = tmp_path / "src"
    src.mkdir()
    for f in ("pyproject.toml", "setup.py", "README.md", "CMakeLists.txt"):
        shutil.copy2(ROOT / f, src / f)
    shutil.copytree(ROOT / "avfuse", src / "avfuse", ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "AVFUSE_BUILD_NATIVE": "0"}
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path / "dist")],
        cwd=src, capture_output=True, text=True, timeout=240, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("avfuse-*.whl")
    assert wheel.name.endswith("-py3-none-any.whl"), wheel.name
    assert not [n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".so")]
