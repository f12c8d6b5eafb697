"""The engine's own sync monitor on the calibration pattern (a finding, kept as a test).

`avfuse.engine.sync` times audio onsets from log-mel energy rises. After digital silence
(columns below its `silence_db`) it used to time about half of the pattern's beeps ~70 ms
late (the floor stayed at the last beep's level),
so on a clean flash-and-beep pattern with the audio 200 ms late it found two lags of
equal weight and said "no usable sync cues". With a -60 dBFS noise floor (the pattern's
default) it measured the offset. Now digital silence lowers the noise floor like any
quiet does, and both cases measure it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from avfuse.assets import default_model_path
from tests.fixtures.ffmpeg import FFmpegProcess, needs_ffmpeg

pytestmark = [
    needs_ffmpeg,
    pytest.mark.slow,
    pytest.mark.skipif(not default_model_path().exists(), reason="the bundled model is not built"),
]


@pytest.fixture(scope="module")
def late_pattern(tmp_path_factory: pytest.TempPathFactory) -> Callable[[float | None], Path]:
    """`late_pattern(noise_dbfs)`: a 20 s pattern with its audio 200 ms late (ffmpeg)."""
    from avfuse.calibrate import PatternSpec, write_pattern

    folder = tmp_path_factory.mktemp("sync")

    def make(noise: float | None) -> Path:
        spec = PatternSpec(seconds=20, width=320, height=240, noise_dbfs=noise)
        src = write_pattern(folder / f"p_{noise}.mp4", spec)
        out = folder / f"late_{noise}.ts"
        args = ["-i", str(src), "-itsoffset", "0.2", "-i", str(src)]
        args += ["-map", "0:v", "-map", "1:a", "-c", "copy", "-f", "mpegts", str(out)]
        with FFmpegProcess(args) as ff:
            assert ff.wait(60) == 0, ff.stderr_tail()
        return out

    return make


def _av_sync(path: Path) -> dict:
    from avfuse.api import run
    from avfuse.engine.pipeline import PipelineConfig

    return run(sources=[str(path)], config=PipelineConfig(), sinks=[]).summary.streams[0]["av_sync"]


@pytest.mark.timeout(240)
def test_the_sync_monitor_measures_the_pattern_over_a_noise_floor(
    late_pattern: Callable[[float | None], Path],
) -> None:
    sync = _av_sync(late_pattern(-60.0))
    assert sync["status"] == "misaligned"
    assert abs(sync["residual_offset_ms"] - 200.0) <= 15


@pytest.mark.timeout(240)
def test_the_sync_monitor_measures_the_pattern_over_digital_silence(
    late_pattern: Callable[[float | None], Path],
) -> None:
    sync = _av_sync(late_pattern(None))
    assert sync["status"] == "misaligned", sync
    assert abs(sync["residual_offset_ms"] - 200.0) <= 15
