"""Media of the calibration tests: the pattern as written, and copies with the audio moved.

The copies are made by a real ffmpeg (`-itsoffset` on the audio, streams copied, not
re-encoded) into MPEG-TS, whose 90 kHz timestamps hold the shift exactly (an mp4's edit
list rounds it to the millisecond). The shift is what the test asks ffmpeg for, so the
expected offsets owe nothing to the code under test.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.calibrate.kit import SECONDS
from tests.fixtures.ffmpeg import FFMPEG


@pytest.fixture(scope="session")
def pattern_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12 s pattern, 320x240 at 30 fps with AAC audio, written by `write_pattern`."""
    from avfuse.calibrate import PatternSpec, write_pattern

    path = tmp_path_factory.mktemp("pattern") / "pattern.mp4"
    return write_pattern(path, PatternSpec(seconds=SECONDS, width=320, height=240))


@pytest.fixture(scope="session")
def shifted(
    pattern_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[float], Path]:
    """`shifted(ms)`: the pattern with its audio `ms` later (earlier when negative)."""
    folder = tmp_path_factory.mktemp("shifted")
    made: dict[float, Path] = {}

    def make(ms: float) -> Path:
        if ms not in made:
            if FFMPEG is None:
                pytest.skip("needs the ffmpeg command")
            out = folder / f"shift_{ms:+g}.ts"
            cmd = [
                FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
                "-i", str(pattern_file), "-itsoffset", f"{ms / 1e3:.6f}", "-i", str(pattern_file),
                "-map", "0:v", "-map", "1:a", "-c", "copy", "-f", "mpegts", str(out),
            ]  # fmt: skip
            subprocess.run(cmd, check=True, capture_output=True, timeout=60)
            made[ms] = out
        return made[ms]

    return make
