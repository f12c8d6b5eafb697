"""Ingest: audio gaps become holes, device clock jumps are counted (never reordered), faults
update the modality state, files get back-pressure instead of overwrites."""

from __future__ import annotations

import threading
import time

import numpy as np

from avfuse.engine.ingest import Ingest, IngestConfig
from avfuse.engine.sources.base import AudioFormat, SourceStatus, VideoFormat

FS = 16000
H0 = 3_000_000_000_000
BLOCK = 320  # 20 ms


def make(**kw: object) -> Ingest:
    return Ingest(
        name="t",
        audio=AudioFormat(sample_rate=FS),
        video=VideoFormat(width=8, height=6, fps=30.0),
        live=bool(kw.pop("live", True)),
        config=IngestConfig(**kw),  # type: ignore[arg-type]
    )


def play_audio(
    ing: Ingest,
    blocks: range,
    *,
    skip: range = range(0),
    dev: bool = True,
    dev_shift: float = 0.0,
    dev_from: int = 10**9,
) -> None:
    x = np.ones(BLOCK, np.float32)
    for k in blocks:
        if k in skip:
            continue
        t = k * BLOCK / FS
        d = t + (dev_shift if k >= dev_from else 0.0)
        ing.audio(x, device_time_s=d if dev else None, host_ns=H0 + int(t * 1e9))


def test_a_device_time_gap_leaves_a_hole_of_the_right_size() -> None:
    ing = make()
    play_audio(ing, range(100), skip=range(40, 50))  # 200 ms never delivered
    assert ing.counters["audio_gaps"] == 1
    assert ing.counters["audio_gap_samples"] == 10 * BLOCK
    ring = ing.audio_ring
    assert ring is not None and ring.head == 100 * BLOCK
    res = ring.read(30 * BLOCK, np.empty(30 * BLOCK, np.float32))
    assert res.missing == 10 * BLOCK
    # the sample clock still maps index -> host time exactly across the gap
    assert ing.audio_clock is not None
    assert abs(ing.audio_clock.index_to_host(60 * BLOCK) - (H0 + 1_200_000_000)) < 1e5


def test_without_device_time_a_host_step_is_a_gap() -> None:
    ing = make()
    play_audio(ing, range(100), skip=range(40, 60), dev=False)  # 400 ms > host_gap_s
    assert ing.counters["audio_gaps"] == 1
    assert ing.counters["audio_gap_samples"] == 20 * BLOCK


def test_a_device_clock_jump_is_counted_and_samples_stay_in_order() -> None:
    ing = make()
    # from block 50 the device clock reads 30 s later, but the host says no time was lost
    play_audio(ing, range(100), dev_shift=30.0, dev_from=50)
    assert ing.counters["device_clock_jumps"] == 1 and ing.counters["audio_gaps"] == 0
    assert ing.audio_ring is not None and ing.audio_ring.head == 100 * BLOCK
    # backwards is a jump too
    ing2 = make()
    play_audio(ing2, range(100), dev_shift=-5.0, dev_from=50)
    assert ing2.counters["device_clock_jumps"] == 1 and ing2.audio_ring.head == 100 * BLOCK  # type: ignore[union-attr]


def test_reconnect_resyncs_audio_from_host_time_and_resets_the_video_clock() -> None:
    ing = make()
    play_audio(ing, range(50))
    ing.status(SourceStatus(kind="disconnected", source="t", modality="audio"))
    assert not ing.audio_up
    ing.status(SourceStatus(kind="reconnected", source="t", modality="audio"))
    assert ing.audio_up
    x = np.ones(BLOCK, np.float32)
    # the device clock restarted near 0 after a 1 s outage
    for k in range(20):
        ing.audio(x, device_time_s=k * BLOCK / FS, host_ns=H0 + int((2.0 + k * 0.02) * 1e9))
    assert ing.counters["audio_gaps"] == 1
    assert ing.counters["audio_gap_samples"] == FS  # 1.0 s to 2.0 s
    assert ing.counters["device_clock_jumps"] == 0


def test_statuses_update_modalities_and_are_queued() -> None:
    ing = make()
    ing.status(SourceStatus(kind="error", source="t", modality="audio", recoverable=False))
    assert not ing.audio_up and ing.video_up and not ing.ended
    ing.status(SourceStatus(kind="eos", source="t"))
    assert ing.ended and len(ing.statuses) == 2


def test_video_clock_smooths_jitter_and_a_resized_frame_is_converted() -> None:
    ing = make()
    rng = np.random.default_rng(0)
    f = np.zeros((6, 8, 3), np.uint8)
    for k in range(300):
        t = k / 30
        ing.video(f, device_time_s=t, host_ns=H0 + int((t + rng.uniform(-0.01, 0.01)) * 1e9))
    fr = ing.frame_ring
    assert fr is not None
    assert abs(fr.host_ns(fr.latest()) - (H0 + int(299 / 30 * 1e9))) < 2_000_000
    # a frame of another size is converted to the stream's, with one warning per change
    ing.video(np.full((12, 16, 3), 200, np.uint8), device_time_s=10.0, host_ns=H0 + 10**10)
    ing.video(np.full((12, 16, 3), 200, np.uint8), device_time_s=10.03, host_ns=H0 + 10**10 + 3e7)
    assert ing.counters["format_changes"] == 1 and ing.counters["format_errors"] == 0
    assert ing.statuses[-1].kind == "format_changed" and "16x12" in ing.statuses[-1].message
    assert np.all(fr.view(fr.latest()) == 200) and fr.view(fr.latest()).shape == (6, 8, 3)
    # something that is not an image is dropped and counted, once reported
    ing.video(np.zeros((4,), np.float32), device_time_s=10.1, host_ns=H0 + 10**10 + 10**8)
    assert ing.counters["format_errors"] == 1 and ing.statuses[-1].kind == "warning"
    assert ing.capture_to_ring.count == 302
    # stream time 0 is the fitted time of the first frame (H0), not its jittered arrival
    assert abs(ing.stream_time_s(H0 + 10**9) - 1.0) < 1e-3


def test_files_wait_for_the_consumer_instead_of_overwriting() -> None:
    ing = make(live=False, backpressure=True, video_slots=4, max_block_s=5.0)
    f = np.zeros((6, 8, 3), np.uint8)
    done = threading.Event()

    def produce() -> None:
        for k in range(10):
            ing.video(f, device_time_s=k / 30, host_ns=H0 + k)
        done.set()

    t = threading.Thread(target=produce)
    t.start()
    fr = ing.frame_ring
    assert fr is not None
    taken = []
    while True:
        time.sleep(0.005)  # a slow consumer
        seq = fr.take()
        if seq >= 0:
            taken.append(seq)
            fr.release(seq)
        elif done.is_set():
            break
    t.join()
    assert taken == list(range(10))  # nothing lost, nothing reordered
    assert fr.overruns == 0 and ing.counters["backpressure_timeouts"] == 0


def test_back_pressure_gives_up_after_max_block() -> None:
    ing = make(live=False, backpressure=True, video_slots=4, max_block_s=0.05)
    f = np.zeros((6, 8, 3), np.uint8)
    for k in range(6):  # nobody consumes
        ing.video(f, device_time_s=k / 30, host_ns=H0 + k)
    assert ing.counters["backpressure_timeouts"] >= 2 and not ing.blocked


def test_a_self_paced_file_counts_latency_from_each_frames_time() -> None:
    """A file played out in real time is delivered at each frame's time or later (the
    pipeline's own thread lets frames in between its work): its latency starts at the
    frame's time, so a frame let in late does not look faster than it was. A file read
    at full speed counts from when the frame is let in."""
    fmt = VideoFormat(width=4, height=2, fps=30.0)
    frame = np.zeros((2, 4, 3), np.uint8)
    for paced in (True, False):
        ing = Ingest(
            name="f",
            audio=None,
            video=fmt,
            live=False,
            config=IngestConfig(self_paced=paced, backpressure=False),
        )
        due = time.monotonic_ns() - 5_000_000  # let in 5 ms after its time
        ing.video(frame, device_time_s=None, host_ns=due)
        base = ing.frame_ring.base_ns(0)
        if paced:
            assert base == due
        else:
            assert base >= due + 5_000_000
