"""Fewer wake-ups per frame: each wake-up of a thread costs more CPU on a small box than
the work it does (benchmarks/cpu_usage.py), so the engine avoids the ones it does not need.

- a realtime file lets its audio in up to `AUDIO_EARLY_NS` early, so the blocks demuxed
  between two frames need no sleep of their own (video keeps its exact pace);
- a realtime synthetic scene serves an item and the next in one wake-up when they are due
  within `WAKE_SLACK_NS`, never early;
- the pipeline is not woken for frames no model will run on (a cadence of every N-th
  frame);
- ONNX Runtime's default intra-op thread count leaves cores to capture and decode.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from avfuse.api import run
from avfuse.backends.ort import auto_threads
from avfuse.engine.ingest import AUDIO_EARLY_NS, Ingest, IngestConfig
from avfuse.engine.pipeline import PipelineConfig
from avfuse.engine.sources.base import WAKE_SLACK_NS, AudioFormat, VideoFormat
from avfuse.engine.sources.playout import HIGH_S
from avfuse.engine.sources.synthetic import SyntheticSource

pytestmark = pytest.mark.timeout(120)

FS = 16000


def _file_ingest(*, audio: bool = True) -> Ingest:
    """The ingest of a realtime 30 fps 8x6 file (16 kHz audio unless `audio` is False)."""
    return Ingest(
        name="f",
        audio=AudioFormat(sample_rate=FS) if audio else None,
        video=VideoFormat(width=8, height=6, fps=30.0),
        live=False,
        config=IngestConfig(realtime=True, backpressure=False),
    )


class _Sleeps:
    """Stands in for the ingest's stop event: records each sleep asked for, sleeps none."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    def wait(self, timeout: float) -> bool:
        self.asked.append(timeout)
        return False

    def is_set(self) -> bool:
        return False

    def set(self) -> None:
        pass


def test_a_realtime_files_audio_between_two_frames_needs_no_sleep_of_its_own() -> None:
    ing = _file_ingest()
    sleeps = _Sleeps()
    ing._closed = sleeps  # type: ignore[assignment]
    h0 = 5_000_000_000
    block = np.zeros(320, np.float32)
    ing.audio(block, device_time_s=0.0, host_ns=h0)  # the first item sets the origin
    assert AUDIO_EARLY_NS >= 34_000_000  # a 30 fps frame period
    ing.audio(block, device_time_s=0.02, host_ns=h0 + 20_000_000)
    ing.audio(block, device_time_s=0.04, host_ns=h0 + 33_000_000)
    assert sleeps.asked == []  # the old reader slept ~20 and ~33 ms here
    frame = np.zeros((6, 8, 3), np.uint8)
    ing.video(frame, device_time_s=0.033, host_ns=h0 + 33_000_000)
    assert len(sleeps.asked) == 1 and 0.02 < sleeps.asked[0] <= 0.034  # video: exact pace


class _Arrivals:
    def __init__(self) -> None:
        self.audio_at: list[int] = []
        self.video_at: list[int] = []

    def audio(self, samples, *, device_time_s, host_ns) -> None:  # type: ignore[no-untyped-def]
        self.audio_at.append(time.monotonic_ns())

    def video(self, frame, *, device_time_s, host_ns) -> None:  # type: ignore[no-untyped-def]
        self.video_at.append(time.monotonic_ns())

    def status(self, status) -> None:  # type: ignore[no-untyped-def]
        pass

    def source_finished(self) -> None:
        pass


def test_a_realtime_scene_serves_items_due_close_together_in_one_wake_up() -> None:
    src = SyntheticSource(realtime=True, block_ms=20.0, fps=30.0)
    sink = _Arrivals()
    src.start(sink)  # type: ignore[arg-type]
    time.sleep(1.6)
    src.stop()
    origin = src.origin_ns
    assert origin is not None and len(sink.video_at) >= 30
    # due: a frame when captured (k / 30 s), a block once its last sample is (20 ms each)
    v_due = [origin + round(k * 1e9 / 30) for k in range(len(sink.video_at))]
    a_due = [origin + (k + 1) * 20_000_000 for k in range(len(sink.audio_at))]
    assert all(t >= d for t, d in zip(sink.video_at, v_due, strict=True))  # never early
    assert all(t >= d for t, d in zip(sink.audio_at, a_due, strict=True))
    # a block due 6.7 ms before a frame (the one ending at 60 ms and frame 2 at 66.7 ms,
    # every 100 ms) waits for the frame and comes in its wake-up
    merged = 0
    for k, d in enumerate(a_due):
        j = next((j for j, v in enumerate(v_due) if 0 < v - d <= WAKE_SLACK_NS), None)
        if j is not None:
            assert sink.audio_at[k] >= v_due[j]  # served in the frame's wake-up
            merged += 1
    assert merged >= 10


def test_the_pipeline_is_not_woken_for_frames_no_model_runs_on() -> None:
    """The bundled model runs on every 3rd frame (its manifest's cadence): the pipeline
    wakes about once per decision, not once per frame as it did."""
    res = run(
        sources=["synthetic:1"],
        sinks=[],
        config=PipelineConfig(realtime=True),
        duration_s=4.0,
    )
    st = res.summary.streams[0]
    frames, decisions = st["video_frames"], res.summary.frames
    assert frames >= 90
    assert abs(decisions - frames / 3) <= 2
    assert res.summary.wakeups <= 0.6 * frames  # every frame rang the pipeline before


@pytest.mark.parametrize(("cores", "threads"), [(1, 1), (2, 1), (3, 1), (4, 2), (8, 4), (64, 4)])
def test_onnx_runtime_threads_default_to_half_the_cores(
    monkeypatch: pytest.MonkeyPatch, cores: int, threads: int
) -> None:
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: set(range(cores)))
    assert auto_threads() == threads


def test_the_bundled_model_decides_ten_times_a_second_at_30_fps() -> None:
    from avfuse.assets import default_model_path
    from avfuse.manifest import load_manifest

    assert load_manifest(default_model_path()).cadence.every_frames == 3


class _CountingStop:
    """A source's stop flag that counts the waits on it (each is one reader wake-up)."""

    def __init__(self) -> None:
        import threading

        self._event = threading.Event()
        self.waits = 0

    def wait(self, timeout: float | None = None) -> bool:
        self.waits += 1
        return self._event.wait(timeout)

    def is_set(self) -> bool:
        return self._event.is_set()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()


def test_a_realtime_file_wakes_the_pipeline_for_the_frames_a_model_runs_on(tmp_path) -> None:
    """The bundled model takes every 3rd frame, so the playout hands the two between over
    with the next one it takes: about one wake-up per decision, not one per frame (0.85
    a frame before). The pipeline's thread delivers the frames, so the reader sleeps
    only between its bursts of decoding and never waits for a single frame. That the
    awaited frame is on time is pinned with a controlled clock in test_playout.py."""
    from avfuse.engine.sources.media import MediaSource
    from tests.fixtures.ffmpeg import write_testsrc_file

    path = write_testsrc_file(tmp_path / "t.mp4", seconds=3.0, sample_rate=48000)
    src = MediaSource(path, sample_rate=FS, realtime=True)
    stop = _CountingStop()
    src.stopping = stop  # type: ignore[assignment]
    res = run(sources=[src], sinks=[], config=PipelineConfig(realtime=True))
    frames = res.summary.streams[0]["video_frames"]
    assert frames >= 85
    assert abs(res.summary.frames - frames / 3) <= 2
    assert res.summary.wakeups <= 0.5 * frames, (res.summary.wakeups, frames)
    assert src.playout is not None and src.playout.handed_over
    # the reader's sleeps: one per burst of 1 s and the end of the file, not per frame
    assert stop.waits <= 3 / HIGH_S + 4, (stop.waits, frames)


def test_a_realtime_scene_is_let_in_by_the_pipelines_thread_and_its_own_sleeps() -> None:
    """A synthetic scene in real time is played out like a file: its thread queues a
    second of items and sleeps (about 40 wake-ups a second before, one per item), and
    the pipeline lets them in when it wakes for a decision. Item timing and content
    are pinned against the scene's own delivery in test_synthetic_handover.py."""
    src = SyntheticSource(realtime=True)
    stop = _CountingStop()
    src.stopping = stop  # type: ignore[assignment]
    res = run(sources=[src], sinks=[], config=PipelineConfig(realtime=True), duration_s=3.0)
    frames = res.summary.streams[0]["video_frames"]
    assert frames >= 85
    assert src.playout is not None and src.playout.handed_over
    assert stop.waits <= 3 / HIGH_S + 4, (stop.waits, frames)
    assert res.summary.wakeups <= 0.5 * frames, (res.summary.wakeups, frames)


class _DueStream:
    """What `Pipeline._next_wake` asks of a stream: a late-audio deadline, a playout due."""

    def __init__(self, deadline: int | None, playout: int | None) -> None:
        self.deadline, self.playout = deadline, playout

    def next_deadline(self) -> int | None:
        return self.deadline

    def next_playout(self) -> int | None:
        return self.playout


MS = 1_000_000


@pytest.mark.parametrize(
    ("streams", "wake_ms"),
    [
        ([(None, 100), (None, 105), (None, 120)], 105),  # 105 shares 100's wake-up
        ([(None, 100), (None, 100 + WAKE_SLACK_NS // MS), (None, 109)], 108),
        ([(None, 120), (None, 100)], 100),  # 120 is too far: its own wake-up
        ([(102, 100), (None, 105)], 102),  # a deadline is kept exactly
        ([(None, None), (None, 100)], 100),
        ([(None, None)], 1000),  # nothing due: the stats tick
    ],
)
def test_played_out_streams_due_within_the_slack_share_one_wake_up(
    streams: list[tuple[int | None, int | None]], wake_ms: int
) -> None:
    """Several scenes or files started together are a few ms apart: each would wake the
    loop on its own (8 scenes: about 50 wake-ups a second instead of 12). Items due
    within the slack of the first share its wake-up, late by at most that, never early."""
    from types import SimpleNamespace

    from avfuse.engine.pipeline import Pipeline

    fake = SimpleNamespace(
        streams=[_DueStream(d and d * MS, p and p * MS) for d, p in streams],
        slots=[],
        _play_dues=[],
    )
    assert Pipeline._next_wake(fake, 0, 1000 * MS) == wake_ms * MS  # type: ignore[arg-type]


def test_after_a_decision_the_pipeline_sleeps_without_a_pass_that_finds_nothing(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a decision's records are out and nothing rang during the work, the loop
    sleeps at once: a second pass (play-out, pull, schedule) found nothing in nearly
    every case and cost as much as a wake-up. Each pass plays the stream out once, so
    passes are counted there: about one per wake-up (1.8 before)."""
    from avfuse.engine.sources.media import MediaSource
    from avfuse.engine.streams import Stream
    from tests.fixtures.ffmpeg import write_testsrc_file

    passes = 0
    play_out = Stream.play_out

    def counted(self: Stream, now: int) -> None:
        nonlocal passes
        passes += 1
        play_out(self, now)

    monkeypatch.setattr(Stream, "play_out", counted)
    path = write_testsrc_file(tmp_path / "t.mp4", seconds=3.0, sample_rate=48000)
    src = MediaSource(path, sample_rate=FS, realtime=True)
    res = run(sources=[src], sinks=[], config=PipelineConfig(realtime=True))
    wakeups, decisions = res.summary.wakeups, res.summary.frames
    assert decisions >= 28
    assert passes <= wakeups + 0.25 * decisions + 3, (passes, wakeups, decisions)


def test_a_realtime_file_with_an_audio_model_beside_keeps_every_frame_on_time(
    tmp_path,
) -> None:
    """A model on the audio's own cadence (a 512-sample window) wants its audio on time,
    so beside the bundled model the playout keeps one wake-up per frame (the audio goes
    out with each) instead of handing frames over in threes. The pipeline's thread
    delivers them, so these are its wake-ups."""
    from avfuse.assets import default_model_path
    from avfuse.backends import create_backend
    from avfuse.engine.sources.media import MediaSource
    from avfuse.manifest import load_manifest
    from tests.fixtures.ffmpeg import write_testsrc_file
    from tests.fixtures.graphs import load, waveform_window, write

    path = write_testsrc_file(tmp_path / "t.mp4", seconds=3.0, sample_rate=48000)
    src = MediaSource(path, sample_rate=FS, realtime=True)
    bes = [
        create_backend("ort", threads=1).load(load_manifest(default_model_path())),
        load(write(tmp_path / "window", waveform_window())),
    ]
    try:
        res = run(sources=[src], backend=bes, sinks=[], config=PipelineConfig(realtime=True))
    finally:
        for be in bes:
            be.close()
    frames = res.summary.streams[0]["video_frames"]
    assert frames >= 85
    assert res.summary.wakeups >= 0.8 * frames, (res.summary.wakeups, frames)


def test_a_port_without_video_or_a_lane_on_audio_cadence_awaits_every_frame() -> None:
    from avfuse.engine.ingest_port import IngestPort

    ing = _file_ingest()
    port = IngestPort(ing, audio=True, video=True)
    assert port.frames_not_awaited() == 0  # before the pipeline said what it waits for
    ing.wake_video_seq = 3  # the pipeline wants frame 3: frames 0, 1, 2 need no wake-up
    assert port.frames_not_awaited() == 3
    ing.video_paces_audio = False  # an audio-driven lane in the stream
    assert port.frames_not_awaited() == 0
    ing.video_paces_audio = True
    assert IngestPort(ing, audio=True, video=False).frames_not_awaited() == 0


def test_a_stale_awaited_frame_is_moved_on_by_the_cadence() -> None:
    """The source reads the hint right after writing the awaited frame, before the
    pipeline has pulled it and said the next one: on a cadence of 3 the next awaited
    frame is 3 on (without this, every group cost two wake-ups: 61 for 90 frames)."""
    ing = _file_ingest(audio=False)
    ing.wake_video_seq, ing.video_cadence = 3, 3
    frame = np.zeros((6, 8, 3), np.uint8)
    for k in range(4):  # seqs 0..3 written; 3 was awaited
        ing.video(frame, device_time_s=k / 30, host_ns=1_000_000_000 + k * 33_333_333)
    assert ing.frame_ring is not None and ing.frame_ring.head == 4
    assert ing.frames_not_awaited() == 2  # 4 and 5; 6 is awaited
    ing.video_cadence = 1  # a lane looking at every frame
    assert ing.frames_not_awaited() == 0


@pytest.mark.parametrize(
    ("live", "realtime", "size", "threading"),
    [
        (True, False, (320, 240), "SLICE"),  # frame threads hold live frames back
        (False, False, (320, 240), "AUTO"),  # full speed wants the throughput
        (False, True, (320, 240), "NONE"),  # 1x needs no decoder threads
        (False, True, (1280, 720), "NONE"),
        (False, True, (1920, 1080), "AUTO"),  # a big frame still gets them
    ],
)
def test_decoder_threads_follow_what_the_input_needs(
    live: bool, realtime: bool, size: tuple[int, int], threading: str
) -> None:
    from avfuse.engine.sources.media import decoder_threading

    w, h = size
    assert decoder_threading(live=live, realtime=realtime, width=w, height=h) == threading


def test_a_realtime_files_decoder_runs_on_the_readers_thread(tmp_path) -> None:
    from avfuse.engine.sources.media import MediaSource
    from tests.fixtures.ffmpeg import write_testsrc_file

    path = write_testsrc_file(tmp_path / "t.mp4", seconds=0.5)
    for realtime, want in ((True, "NONE"), (False, "AUTO")):
        src = MediaSource(path, sample_rate=FS, realtime=realtime)
        try:
            assert src.info.video is not None
            assert src._vstream is not None and src._vstream.thread_type.name == want
        finally:
            src.stop()
