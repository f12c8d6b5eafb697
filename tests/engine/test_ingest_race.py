"""A reconnect at any moment is safe: the reset/read interleaving forced line by line.

The pipeline thread reads stream time and audio windows while a capture thread may
reset the clock fits on a reconnect. Instead of hoping a race shows up, these tests
run the reader once per line of its code and, exactly when it reaches that line, run
the capture thread's reconnect (as a preemption there would). Every interleaving
must give a sane answer: no exception, stream time 0 where it was.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import CodeType
from typing import Any

import numpy as np
import pytest

from avfuse.engine.align import Aligner
from avfuse.engine.ingest import Ingest
from avfuse.engine.sources.base import AudioFormat, SourceStatus, VideoFormat
from avfuse.kernels.reference import AudioParams

pytestmark = pytest.mark.timeout(60)

FS, FPS = 16000, 30.0
T0 = 10_000_000_000  # host ns of the first sample and frame


def _ingest() -> Ingest:
    """A live stream 1 s in: fits made, stream time 0 not yet settled (as in a stream's
    first seconds)."""
    ing = Ingest(
        name="s",
        audio=AudioFormat(sample_rate=FS),
        video=VideoFormat(width=32, height=24, fps=FPS),
        live=True,
    )
    frame = np.zeros((24, 32, 3), np.uint8)
    block = np.zeros(320, np.float32)
    for k in range(30):
        ing.video(frame, device_time_s=k / FPS, host_ns=T0 + int(k * 1e9 / FPS))
    for k in range(50):
        ing.audio(block, device_time_s=k * 0.02, host_ns=T0 + int(k * 20e6))
    return ing


def _lines(code: CodeType) -> list[int]:
    return sorted({ln for _, _, ln in code.co_lines() if ln is not None})


def interleave(code: CodeType, line: int, writer: Callable[[], None], reader: Callable[[], Any]):
    """Run `reader`; the first time `code` reaches `line`, run `writer` right there."""
    fired = []

    def local(frame, event, arg):  # noqa: ANN001 - sys.settrace protocol
        if event == "line" and frame.f_lineno == line and not fired:
            fired.append(line)
            writer()
        return local

    def tracer(frame, event, arg):  # noqa: ANN001
        return local if frame.f_code is code else None

    old = sys.gettrace()
    sys.settrace(tracer)
    try:
        return reader()
    finally:
        sys.settrace(old)


def _reconnect(ing: Ingest) -> Callable[[], None]:
    def writer() -> None:
        ing.status(SourceStatus(kind="disconnected", source="s", message="lost"))
        ing.status(SourceStatus(kind="reconnected", source="s"))

    return writer


def test_stream_time_survives_a_reconnect_at_every_line() -> None:
    code = Ingest.fitted_origin_ns.__code__
    for line in _lines(code):
        ing = _ingest()
        origin = interleave(code, line, _reconnect(ing), ing.fitted_origin_ns)
        assert origin is not None and abs(origin - T0) < 5_000_000, line
        # and it stays where it was afterwards: a restarted device clock cannot move it
        assert abs(ing.fitted_origin_ns() - T0) < 5_000_000, line


def test_the_aligner_survives_a_clock_reset_at_every_line() -> None:
    params = AudioParams()
    for line in _lines(Aligner.window_for.__code__):
        ing = _ingest()
        assert ing.audio_clock is not None and ing.audio_ring is not None
        al = Aligner(params=params, ring=ing.audio_ring, clock=ing.audio_clock)
        target = T0 + 900_000_000
        w = interleave(
            Aligner.window_for.__code__, line, ing.audio_clock.model.reset,
            lambda al=al, target=target: al.window_for(target),
        )  # fmt: skip
        # either no window yet (the clock was reset first) or one from a whole fit
        if w is not None:
            assert abs(w.exact_end_index - 0.9 * FS) < 80, line


def test_video_reconnect_then_read_gives_stream_time_from_the_old_timeline() -> None:
    ing = _ingest()
    _reconnect(ing)()
    # the video clock starts over (PTS restart) and has no fit yet
    assert ing.video_clock is not None and ing.video_clock.fit is None
    assert ing.stream_time_s(T0 + 2_000_000_000) == pytest.approx(2.0, abs=0.005)
