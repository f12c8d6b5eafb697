"""PlayoutBuffer: a realtime file decoded in bursts, every item delivered on time.

Driven with a controlled clock: decoding takes no time, and the clock moves only when
the buffer sleeps, so every arrival time below is exact. The numbers are those of a
30 fps video with 48 kHz AAC audio resampled to 16 kHz (341-sample blocks, 21.3 ms).
"""

from __future__ import annotations

import numpy as np
import pytest

from avfuse.engine.sources.base import WAKE_SLACK_NS, SourceStatus
from avfuse.engine.sources.playout import HIGH_S, PlayoutBuffer

pytestmark = pytest.mark.timeout(30)

SR = 16000
BLOCK = 341
FRAME_NS = 33_333_333
BLOCK_NS = BLOCK * 1_000_000_000 // SR
FRAME = np.zeros((2, 2, 3), np.uint8)
SAMPLES = np.zeros(BLOCK, np.float32)


class FakeTime:
    """A clock that moves only when something sleeps on the stop flag."""

    def __init__(self) -> None:
        self.now = 0
        self.sleeps = 0
        self.stop_at: int | None = None  # stop once the clock passes this

    def __call__(self) -> int:
        return self.now

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None and timeout > 0
        self.sleeps += 1
        self.now += round(timeout * 1e9)
        return self.is_set()

    def is_set(self) -> bool:
        return self.stop_at is not None and self.now >= self.stop_at


class Arrivals:
    """A FrameSink that notes (kind, host_ns, arrival_ns) of everything delivered."""

    def __init__(self, clock: FakeTime) -> None:
        self.clock = clock
        self.got: list[tuple[str, int, int]] = []
        self.statuses: list[tuple[SourceStatus, int]] = []

    def audio(self, samples: np.ndarray, *, device_time_s: float | None, host_ns: int) -> None:
        self.got.append(("audio", host_ns, self.clock.now))

    def video(self, frame: np.ndarray, *, device_time_s: float | None, host_ns: int) -> None:
        self.got.append(("video", host_ns, self.clock.now))

    def status(self, status: SourceStatus) -> None:
        self.statuses.append((status, len(self.got)))


def decode_order(seconds: float) -> list[tuple[str, int]]:
    """(kind, host_ns) in the order a demuxer gives them: by time, audio and video mixed."""
    items = [("video", k * FRAME_NS) for k in range(round(seconds * 30))]
    items += [("audio", k * BLOCK_NS) for k in range(int(seconds * 1e9 // BLOCK_NS))]
    return sorted(items, key=lambda it: it[1])


def play(seconds: float, clock: FakeTime, *, on_pump=None) -> tuple[Arrivals, PlayoutBuffer]:
    sink = Arrivals(clock)
    buf = PlayoutBuffer(sink, clock, sample_rate=SR, clock=clock)
    for kind, host in decode_order(seconds):
        if kind == "audio":
            buf.audio(SAMPLES, device_time_s=host / 1e9, host_ns=host)
        else:
            buf.video(FRAME, device_time_s=host / 1e9, host_ns=host)
        if on_pump is not None:
            on_pump(buf)
        if not buf.pump():
            return sink, buf
    buf.finish()
    return sink, buf


def test_every_item_arrives_once_captured_never_early_and_at_most_the_slack_late() -> None:
    clock = FakeTime()
    sink, _ = play(3.0, clock)
    assert len(sink.got) == len(decode_order(3.0))
    for kind, host, arrival in sink.got:
        due = host + (BLOCK_NS if kind == "audio" else 0)  # a block once its last sample is
        assert due <= arrival <= due + WAKE_SLACK_NS, (kind, host, arrival)
    hosts = {k: [h for kk, h, _ in sink.got if kk == k] for k in ("audio", "video")}
    assert all(np.diff(h).min() > 0 for h in hosts.values())  # each modality in order


def test_decoding_comes_in_bursts_not_one_wake_up_per_frame() -> None:
    """Between bursts the reader decodes; frame-by-frame pacing resumes it before every
    item (about 77 times a second here). The buffer also never holds much more than
    HIGH_S of media, which bounds its memory."""
    clock = FakeTime()
    leads: list[int] = []
    sink, buf = play(4.0, clock, on_pump=lambda b: leads.append(b._last_ns - clock.now))
    assert buf.bursts <= 4.0 * 15  # one per (HIGH_S - LOW_S) = 80 ms of media, 12.5/s
    assert buf.bursts >= 4.0 * 5  # and not one long burst (the buffer stays small)
    assert max(leads) <= HIGH_S * 1e9 + FRAME_NS
    # one wake-up serves every item due within the slack of the first
    assert clock.sleeps <= 0.8 * len(sink.got)


def test_a_status_keeps_its_place_between_the_frames() -> None:
    clock = FakeTime()
    sink = Arrivals(clock)
    buf = PlayoutBuffer(sink, clock, sample_rate=SR, clock=clock)
    warning = SourceStatus(kind="warning", source="f", message="after frame 2")
    for k in range(10):
        buf.video(FRAME, device_time_s=None, host_ns=k * FRAME_NS)
        if k == 2:
            buf.status(warning)
        buf.pump()
    buf.finish()
    assert sink.statuses == [(warning, 3)]  # after frames 0, 1, 2; before frame 3


def test_a_stop_while_waiting_ends_the_playout_and_delivers_nothing_after_it() -> None:
    clock = FakeTime()
    clock.stop_at = 1_000_000_000
    sink, _ = play(3.0, clock)
    assert sink.got  # what was due before the stop came out
    assert max(arrival for *_, arrival in sink.got) < clock.stop_at


def test_finish_plays_out_what_is_left_on_time() -> None:
    clock = FakeTime()
    sink = Arrivals(clock)
    buf = PlayoutBuffer(sink, clock, sample_rate=SR, clock=clock)
    for k in range(30):  # a whole second queued without pumping (a burst at the end)
        buf.video(FRAME, device_time_s=None, host_ns=k * FRAME_NS)
    assert buf.finish()
    assert len(sink.got) == 30
    # frames 33 ms apart get a wake-up each: at their time, plus the 0.1 ms a wait adds
    assert all(0 <= a - h <= 200_000 for _, h, a in sink.got)


def test_bad_water_marks_are_refused() -> None:
    clock = FakeTime()
    with pytest.raises(ValueError, match="low_s < high_s"):
        PlayoutBuffer(Arrivals(clock), clock, sample_rate=SR, low_s=0.2, high_s=0.1)


@pytest.mark.parametrize("source_paces", [True, False])
def test_a_realtime_file_is_paced_once(tmp_path, source_paces: bool) -> None:
    """A file that plays itself out in real time is not paced again by the ingest (which
    slept a second time per frame, to the first item's delivery delay after its host
    time); one that does not pace itself still is, when the pipeline runs in real time."""
    from avfuse.assets import default_model_path
    from avfuse.engine.pipeline import PipelineConfig
    from avfuse.engine.sources.media import MediaSource
    from avfuse.engine.stream_build import build_stream
    from avfuse.manifest import load_manifest
    from tests.fixtures.ffmpeg import write_testsrc_file

    path = write_testsrc_file(tmp_path / "t.mp4", seconds=0.5)
    src = MediaSource(path, sample_rate=SR, realtime=source_paces)
    stream = build_stream(
        index=0,
        sources=[src],
        manifests=[load_manifest(default_model_path())],
        config=PipelineConfig(realtime=True),
    )
    try:
        assert src.info.paced is source_paces
        assert stream.ingest.config.realtime is (not source_paces)
    finally:
        src.stop()
