"""The pipeline under faults and control: degraded mode, gaps, overload, stop, Ctrl-C."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
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
    """A KeyboardInterrupt in the thread running the pipeline (what Ctrl-C raises where
    Python's default handler is installed) drains the run, then propagates. It is raised
    by a sink here, so the test does not depend on this process's signal dispositions."""

    class CtrlC(Collect):
        def on_record(self, record) -> None:  # noqa: ANN001
            super().on_record(record)
            if record.type == "onset":
                raise KeyboardInterrupt

    sink = CtrlC()
    src = ScriptedSource(live=True, forever=True, card=(0.0, 100.0))
    p = Pipeline(streams=[src], backend=backend, sinks=[sink], config=config())
    with pytest.raises(KeyboardInterrupt):
        p.run()
    # the open "3" segment was flushed into an event, then the summary, then close
    assert [e.label for e in sink.of("event")] == ["3"]
    assert sink.records[-1].type == "summary" and sink.closed == 1
    assert p.summary is not None and p.summary.stopped_by == "SIGINT"
    assert src.stopping.is_set()


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


class _StateRecorder:
    """The real ONNX Runtime backend on the stateful tiny model, recording per call the
    stream ids and the "logits" output (the running sum of the frames' own logits)."""

    @staticmethod
    def make(tmp_path: Path):  # noqa: ANN205 - a backend instance
        from avfuse.backends.ort import OnnxRuntimeBackend
        from tests.fixtures.models import write_tiny_model as write_stateful

        class Recording(OnnxRuntimeBackend):
            def __init__(self) -> None:
                super().__init__()
                self.calls: list[tuple[list[Any], np.ndarray]] = []
                self.resets: list[Any] = []

            def infer(self, feeds, *, streams=None, borrow=False):  # noqa: ANN001, ANN202
                out = super().infer(feeds, streams=streams, borrow=borrow)
                self.calls.append((list(streams or []), out["logits"].copy()))
                return out

            def reset_state(self, stream: Any = None) -> None:
                if stream is None:  # the end of the warm-up: forget its calls
                    self.calls.clear()
                else:
                    self.resets.append(stream)
                super().reset_state(stream)

        return Recording().load(load_manifest(write_stateful(tmp_path, stateful=True)))

    @staticmethod
    def series(be, name: str) -> np.ndarray:  # noqa: ANN001
        """The "none" logit of every decision of stream `name`, in order."""
        rows = [out[i] for ids, out in be.calls for i, sid in enumerate(ids) if sid == name]
        return np.array([r[-1] for r in rows])


def test_recurrent_state_is_carried_per_stream_and_reset_after_a_gap(tmp_path: Path) -> None:
    be = _StateRecorder.make(tmp_path)
    try:
        cams = [
            ScriptedSource(name="cam", duration_s=3.0, card=None, audio_gap=(1.0, 1.5)),
            ScriptedSource(name="other", duration_s=3.0, card=None),
        ]
        summary = run(cams, be, Collect(), max_batch=2, max_wait_ms=20.0)
        assert summary.streams[0]["audio_gaps"] == 1
        # black frames and silence (a full window of it from 1 s on): every frame adds the
        # same logits, so the carried state grows by the same step each call, per stream
        # and not shared between streams (whose items share batches)
        other = _StateRecorder.series(be, "other")
        steps = np.diff(other)[30:]
        assert len(other) == 90 and np.allclose(steps, steps[0]) and abs(steps[0]) > 1.0
        cam = _StateRecorder.series(be, "cam")
        falls = np.flatnonzero(np.diff(cam) * np.sign(steps[0]) < 0)
        # the gap reset it once, when the first window reaching past the gap was used
        # (frame time 1.5 s), back to about one frame's contribution; then it grows again
        assert len(falls) == 1 and be.resets == ["cam"]
        k = falls[0] + 1
        assert k == pytest.approx(45, abs=1)
        assert abs(cam[k]) < abs(cam[k - 1]) / 10
        assert np.allclose(np.diff(cam[k + 1 :]), np.diff(cam[k + 1 :])[0])
    finally:
        be.close()


def test_recurrent_state_is_reset_after_a_video_gap(tmp_path: Path) -> None:
    be = _StateRecorder.make(tmp_path)
    try:
        src = ScriptedSource(name="cam", duration_s=3.0, card=None, video_gap=(1.0, 1.5))
        run([src], be, Collect())
        cam = _StateRecorder.series(be, "cam")
        # 75 frames (90 less the half-second gap); one reset, at the frame after the gap
        falls = np.flatnonzero(np.diff(cam) * np.sign(cam[20] - cam[19]) < 0)
        assert len(cam) == 75 and be.resets == ["cam"] and list(falls + 1) == [30]
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
