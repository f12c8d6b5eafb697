"""The wheel: built without warnings, carries the model, demo material and record schema,
and no byte-code caches."""

from __future__ import annotations

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
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path / "dist")],
        cwd=src, capture_output=True, text=True, timeout=240,
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
