"""The wheel alone runs the demo: built here, installed into a fresh venv with only its
runtime requirements (no torch, no numba, no PyAV), then used from there.

A runtime dependency that a default path still imports, or a file the demo needs that
the wheel lacks, fails here and nowhere else: the rest of the suite runs from a checkout
with every extra installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: the venv's processes see only the venv: no PYTHONPATH pointing at the checkout
ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def _run(cmd: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip
    assert proc.returncode == 0, f"{cmd[:5]}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


def _wheel(tmp: Path) -> Path:
    """The wheel built from a copy of the files git tracks."""
    files = _run(["git", "ls-files", "-co", "--exclude-standard"], ROOT, 60).stdout.split()
    src = tmp / "src"
    for f in files:
        if (ROOT / f).is_file():
            (src / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, src / f)
    # one GPU target keeps nvcc's part short; the libraries are checked in the venv below
    env = {**ENV, "AVFUSE_CUDA_ARCHITECTURES": "80"}
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp / "dist")], cwd=src, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = (tmp / "dist").glob("avfuse-*.whl")
    return wheel


def _runtime_requirements(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        lines = z.read(meta).decode().splitlines()
    tag = "Requires-Dist:"
    reqs = [ln[len(tag) :].strip() for ln in lines if ln.startswith(tag)]
    return [r for r in reqs if "extra ==" not in r]


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_the_wheel_runs_the_demo_without_torch_or_numba(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path)
    reqs = _runtime_requirements(wheel)
    assert not [r for r in reqs if r.split(">")[0].split("=")[0].strip() in ("torch", "numba")]
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, 120)
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q"]
    _run([*pip, *reqs], tmp_path, 1200)
    _run([*pip, "--no-deps", str(wheel)], tmp_path, 300)

    probe = (
        "import importlib.util, json\n"
        "import avfuse, avfuse.engine.pipeline\n"
        "from avfuse.assets import default_model_path\n"
        "from avfuse.kernels import image_kernel, log_mel_kernel\n"
        "from avfuse.kernels.native import find_library\n"
        "from avfuse.manifest import load_manifest\n"
        "m = load_manifest(default_model_path())\n"
        "print(json.dumps({'file': avfuse.__file__, 'absent': [m for m in "
        "('torch', 'numba', 'llvmlite') if importlib.util.find_spec(m) is None],"
        " 'kernels': [log_mel_kernel(m.audio).name, image_kernel(m.video).name],"
        " 'host_lib': str(find_library('host'))}))\n"
    )
    seen = json.loads(_run([str(python), "-c", probe], tmp_path, 120).stdout)
    assert seen["file"].startswith(str(venv)), seen  # the installed copy, not the checkout
    assert seen["absent"] == ["torch", "numba", "llvmlite"]
    assert seen["kernels"] == ["numpy", "numpy"]  # not a silent fall back to the reference
    if shutil.which("cmake") and shutil.which("c++"):  # the wheel carries the native kernels
        assert seen["host_lib"].startswith(str(venv)), seen

    demo = _run([str(venv / "bin" / "avfuse"), "demo", "--fast"], tmp_path, 600)
    text = demo.stdout + demo.stderr  # the score line goes to stderr
    score = [ln for ln in text.splitlines() if ln.startswith("score:")]
    assert score and score[0].startswith("score: 10/10 "), text[-2000:]
