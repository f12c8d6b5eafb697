"""PlayoutBuffer: a realtime file decoded in bursts, every item delivered on time.

Driven with a controlled clock: decoding takes no time, and the clock moves only when
the buffer sleeps, so every arrival time below is exact. The numbers are those of a
30 fps video with 48 kHz AAC audio resampled to 16 kHz (341-sample blocks, 21.3 ms).
"""

from __future__ import annotations

import numpy as np
import pytest

from avfuse.engine.sources.base import WAKE_SLACK_NS, SourceStatus
from avfuse.engine.sources.playout import HIGH_S, LOW_S, PlayoutBuffer

pytestmark = pytest.mark.timeout(30)

SR = 16000
BLOCK = 341
FRAME_NS = 33_333_333
BLOCK_NS = BLOCK * 1_000_000_000 // SR
FRAME = np.zeros((2, 2, 3), np.uint8)


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
    """A FrameSink that notes (kind, host_ns, arrival_ns) of everything delivered, and
    every audio chunk's samples."""

    def __init__(self, clock: FakeTime) -> None:
        self.clock = clock
        self.got: list[tuple[str, int, int]] = []
        self.chunks: list[tuple[int, int, np.ndarray]] = []  # (host_ns, arrival_ns, samples)
        self.statuses: list[tuple[SourceStatus, int]] = []

    def audio(self, samples: np.ndarray, *, device_time_s: float | None, host_ns: int) -> None:
        self.got.append(("audio", host_ns, self.clock.now))
        self.chunks.append((host_ns, self.clock.now, samples.copy()))

    def video(self, frame: np.ndarray, *, device_time_s: float | None, host_ns: int) -> None:
        self.got.append(("video", host_ns, self.clock.now))

    def status(self, status: SourceStatus) -> None:
        self.statuses.append((status, len(self.got)))


def decode_order(
    seconds: float, *, video: bool = True, video_from_ns: int = 0
) -> list[tuple[str, int]]:
    """(kind, host_ns) in the order a demuxer gives them: by time, audio and video mixed.
    Audio block k starts at sample k * BLOCK (its host time rounded down to the ns)."""
    items = (
        [("video", video_from_ns + k * FRAME_NS) for k in range(round(seconds * 30))]
        if video
        else []
    )
    blocks = int(seconds * SR) // BLOCK
    items += [("audio", k * BLOCK * 1_000_000_000 // SR) for k in range(blocks)]
    return sorted(items, key=lambda it: it[1])


def play(
    seconds: float,
    clock: FakeTime,
    *,
    on_pump=None,
    not_awaited=None,
    sink=None,
    frame=FRAME,
    setup=None,
    **kw,
) -> tuple[Arrivals, PlayoutBuffer]:
    sink = sink or Arrivals(clock)
    order = {k: kw.pop(k) for k in ("video", "video_from_ns") if k in kw}
    buf = PlayoutBuffer(sink, clock, sample_rate=SR, clock=clock, not_awaited=not_awaited, **kw)
    if setup is not None:
        setup(buf)  # before anything is queued (a hand-over)
    index = 0  # each block's samples are their own sample indices, to check what arrives
    for kind, host in decode_order(seconds, **order):
        if kind == "audio":
            block = np.arange(index, index + BLOCK, dtype=np.float32)
            index += BLOCK
            buf.audio(block, device_time_s=host / 1e9, host_ns=host)
        else:
            buf.video(frame, device_time_s=host / 1e9, host_ns=host)
        if on_pump is not None:
            on_pump(buf)
        if not buf.pump():
            return sink, buf
    buf.finish()
    return sink, buf


def check_audio(sink: Arrivals, *, blocks: int) -> None:
    """Every sample arrives once, in order, never before it was captured."""
    samples = np.concatenate([c for _, _, c in sink.chunks])
    np.testing.assert_array_equal(samples, np.arange(blocks * BLOCK, dtype=np.float32))
    for host, arrival, chunk in sink.chunks:
        first = int(chunk[0])
        assert abs(host - first * 1_000_000_000 // SR) <= 1  # its first sample's time
        assert host + len(chunk) * 1_000_000_000 // SR <= arrival + 1, (host, arrival)


def test_audio_comes_with_each_frame_and_nothing_arrives_early() -> None:
    """A capture card's delivery: at each frame's time, the audio captured up to then
    (a block straddling that moment is split), so audio waits at most one frame
    interval and the reader wakes once per frame, not also once per audio block."""
    clock = FakeTime()
    sink, _ = play(3.0, clock)
    blocks = int(3.0 * SR) // BLOCK
    check_audio(sink, blocks=blocks)
    for host, arrival, _ in sink.chunks:  # the first sample waits at most one frame
        assert arrival - host <= FRAME_NS + WAKE_SLACK_NS, (host, arrival)
    video = [(h, a) for k, h, a in sink.got if k == "video"]
    assert len(video) == 90
    assert all(h <= a <= h + WAKE_SLACK_NS for h, a in video)
    assert np.diff([h for h, _ in video]).min() > 0
    assert clock.sleeps <= 95  # one wake-up per frame (plus a few a wait returned early)
    assert len(sink.chunks) <= 95  # and the audio of a wake-up goes out as one block


def test_frames_nobody_waits_for_go_out_with_the_next_one_in_one_wake_up() -> None:
    """A model on every 3rd frame: the sink says the next two frames are not awaited,
    so they go out at the time of the third, with its audio, in one wake-up (a third of
    the wake-ups), and the awaited frame is on time. Nothing arrives early."""
    clock = FakeTime()
    sink = Arrivals(clock)

    def not_awaited() -> int:  # frames 2, 5, 8, ... are the awaited ones
        return 2 - sum(kind == "video" for kind, _, _ in sink.got) % 3

    play(3.0, clock, not_awaited=not_awaited, sink=sink)
    check_audio(sink, blocks=int(3.0 * SR) // BLOCK)  # all of it, none early
    video = [(h, a) for k, h, a in sink.got if k == "video"]
    assert len(video) == 90
    assert all(h <= a <= h + 2 * FRAME_NS + WAKE_SLACK_NS for h, a in video)
    awaited = video[2::3]
    assert all(a <= h + WAKE_SLACK_NS for h, a in awaited), awaited[:5]
    assert clock.sleeps <= 35  # one wake-up per awaited frame (90 without the hint)
    assert len({a for _, a in video}) <= 32


def test_gathered_audio_does_not_bridge_a_gap() -> None:
    """A missing block (a gap in the file's audio) must reach the sink as a gap: the
    block gathered for a frame ends before it, so the ingest's gap detection sees it."""
    clock = FakeTime()
    sink = Arrivals(clock)
    buf = PlayoutBuffer(sink, clock, sample_rate=SR, clock=clock)
    index = 0
    for kind, host in decode_order(1.0):
        if kind == "audio":
            block = np.arange(index, index + BLOCK, dtype=np.float32)
            index += BLOCK
            if index // BLOCK == 20:
                continue  # block 19 is missing
            buf.audio(block, device_time_s=host / 1e9, host_ns=host)
        else:
            buf.video(FRAME, device_time_s=host / 1e9, host_ns=host)
        buf.pump()
    buf.finish()
    for host, _, chunk in sink.chunks:
        assert (np.diff(chunk) == 1).all(), host  # no chunk spans the missing samples
    got = np.concatenate([c for _, _, c in sink.chunks])
    assert len(got) == (index // BLOCK - 1) * BLOCK
    assert 19 * BLOCK not in got and 20 * BLOCK in got


def test_without_video_each_block_arrives_once_its_last_sample_is_captured() -> None:
    clock = FakeTime()
    sink, _ = play(3.0, clock, video=False)
    blocks = int(3.0 * SR) // BLOCK
    check_audio(sink, blocks=blocks)
    assert len(sink.chunks) == blocks  # whole blocks, as a microphone delivers them
    for host, arrival, chunk in sink.chunks:
        due = host + len(chunk) * 1_000_000_000 // SR
        assert due <= arrival <= due + WAKE_SLACK_NS, (host, arrival)


def test_audio_does_not_wait_for_a_video_frame_far_ahead() -> None:
    """Video that starts a second after the audio (or a track at a few frames a
    second) must not hold the audio back until its first frame."""
    clock = FakeTime()
    sink, _ = play(2.0, clock, video_from_ns=1_000_000_000)
    check_audio(sink, blocks=int(2.0 * SR) // BLOCK)
    early = [(h, a, c) for h, a, c in sink.chunks if h < 900_000_000]
    assert len(early) > 30
    for host, arrival, chunk in early:
        due = host + len(chunk) * 1_000_000_000 // SR
        assert due <= arrival <= due + WAKE_SLACK_NS, (host, arrival)


def test_decoding_comes_in_bursts_not_one_wake_up_per_frame() -> None:
    """Between bursts the reader decodes; frame-by-frame pacing resumes it before every
    item (about 77 times a second here). The buffer also never holds much more than
    HIGH_S of media, which bounds its memory."""
    clock = FakeTime()
    leads: list[int] = []
    sink, buf = play(4.0, clock, on_pump=lambda b: leads.append(b._lead(clock.now)))
    per_burst = HIGH_S - LOW_S  # media played out between two bursts
    assert 2 <= buf.bursts <= 4.0 / per_burst + 1  # not one long burst
    assert max(leads) <= HIGH_S * 1e9 + FRAME_NS
    # one wake-up per frame: the audio goes out with the frames
    assert clock.sleeps <= 1.05 * 4.0 * 30


def test_large_frames_end_a_burst_at_the_byte_bound_and_still_arrive_on_time() -> None:
    """Frames of 1 MB with a 4 MB bound: a burst ends once 4 MB are queued (not at
    HIGH_S, which would queue 30 MB), and every frame still arrives at its time."""
    clock = FakeTime()
    big = np.zeros((512, 683, 3), np.uint8)  # 1.05 MB, like 683x512 bgr24
    queued: list[int] = []
    sink, buf = play(
        2.0,
        clock,
        frame=big,
        max_bytes=4 << 20,
        on_pump=lambda b: queued.append(b.queued_bytes),
    )
    assert max(queued) <= (4 << 20) + 2 * big.nbytes  # the bound, plus the frame just in
    assert buf.queued_bytes == 0  # all delivered, and the count followed them out
    video = [(h, a) for k, h, a in sink.got if k == "video"]
    assert len(video) == 60
    assert all(h <= a <= h + WAKE_SLACK_NS for h, a in video)
    assert buf.bursts >= 2.0 / (5 * FRAME_NS / 1e9) - 1  # about one per 4-5 frames


def test_a_video_track_that_ends_early_leaves_the_buffer_bounded() -> None:
    """Video for the first second, audio for four (the hardening issue's short-video
    file): once the frames stop, the audio leads the water marks, so the buffer does not
    fill with the rest of the file's audio."""
    clock = FakeTime()
    sink = Arrivals(clock)
    buf = PlayoutBuffer(sink, clock, sample_rate=SR, clock=clock)
    ahead: list[int] = []
    for kind, host in decode_order(4.0):
        if kind == "video" and host >= 1_000_000_000:
            continue
        if kind == "audio":
            buf.audio(np.zeros(BLOCK, np.float32), device_time_s=None, host_ns=host)
        else:
            buf.video(FRAME, device_time_s=None, host_ns=host)
        assert buf.pump()
        ahead.append(host - clock.now)
    buf.finish()
    assert max(ahead) <= HIGH_S * 1e9 + 0.5e9 + BLOCK_NS  # 0.5 s: MAX_SKEW_NS
    assert sum(len(c) for *_, c in sink.chunks) == (int(4.0 * SR) // BLOCK) * BLOCK


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
    with pytest.raises(ValueError, match="max_bytes >= 1"):
        PlayoutBuffer(Arrivals(clock), clock, sample_rate=SR, max_bytes=0)


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
        # and its latency counts from each frame's time, as it is let in then or later
        assert stream.ingest.config.self_paced is source_paces
    finally:
        src.stop()
