"""Aligner: the alignment acceptance test (drift + jitter + A/V offset), hop snapping,
coverage of partial windows, late audio, and audio-driven windows."""

from __future__ import annotations

import numpy as np
import pytest

from avfuse.engine.align import Aligner, AudioStepper
from avfuse.engine.clock import SampleClock
from avfuse.engine.ingest import Ingest
from avfuse.engine.ring import SampleRing
from avfuse.engine.sources.base import AudioFormat, VideoFormat
from avfuse.kernels.reference import AudioParams

FS = 16000
H0 = 9_000_000_000_000


def simulate(
    *,
    minutes: float,
    drift_ppm: float,
    jitter_ms: float,
    av_offset_ms: float,
    block: int = 160,
    fps: float = 30.0,
    video_drift_ppm: float = -50.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, Ingest]:
    """Feed an Ingest with simulated device streams faster than real time.

    True time t (s). The audio crystal runs `drift_ppm` fast: sample n is captured at
    t = n / (FS * (1 + drift)); the audio path adds `av_offset_ms` of latency that the
    source does not know about, so the sample heard at t is stamped t + offset. Both
    modalities' host stamps jitter uniformly by +-jitter_ms. The video device clock
    (PTS) has its own drift and origin.

    Returns:
        (frame true times, window end error in ms before snapping, the ingest).
    """
    rng = np.random.default_rng(seed)
    ing = Ingest(
        name="sim",
        audio=AudioFormat(sample_rate=FS, block_size=block),
        video=VideoFormat(width=8, height=8, fps=fps),
        live=True,
    )
    assert ing.audio_ring is not None and ing.audio_clock is not None
    assert ing.frame_ring is not None
    al = Aligner(
        params=AudioParams(), ring=ing.audio_ring, clock=ing.audio_clock, av_offset_ms=av_offset_ms
    )
    fs_true = FS * (1 + drift_ppm * 1e-6)
    off = av_offset_ms / 1e3
    jit = jitter_ms / 1e3
    frame = np.zeros((8, 8, 3), np.uint8)
    samples = np.zeros(block, np.float32)
    n_video = int(minutes * 60 * fps)
    times, errs = np.empty(n_video), np.empty(n_video)
    a = v = 0
    while v < n_video:
        ta = a * block / fs_true + off  # when block a reaches the host, before jitter
        tv = v / fps
        if ta <= tv + 0.05:  # deliveries interleave in arrival order
            host = H0 + int((ta + rng.uniform(-jit, jit)) * 1e9)
            ing.audio(samples, device_time_s=a * block / FS, host_ns=host)
            a += 1
            continue
        host = H0 + int((tv + rng.uniform(-jit, jit)) * 1e9)
        ing.video(frame, device_time_s=3.0 + tv * (1 + video_drift_ppm * 1e-6), host_ns=host)
        seq = ing.frame_ring.latest()
        w = al.window_for(ing.frame_ring.host_ns(seq))
        times[v] = tv
        if w is None:  # no audio has arrived yet (the first `offset` of the stream)
            assert tv <= off + 0.05
            errs[v] = np.nan
            v += 1
            continue
        # the audio that belongs with the frame at t was captured at t: index t * fs_true
        errs[v] = (w.exact_end_index - tv * fs_true) / FS * 1e3
        assert w.end_index % 160 == 0 and 0 <= w.exact_end_index - w.end_index < 160
        v += 1
    return times, errs, ing


def test_alignment_acceptance_10_minutes_300ppm_10ms_jitter_120ms_offset() -> None:
    times, errs, ing = simulate(minutes=10, drift_ppm=300, jitter_ms=10, av_offset_ms=120)
    after = np.abs(errs[times > 5.0])
    p99 = float(np.percentile(after, 99))
    print(
        f"\nalignment error after 5 s over 10 min: p50 {np.percentile(after, 50):.3f} ms, "
        f"p99 {p99:.3f} ms, max {after.max():.3f} ms "
        f"(audio drift fitted {ing.audio_clock.model.drift_ppm:.1f} ppm)"  # type: ignore[union-attr]
    )
    assert p99 < 2.0
    assert ing.counters["audio_gaps"] == 0 and ing.clock_jumps == 0
    # the audio clock runs fast, so the host runs slower than it: about -300 ppm
    assert ing.audio_clock.model.drift_ppm == pytest.approx(-300, abs=40)  # type: ignore[union-attr]


def test_no_offset_no_drift_is_unbiased() -> None:
    times, errs, _ = simulate(minutes=0.5, drift_ppm=0, jitter_ms=1, av_offset_ms=0)
    # with nothing to correct, the windows end where the frames are
    assert abs(np.median(errs[times > 5])) < 0.5


def make(window_s: float = 1.0, deadline_ms: float = 50.0) -> tuple[Aligner, SampleRing]:
    ring = SampleRing(capacity=FS * 5)
    clock = SampleClock(sample_rate=FS)
    for k in range(100):  # sample k*160 captured at H0 + k*10 ms exactly
        clock.update(k * 160, H0 + k * 10_000_000)
    al = Aligner(
        params=AudioParams(window_s=window_s),
        ring=ring,
        clock=clock,
        av_offset_ms=20.0,
        deadline_ms=deadline_ms,
    )
    return al, ring


def test_window_end_is_snapped_down_to_the_hop_grid() -> None:
    al, _ = make()
    w = al.window_for(H0 + 1_234_567_890 - 20_000_000)  # +20 ms offset -> 1.23456789 s
    assert w is not None
    assert w.exact_end_index == pytest.approx(1.23456789 * FS, abs=0.01)
    assert w.end_index == 19680 and w.start_index == 19680 - FS  # floor(19753.1 / 160) * 160
    assert w.target_ns == H0 + 1_234_567_890


def test_partial_and_late_audio_are_reported() -> None:
    al, ring = make()
    w = al.window_for(H0 + 1_000_000_000)  # ends at 1.02 s -> index 16320
    assert w is not None and w.end_index == 16320
    ring.write(np.ones(12000, np.float32), 0)
    assert not al.complete(w)
    out = np.empty(FS, np.float32)
    res = al.read(w, out)
    # the window is [320, 16320): 11680 of its samples arrived so far
    assert res.valid_samples == 12000 - 320 and al.present(res)
    assert res.coverage == pytest.approx(11680 / 16000)
    ring.write(np.ones(6000, np.float32), 12000)
    assert al.complete(w) and al.read(w, out).missing == 0


def test_blocking_wait_gives_up_at_the_deadline() -> None:
    al, ring = make(deadline_ms=30.0)
    ring.write(np.ones(4000, np.float32), 0)
    out = np.empty(FS, np.float32)
    w, res = al.wait(H0 + 1_000_000_000, out)
    assert w is not None and res is not None
    assert not al.present(res) and res.valid_samples == 4000 - 320


def test_no_audio_clock_no_window() -> None:
    ring = SampleRing(capacity=FS)
    al = Aligner(params=AudioParams(), ring=ring, clock=SampleClock(sample_rate=FS))
    assert al.window_for(H0) is None
    with pytest.raises(ValueError, match="rate"):
        Aligner(params=AudioParams(), ring=ring, clock=SampleClock(sample_rate=8000))


def test_audio_stepper_emits_hop_aligned_windows_and_skips_when_behind() -> None:
    ring = SampleRing(capacity=FS * 3)
    st = AudioStepper(params=AudioParams(), ring=ring, step_s=0.1)
    assert st.poll() is None
    ring.write(np.ones(FS + 1600, np.float32), 0)
    ends = []
    while (w := st.poll()) is not None:
        ends.append(w.end_index)
        assert w.start_index == w.end_index - FS
    assert ends == [16000, 17600]
    ring.write(np.ones(FS * 5, np.float32), ring.head)  # the consumer fell far behind
    w = st.poll()
    assert w is not None and w.start_index >= ring.tail and st.skipped > 0
