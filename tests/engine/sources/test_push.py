"""PushSource and the callback: an application pushes its own frames and audio with the
timestamps it has (a camera PTS that jitters, a gap where frames were dropped, bursts),
starts the run with `avfuse.api.start` and takes typed records from `on_record`.

Real pipeline, real ONNX Runtime, hand-built graphs (tests/fixtures/graphs.py) whose
outputs show what the model was fed."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from avfuse import api
from avfuse.engine.pipeline import PipelineConfig
from avfuse.engine.records import Summary, Value
from avfuse.engine.sources.base import VideoFormat
from avfuse.engine.sources.push import PushSource
from avfuse.errors import SinkError, UsageError
from tests.fixtures import graphs as g

pytestmark = pytest.mark.timeout(30)

FMT = VideoFormat(width=16, height=16, fps=30.0)
CFG = PipelineConfig(kernel_impl="reference")


@pytest.fixture
def load(tmp_path: Path):
    """Write and load hand-built models; closed after the test."""
    loaded = []

    def make(tiny: g.Tiny) -> Any:
        be = g.load(g.write(tmp_path / tiny.manifest["name"], tiny))
        loaded.append(be)
        return be

    yield make
    for be in loaded:
        be.close()


def _jitter(k: int) -> float:
    """A camera PTS error pattern in [-4, +4] ms (deterministic)."""
    return ((k * 7) % 5 - 2) * 0.002


@pytest.mark.timeout(10)
def test_replay_keeps_the_apps_jittered_timestamps_and_restarts_state_after_a_gap(load) -> None:
    # 60 frames at 30 fps on the app's clock (starting at 1000 s, +-4 ms jitter); frames
    # 20..34 were dropped (a 0.5 s gap). The stateful video model counts its calls since
    # the stream's start or its last gap: 100, 101, ...
    be = load(g.state_counter(video=True))
    src = PushSource(name="app", sample_rate=None, video=FMT, live=False)
    got: list[Any] = []
    session = api.start(sources=[src], backend=be, sinks=(), config=CFG, on_record=got.append)
    kept = [k for k in range(60) if not 20 <= k < 35]
    stamps = [1000.0 + k / 30 + _jitter(k) for k in kept]
    for k, t in zip(kept, stamps, strict=True):
        src.push_video(g.gray_frame(k), t)
    src.end()
    result = session.wait(timeout=20)
    assert result is not None
    vals = [r for r in got if isinstance(r, Value)]
    assert [v.stream for v in vals] == ["app"] * len(kept)
    assert [v.stream_time for v in vals] == [round(t - stamps[0], 3) for t in stamps]
    counts = [v.values[0] for v in vals]
    assert counts == [100.0 + n for n in range(20)] + [100.0 + n for n in range(25)]
    assert isinstance(got[-1], Summary) and got[-1].frames == len(kept)
    assert result.summary.drops.get("queue_full", 0) == 0  # a replay loses nothing


@pytest.mark.timeout(10)
def test_replayed_audio_with_a_gap_reads_zeros_where_samples_are_missing(load) -> None:
    # a ramp (sample i = (i + 1) 1e-5) pushed in 480-sample blocks timed by the app's
    # sample counter from 7.5 s; blocks 10..14 (samples 4800..7199) never come. A window
    # with less than half its 576 samples (min_audio_coverage) reads as all missing.
    be = load(g.waveform_window())
    src = PushSource(sample_rate=16000, video=None, live=False)
    got: list[Any] = []
    session = api.start(sources=[src], backend=be, sinks=(), config=CFG, on_record=got.append)
    x = g.ramp(9600)
    for b in range(20):
        if not 10 <= b < 15:
            src.push_audio(x[480 * b : 480 * (b + 1)], 7.5 + 480 * b / 16000)
    src.end()
    assert session.wait(timeout=20) is not None
    vals = [r for r in got if isinstance(r, Value)]
    assert len(vals) == 9600 // 512
    for k, v in enumerate(vals, start=1):
        e = 512 * k
        want = [j + 1 if j >= 0 and not 4800 <= j < 7200 else 0 for j in range(e - 576, e)]
        if sum(1 for x in want if x) < 288:
            want = [0] * 576
        assert v.degraded == (want == [0] * 576)
        assert np.round(np.asarray(v.values) * 1e5).astype(int).tolist() == want, k
        assert v.stream_time == round(e / 16000, 3)
    assert [r.kind for r in got if r.type == "warning"] == ["audio_gap"]


@pytest.mark.timeout(10)
def test_int16_audio_is_read_as_samples_over_32768(load) -> None:
    be = load(g.peak_score(kind="values"))  # reports each 512-sample chunk's peak
    src = PushSource(sample_rate=16000, live=False)
    got: list[Any] = []
    session = api.start(sources=[src], backend=be, sinks=(), config=CFG, on_record=got.append)
    src.push_audio(np.full(1024, -8192, np.int16), 0.0)
    src.end()
    assert session.wait(timeout=10) is not None
    assert [r.values for r in got if isinstance(r, Value)] == [(0.25,), (0.25,)]


@pytest.mark.timeout(15)
def test_live_frames_are_timed_by_the_apps_clock_not_by_their_arrival(load) -> None:
    # the app's camera buffers: 6 frames at a time arrive together every 200 ms. Timed by
    # arrival, frame j of a burst would be (5 - j) / 30 s late (up to 167 ms); timed by
    # the app's PTS through the clock fit, it is where its timestamp says.
    be = load(g.frame_mean())
    src = PushSource(sample_rate=None, video=FMT, live=True)
    got: list[Any] = []
    cfg = PipelineConfig(kernel_impl="reference", queue_depth=16)
    session = api.start(sources=[src], backend=be, sinks=(), config=cfg, on_record=got.append)
    t0 = time.monotonic()
    for burst in range(8):
        wake = t0 + (burst + 1) * 6 / 30
        time.sleep(max(0.0, wake - time.monotonic()))
        for j in range(6):
            k = 6 * burst + j
            src.push_video(g.gray_frame(k), 50.0 + k / 30)
    src.end()
    assert session.wait(timeout=10) is not None
    errors = [v.stream_time - round(v.values[0] * 255) / 30 for v in got if isinstance(v, Value)]
    assert len(errors) >= 30
    assert float(np.median(np.abs(errors))) < 0.02
    assert max(abs(e) for e in errors[12:]) < 0.05  # after the first bursts the fit holds


@pytest.mark.timeout(20)
def test_live_audio_and_video_are_aligned_by_their_timestamps_not_by_delivery(load) -> None:
    # the app's audio callback hands over 100 ms blocks 0.3 s after capture; frames come
    # on time. Both carry timestamps on the app's one timeline. Card: frames 30..59;
    # sound: samples [24000, 40000), first seen by the frame 46/30 s (its 512-sample window
    # ends at 1.536 s), last by 76/30 s: by the timestamps the sound event starts 16 frames
    # after the light event and ends 17 frames after it.
    be = load(g.sound_and_light())
    src = PushSource(sample_rate=16000, video=FMT, live=True)
    got: list[Any] = []
    cfg = PipelineConfig(kernel_impl="reference", audio_deadline_ms=600.0, queue_depth=8)
    session = api.start(sources=[src], backend=be, sinks=(), config=cfg, on_record=got.append)
    audio = np.zeros(48000, np.float32)
    audio[24000:40000] = g.square(16000, 0.05)
    pushes = [(k / 30, "v", k) for k in range(90)]
    pushes += [(b / 16000 + 0.3, "a", b) for b in range(0, 48000, 1600)]
    t0 = time.monotonic()
    for due, kind, i in sorted(pushes):
        time.sleep(max(0.0, t0 + due - time.monotonic()))
        if kind == "v":
            src.push_video(g.gray_frame(255 if 30 <= i < 60 else 0), i / 30)
        else:
            src.push_audio(audio[i : i + 1600], i / 16000)
    src.end()
    assert session.wait(timeout=10) is not None
    events = {e.label: e for e in got if e.type == "event"}
    light, sound = events["light"], events["sound"]
    assert sound.start - light.start == pytest.approx(16 / 30, abs=0.04)
    assert sound.end - light.end == pytest.approx(17 / 30, abs=0.04)


@pytest.mark.timeout(10)
def test_timestamps_must_increase_per_modality(load) -> None:
    be = load(g.frame_mean())
    src = PushSource(sample_rate=16000, video=FMT, live=True)
    with api.start(sources=[src], backend=be, sinks=(), config=CFG):
        src.push_video(g.gray_frame(0), 2.0)
        src.push_audio(np.zeros(160, np.float32), 1.0)  # each modality on its own
        with pytest.raises(ValueError, match="does not increase"):
            src.push_video(g.gray_frame(0), 2.0)
        with pytest.raises(ValueError, match="does not increase"):
            src.push_audio(np.zeros(160, np.float32), 0.5)
        with pytest.raises(ValueError, match="not a finite"):
            src.push_video(g.gray_frame(0), float("nan"))
        with pytest.raises(ValueError, match="uint8"):
            src.push_video(np.zeros((16, 16, 3), np.float32), 3.0)
        with pytest.raises(ValueError, match="finite"):
            src.push_audio(np.array([0.0, np.inf], np.float32), 2.0)
        with pytest.raises(ValueError, match="non-empty"):
            src.push_audio(np.zeros(0, np.float32), 2.0)
        src.push_video(g.gray_frame(0), 2.1)  # the refused pushes left no trace
        src.end()


@pytest.mark.timeout(10)
def test_a_push_after_end_is_refused(load) -> None:
    be = load(g.frame_mean())
    src = PushSource(sample_rate=None, video=FMT, live=False)
    session = api.start(sources=[src], backend=be, sinks=(), config=CFG)
    src.push_video(g.gray_frame(1), 0.0)
    src.end()
    assert session.wait(timeout=10) is not None
    with pytest.raises(UsageError, match="was ended"):
        src.push_video(g.gray_frame(2), 1.0)


@pytest.mark.timeout(15)
def test_a_push_before_the_pipeline_starts_is_refused_at_once() -> None:
    src = PushSource(sample_rate=None, video=FMT)
    outcome: list[BaseException] = []

    def push() -> None:
        try:
            src.push_video(g.gray_frame(0), 0.0)
        except BaseException as e:  # noqa: BLE001 - what the app would get
            outcome.append(e)

    t = threading.Thread(target=push, daemon=True)
    t.start()
    t.join(1.0)
    assert outcome and isinstance(outcome[0], UsageError)
    assert "start the pipeline" in str(outcome[0])


@pytest.mark.timeout(10)
def test_on_record_gets_typed_records_as_they_happen(load) -> None:
    be = load(g.bright_probabilities())
    src = PushSource(sample_rate=None, video=VideoFormat(width=8, height=8, fps=10.0), live=False)
    got: list[Any] = []
    session = api.start(sources=[src], backend=be, sinks=(), config=CFG, on_record=got.append)
    for k in range(10):  # bright frames 3..6 (0.3-0.7 s)
        src.push_video(np.full((8, 8, 3), 255 if 3 <= k < 7 else 0, np.uint8), k / 10)
    src.end()
    result = session.wait(timeout=10)
    assert result is not None
    kinds = [r.type for r in got]
    assert kinds == ["onset", "event", "summary"]
    assert (got[1].label, got[1].start, got[1].end, got[1].model) == ("bright", 0.3, 0.7, "bright")
    assert got == result.records  # the callback saw what the run returns, in order


@pytest.mark.timeout(10)
def test_a_callback_that_raises_is_a_sink_fault_and_the_run_drains(load) -> None:
    be = load(g.frame_mean())
    src = PushSource(sample_rate=None, video=FMT, live=False)

    def broken(record: Any) -> None:
        raise RuntimeError("app bug")

    session = api.start(sources=[src], backend=be, sinks=(), config=CFG, on_record=broken)
    for k in range(5):
        src.push_video(g.gray_frame(k), k / 30)
    src.end()
    with pytest.raises(SinkError, match="callback: app bug") as e:
        session.wait(timeout=10)
    result = e.value.result  # type: ignore[attr-defined]
    assert [r.source for r in result.records if r.type == "fault"] == ["sink:callback"]
    assert len([r for r in result.records if isinstance(r, Value)]) == 5
