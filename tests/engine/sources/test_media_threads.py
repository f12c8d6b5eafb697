"""MediaSource must not start threads for every frame it delivers: a box that runs for
months pays for thread churn in CPU, and its thread count never settles (the soak,
benchmarks/soak.py, samples the floor of several reads because of it)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from avfuse.engine.sources.media import MediaSource
from tests.fixtures.ffmpeg import needs_ffmpeg, write_testsrc_file
from tests.fixtures.sinks import RecordingFrameSink

pytestmark = needs_ffmpeg


class ThreadWatchingSink(RecordingFrameSink):
    """Notes the process's thread ids at every frame delivered."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[set[str]] = []

    def video(self, frame: np.ndarray, *, device_time_s: float | None, host_ns: int) -> None:
        super().video(frame, device_time_s=device_time_s, host_ns=host_ns)
        self.seen.append(set(os.listdir("/proc/self/task")))


@pytest.mark.timeout(60)
def test_a_file_is_delivered_without_new_threads_per_frame(tmp_path: Path) -> None:
    path = write_testsrc_file(tmp_path / "clip.mp4", seconds=3.0)  # 90 frames
    src = MediaSource(path, audio=False)
    sink = ThreadWatchingSink()
    src.start(sink)
    assert src.finished.wait(30), "the source did not finish"
    src.stop()
    assert len(sink.seen) >= 80
    settled = set().union(*sink.seen[:10])  # the decoder's threads start with the first frames
    new = set().union(*sink.seen[10:]) - settled
    assert len(new) <= 2, f"{len(new)} threads started after the 10th of {len(sink.seen)} frames"
