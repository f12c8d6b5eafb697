"""The pipeline end to end: events, alignment, streaming mel, streams and batching."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from avfuse.backends import create_backend
from avfuse.engine.postprocess import PostprocessConfig
from avfuse.manifest import load_manifest
from tests.engine.pipeline_kit import (
    KERNELS,
    Collect,
    ScriptedSource,
    run,
    write_video_only_model,
)


@pytest.fixture(autouse=True, params=["reference", "auto"])
def kernels(request: pytest.FixtureRequest):
    """Every flow test on the reference kernels (the definition) and on the default ones."""
    KERNELS["impl"] = request.param
    yield request.param
    KERNELS["impl"] = "reference"


def test_file_run_end_to_end(backend) -> None:
    sink = Collect()
    src = ScriptedSource(duration_s=3.0, card=(1.0, 2.0), noise=None)
    summary = run([src], backend, sink)
    events = sink.of("event")
    assert [e.label for e in events] == ["3"]
    ev = events[0]
    assert list(ev.to_dict()) == [
        "type",
        "schema",
        "event_id",
        "label",
        "score",
        "start",
        "end",
        "modalities",
        "degraded",
        "latency_ms",
        "stream",
        "model",
        "stream_time",
        "wall_time",
    ]
    assert ev.stream == "scripted" and ev.model == "tiny" and ev.stream_time == ev.end
    # the onset came first, the moment the segment had lasted the minimum duration
    onsets = sink.of("onset")
    assert [(o.label, o.event_id, o.start) for o in onsets] == [("3", ev.event_id, ev.start)]
    assert sink.records.index(onsets[0]) < sink.records.index(ev)
    assert onsets[0].stream_time == pytest.approx(ev.start + 0.4, abs=0.04)
    # stream time: the card is shown during [1.0, 2.0) s; smoothing delays by a few frames
    assert ev.start == pytest.approx(1.075, abs=0.075)
    assert 2.0 <= ev.end <= 2.2
    assert ev.modalities == ("audio", "video") and ev.degraded is False
    assert ev.score > 0.9 and ev.latency_ms >= 0
    # a file is processed completely: every frame, no drops
    assert summary.type == "summary" and sink.records[-1] is summary
    assert summary.stopped_by == "end" and summary.sink_errors == 0
    assert summary.frames == 90 and summary.events == 1
    assert sum(summary.drops.values()) == 0
    assert summary.latency_ms["end_to_end"]["count"] == 90
    assert summary.streams[0]["audio_gaps"] == 0
    assert len(sink.overlays) == 90 and sink.closed == 1
    assert any(o.label == "3" for o in sink.overlays)


def test_audio_drives_its_label_through_alignment(backend) -> None:
    # noise from 1.0 to 2.0 s; the tiny model says "7" once about 3/4 of its 1 s window
    # is noise, i.e. while the window end is in ~[1.75, 2.25] s; the card never shows
    sink = Collect()
    src = ScriptedSource(duration_s=3.5, card=None, noise=(1.0, 2.0))
    run([src], backend, sink)
    events = sink.of("event")
    assert [e.label for e in events] == ["7"]
    assert events[0].start == pytest.approx(1.825, abs=0.125)
    assert 2.2 <= events[0].end <= 2.5


def test_streaming_mel_gives_the_same_events_as_full_windows(backend) -> None:
    def once(streaming: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        sink = Collect()
        src = ScriptedSource(duration_s=3.5, card=(0.4, 0.9), noise=(1.0, 2.0))
        summary = run([src], backend, sink, streaming_mel=streaming)
        return sink.of("event"), summary.streams[0]

    (ev_stream, st), (ev_full, _) = once(True), once(False)

    def key(e: dict[str, Any]) -> tuple[Any, ...]:
        return (e.label, e.start, e.end, e.modalities, e.degraded)

    assert [key(e) for e in ev_stream] == [key(e) for e in ev_full]
    for a, b in zip(ev_stream, ev_full, strict=True):
        assert a.score == pytest.approx(b.score, abs=0.002)
    assert [e.label for e in ev_full] == ["3", "7"]
    # consecutive frames' windows share all but ~3 of their 97 mel frames
    assert st["mel_frames_reused"] > 10 * st["mel_frames_computed"]


def test_av_offset_shifts_the_audio_window(backend) -> None:
    # the audio is stamped 500 ms late relative to the video; with the offset given,
    # the burst lines up with the same frames as without any offset
    def once(offset_ms: float, shift: float) -> dict[str, Any]:
        sink = Collect()
        src = ScriptedSource(duration_s=3.5, card=None, noise=(1.0 + shift, 2.0 + shift))
        run([src], backend, sink, av_offset_ms=offset_ms)
        return sink.of("event")[0]

    plain = once(0.0, 0.0)
    shifted = once(500.0, 0.5)
    assert abs(plain.start - shifted.start) <= 0.07


def test_audio_only_stream_uses_audio_driven_windows(backend) -> None:
    sink = Collect()
    src = ScriptedSource(duration_s=3.0, video=False, card=None, noise=(1.0, 2.0))
    summary = run([src], backend, sink, step_ms=50.0)
    assert summary.streams[0]["mode"] == "audio"
    # windows end every 50 ms from 1.0 s (the first full window) to 3.0 s
    assert 38 <= summary.frames <= 41
    ev = sink.of("event")
    assert [e.label for e in ev] == ["7"]
    assert ev[0].modalities == ("audio",) and ev[0].degraded is True


def test_multi_stream_micro_batches(backend) -> None:
    sink = Collect()
    srcs = [
        ScriptedSource(name=f"cam{i}", duration_s=2.0, card=(0.5, 1.5) if i == 1 else None)
        for i in range(3)
    ]
    summary = run(srcs, backend, sink, max_batch=3, max_wait_ms=20.0)
    assert summary.frames == 180
    assert summary.batches < 180  # several streams per inference call
    ev = sink.of("event")
    assert [(e.stream, e.label) for e in ev] == [("cam1", "3")]


def test_combined_sources_make_one_stream(backend) -> None:
    sink = Collect()
    cam = ScriptedSource(name="cam", audio=False, duration_s=2.0, card=(0.5, 1.5))
    mic = ScriptedSource(name="mic", video=False, duration_s=2.0, card=None)
    summary = run([[cam, mic]], backend, sink)
    assert summary.streams[0]["name"] == "cam+mic"
    assert summary.streams[0]["mode"] == "fused"
    assert [e.modalities for e in sink.of("event")] == [("audio", "video")]


def test_video_only_model_with_a_fixed_batch(tmp_path: Path) -> None:
    m = load_manifest(write_video_only_model(tmp_path))
    sink = Collect()
    srcs = [ScriptedSource(name=f"s{i}", duration_s=2.0, card=(0.5, 1.5)) for i in range(2)]
    with create_backend("ort", threads=1).load(m) as be:
        summary = run(srcs, be, sink, max_batch=4)
    # the fixed batch of 1 caps micro-batching, and the run says so
    assert any(w.kind == "batch" for w in sink.of("warning"))
    assert summary.frames == 120 and summary.batches == 120
    assert {s["mode"] for s in summary.streams} == {"video"}
    ev = sink.of("event")
    assert sorted(e.stream for e in ev) == ["s0", "s1"]
    assert all(e.modalities == ("video",) and e.degraded is False for e in ev)


def test_postprocess_config_is_used(backend) -> None:
    # a minimum duration longer than the card suppresses the event
    sink = Collect()
    src = ScriptedSource(duration_s=3.0, card=(1.0, 2.0))
    run([src], backend, sink, postprocess=PostprocessConfig(min_duration_s=2.0))
    assert sink.of("event") == []
