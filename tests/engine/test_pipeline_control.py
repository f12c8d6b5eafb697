"""The pipeline under faults and control: degraded mode, gaps, overload, stop, Ctrl-C."""

from __future__ import annotations

import _thread
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from avfuse.engine.pipeline import Pipeline, PipelineConfig
from avfuse.errors import StreamFormatError, UsageError
from avfuse.manifest import load_manifest
from tests.engine.pipeline_kit import (
    Collect,
    ScriptedSource,
    SlowBackend,
    config,
    run,
)


def test_audio_fault_degrades_and_the_run_goes_on(backend) -> None:
    sink = Collect()
    src = ScriptedSource(duration_s=3.0, card=(2.0, 2.6), audio_fault_at=1.0)
    summary = run([src], backend, sink)
    faults = sink.of("fault")
    assert len(faults) == 1 and faults[0].modality == "audio"
    assert "unplugged" in faults[0].message and faults[0].recoverable is False
    ev = sink.of("event")
    assert [e.label for e in ev] == ["3"]
    assert ev[0].degraded is True and ev[0].modalities == ("video",)
    assert summary.frames == 90


def test_source_crash_is_a_fault_record_not_a_crash(backend) -> None:
    sink = Collect()
    src = ScriptedSource(duration_s=3.0, card=(0.5, 1.0), raise_at=1.5)
    summary = run([src], backend, sink)
    faults = sink.of("fault")
    assert len(faults) == 1 and "camera driver crashed" in faults[0].message
    assert 40 <= summary.frames <= 46
    assert [e.label for e in sink.of("event")] == ["3"]
    assert sink.closed == 1


def test_audio_gap_is_reported_and_marked(backend) -> None:
    sink = Collect()
    src = ScriptedSource(duration_s=3.0, card=None, audio_gap=(1.0, 1.5))
    summary = run([src], backend, sink)
    assert summary.streams[0]["audio_gaps"] == 1
    assert summary.streams[0]["audio_gap_samples"] == 8000
    warnings = [w for w in sink.of("warning") if w.kind == "audio_gap"]
    assert len(warnings) == 1 and "8000" in warnings[0].message


def test_realtime_plays_a_file_at_its_own_pace(backend) -> None:
    sink = Collect()
    summary = run([ScriptedSource(duration_s=1.0, card=None)], backend, sink, realtime=True)
    # the last frame is at 0.967 s of stream time and is not let in before then
    assert summary.wall_s >= 0.95
    assert summary.frames + sum(summary.drops.values()) == 30


def test_overload_keeps_latency_bounded(manifest_path: Path) -> None:
    be = SlowBackend().load(load_manifest(manifest_path))
    sink = Collect()
    src = ScriptedSource(duration_s=2.0, live=True, card=None)
    try:
        summary = run([src], be, sink, queue_depth=2, max_batch=1)
    finally:
        be.close()
    frames = summary.frames
    drops = summary.drops
    # 60 frames at 30 fps against ~10 inferences a second: most are dropped, counted
    assert frames + sum(drops.values()) >= 60 - 2
    assert drops.get("queue_full", 0) > 20
    # an unbounded backlog would reach ~4 s; latest-wins keeps it to a few inferences
    worst_ms = summary.latency_ms["end_to_end"]["max"]
    assert worst_ms < 1500
    # live statistics about once a second
    assert len(sink.stats) in (1, 2, 3)
    assert sink.stats[0].drops > 0 and sink.stats[0].latency_p99_ms > 0


def test_stop_from_another_thread(backend) -> None:
    sink = Collect()
    src = ScriptedSource(live=True, forever=True, card=None)
    p = Pipeline(streams=[src], backend=backend, sinks=[sink], config=config()).start()
    time.sleep(0.5)
    p.stop()
    assert p.wait(5.0)
    assert p.summary is not None and p.summary.frames > 0
    assert sink.closed == 1 and sink.records[-1].type == "summary"
    assert src.stopping.is_set()


def test_ctrl_c_flushes_and_closes(backend) -> None:
    sink = Collect()
    src = ScriptedSource(live=True, forever=True, card=(0.0, 100.0))
    p = Pipeline(streams=[src], backend=backend, sinks=[sink], config=config())
    timer = threading.Timer(0.8, _thread.interrupt_main)
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        p.run()
    timer.cancel()
    # the open "3" segment was flushed into an event, then the summary, then close
    assert [e.label for e in sink.of("event")] == ["3"]
    assert sink.records[-1].type == "summary" and sink.closed == 1


def test_wrong_rate_and_missing_modality_are_rejected(backend) -> None:
    with pytest.raises(StreamFormatError, match="16000"):
        Pipeline(streams=[ScriptedSource(rate=8000)], backend=backend, config=config())
    with pytest.raises(UsageError, match="mode"):
        Pipeline(
            streams=[ScriptedSource(audio=False)],
            backend=backend,
            config=config(mode="audio"),
        )
    with pytest.raises(UsageError, match="queue_depth"):
        PipelineConfig(queue_depth=0)


def test_recurrent_state_is_carried_per_stream_and_reset_after_a_gap(tmp_path: Path) -> None:
    from avfuse.backends.ort import OnnxRuntimeBackend
    from tests.fixtures.models import write_tiny_model as write_stateful

    class RecordingBackend(OnnxRuntimeBackend):
        """The real ONNX Runtime backend, remembering which streams were reset."""

        def __init__(self) -> None:
            super().__init__()
            self.resets: list[Any] = []

        def reset_state(self, stream: Any = None) -> None:
            self.resets.append(stream)
            super().reset_state(stream)

    be = RecordingBackend().load(load_manifest(write_stateful(tmp_path, stateful=True)))
    try:
        src = ScriptedSource(name="cam", duration_s=3.0, card=None, audio_gap=(1.0, 1.5))
        summary = run([src], be, Collect())
        assert summary.streams[0]["audio_gaps"] == 1
        # state was carried under the stream's name, and reset for it after the gap
        assert "cam" in be._state
        assert "cam" in be.resets
    finally:
        be.close()


def test_the_loop_sleeps_until_there_is_work(backend) -> None:
    # a live stream: 30 frames and 50 audio blocks a second for 2 s, with a slow source
    # of work; a loop that polls every 0.5 ms would wake ~4000 times, one that sleeps
    # until a frame, an audio deadline or the stats tick wakes about once per frame
    sink = Collect()
    src = ScriptedSource(duration_s=2.0, live=True, card=(0.5, 1.5))
    summary = run([src], backend, sink)
    assert summary.frames + sum(summary.drops.values()) == 60  # a loaded machine may drop
    assert summary.wakeups <= 3 * 60 + 20


def test_an_idle_stream_costs_no_wakeups(tmp_path: Path) -> None:
    # video stops for 1.5 s while nothing else happens: no audio is read by this
    # video-only run, so the loop sleeps through the gap
    from avfuse.backends import create_backend
    from tests.engine.pipeline_kit import write_video_only_model

    sink = Collect()
    src = ScriptedSource(duration_s=2.5, live=True, audio=False, video_gap=(0.5, 2.0))
    m = load_manifest(write_video_only_model(tmp_path))
    with create_backend("ort", threads=1).load(m) as be:
        summary = run([src], be, sink, stats_interval_s=0.5)
    # 2.5 s at 30 fps minus the 1.5 s gap
    assert summary.frames + sum(summary.drops.values()) == 30
    assert summary.wakeups <= 30 + 2 * 8 + 5  # frames, stats ticks, start and end


def test_recurrent_state_is_reset_after_a_video_gap(tmp_path: Path) -> None:
    from avfuse.backends.ort import OnnxRuntimeBackend
    from tests.fixtures.models import write_tiny_model as write_stateful

    class RecordingBackend(OnnxRuntimeBackend):
        def __init__(self) -> None:
            super().__init__()
            self.resets: list[Any] = []

        def reset_state(self, stream: Any = None) -> None:
            self.resets.append(stream)
            super().reset_state(stream)

    be = RecordingBackend().load(load_manifest(write_stateful(tmp_path, stateful=True)))
    try:
        src = ScriptedSource(name="cam", duration_s=3.0, card=None, video_gap=(1.0, 1.5))
        run([src], be, Collect())
        assert be.resets.count("cam") == 1  # once, at the first frame after the gap
    finally:
        be.close()
