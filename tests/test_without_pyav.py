"""Without the media extra (no PyAV), files, streams and video output say what to install.

PyAV is hidden from a real `avfuse run` process (`sys.modules["av"] = None` makes
`import av` fail as it does where the package is absent); the rest runs for real.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HIDE_AV = (
    "import sys; sys.modules['av'] = None; from avfuse.cli import main; "
    "sys.exit(main(sys.argv[1:]))"
)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", HIDE_AV, *args],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.mark.timeout(90)
def test_a_media_file_without_pyav_is_one_line_naming_the_extra(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\0" * 64)
    r = _run("run", "--source", str(clip), "--duration", "1")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"avfuse run: error: {str(clip)!r}: media files and network streams need PyAV: "
        "pip install 'avfuse[media]'"
    ]


@pytest.mark.timeout(90)
def test_a_video_sink_without_pyav_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    r = _run("run", "--source", "synthetic", "--duration", "1", "--sink", f"video:{out}")
    assert r.returncode == 2
    (line,) = r.stderr.strip().splitlines()
    assert "writing video needs PyAV: pip install 'avfuse[media]'" in line
    assert not out.exists()


@pytest.mark.timeout(90)
def test_the_demo_runs_without_pyav() -> None:
    r = _run("demo", "--fast")
    assert r.returncode == 0, r.stderr
    assert "score: 10/10 scripted digits recognised" in r.stdout + r.stderr
