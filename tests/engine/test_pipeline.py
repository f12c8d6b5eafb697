"""End-to-end pipeline tests with a tiny real ONNX model and a scripted in-test source."""

from __future__ import annotations

import _thread
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from avfuse.backends import create_backend
from avfuse.backends.ort import OnnxRuntimeBackend
from avfuse.engine.clock import now_ns
from avfuse.engine.pipeline import Pipeline, PipelineConfig
from avfuse.engine.postprocess import PostprocessConfig
from avfuse.engine.sinks import FrameOverlay, Sink
from avfuse.engine.sources.base import (
    AudioFormat,
    FrameSink,
    Source,
    SourceInfo,
    SourceStatus,
    VideoFormat,
)
from avfuse.errors import StreamFormatError, UsageError
from avfuse.kernels.reference import AudioParams, VideoParams
from avfuse.manifest import load_manifest

LABELS = [str(i) for i in range(10)] + ["none"]
FS = 16000
FPS = 30.0


# ---------------------------------------------------------------------- a tiny model


def write_tiny_model(folder: Path) -> Path:
    """A fused model that says "3" when the image is bright and "7" when there is sound.

    logits = [mean(audio), mean(image), mask_a, mask_v] @ W + b, with mean(image) = +2
    for a white frame, -2 for black; mean(log-mel) ~ -100 for silence, ~ -15 for noise.
    """
    import onnx
    from onnx import TensorProto, helper

    w = np.zeros((4, 11), np.float32)
    b = np.zeros(11, np.float32)
    w[1, 3] = 4.0  # bright card -> "3"
    w[0, 7] = 0.1  # loud audio -> "7" (only when the audio is present)
    w[2, 7] = 5.7
    b[10] = 2.0  # "none" otherwise
    nodes = [
        helper.make_node("ReduceMean", ["audio"], ["a3"], axes=[1, 2], keepdims=1),
        helper.make_node("Flatten", ["a3"], ["a"], axis=1),
        helper.make_node("ReduceMean", ["image"], ["v4"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Flatten", ["v4"], ["v"], axis=1),
        helper.make_node("Concat", ["a", "v", "mask"], ["f"], axis=1),
        helper.make_node("MatMul", ["f", "W"], ["fw"]),
        helper.make_node("Add", ["fw", "B"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [
            helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["batch", 64, 97]),
            helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, 48, 64]),
            helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["batch", 2]),
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 11])],
        initializer=[
            helper.make_tensor("W", TensorProto.FLOAT, w.shape, w.ravel().tolist()),
            helper.make_tensor("B", TensorProto.FLOAT, b.shape, b.tolist()),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, folder / "model.onnx")
    vp = asdict(VideoParams(height=48, width=64, colour="gray"))
    vp["mean"], vp["std"] = list(vp["mean"]), list(vp["std"])
    manifest = {
        "format": "avfuse-manifest",
        "version": 1,
        "name": "tiny",
        "model": {"file": "model.onnx", "sha256": None, "opset": 17},
        "fusion": "early",
        "labels": LABELS,
        "inputs": [
            {"name": "audio", "shape": ["batch", 64, 97], "dtype": "float32", "modality": "audio"},
            {
                "name": "image",
                "shape": ["batch", 1, 48, 64],
                "dtype": "float32",
                "modality": "video",
            },
            {"name": "mask", "shape": ["batch", 2], "dtype": "float32", "modality": "mask"},
        ],
        "outputs": [{"name": "logits", "shape": ["batch", 11], "dtype": "float32"}],
        "mask_order": ["audio", "video"],
        "preprocess": {"audio": asdict(AudioParams()), "video": vp},
    }
    import json

    path = folder / "manifest.json"
    path.write_text(json.dumps(manifest))
    return path


def write_video_only_model(folder: Path) -> Path:
    """A video-only model with a FIXED batch of 1: "3" for a bright frame, else "none"."""
    import json

    import onnx
    from onnx import TensorProto, helper

    w = np.zeros((1, 11), np.float32)
    b = np.zeros(11, np.float32)
    w[0, 3] = 4.0
    b[10] = 2.0
    nodes = [
        helper.make_node("ReduceMean", ["image"], ["v4"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Flatten", ["v4"], ["v"], axis=1),
        helper.make_node("MatMul", ["v", "W"], ["fw"]),
        helper.make_node("Add", ["fw", "B"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_video",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 1, 48, 64])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 11])],
        initializer=[
            helper.make_tensor("W", TensorProto.FLOAT, w.shape, w.ravel().tolist()),
            helper.make_tensor("B", TensorProto.FLOAT, b.shape, b.tolist()),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, folder / "model.onnx")
    vp = asdict(VideoParams(height=48, width=64, colour="gray"))
    vp["mean"], vp["std"] = list(vp["mean"]), list(vp["std"])
    manifest = {
        "format": "avfuse-manifest",
        "version": 1,
        "model": {"file": "model.onnx"},
        "fusion": "video",
        "labels": LABELS,
        "inputs": [{"name": "image", "shape": [1, 1, 48, 64], "modality": "video"}],
        "outputs": [{"name": "logits", "shape": [1, 11]}],
        "preprocess": {"video": vp},
    }
    path = folder / "manifest.json"
    path.write_text(json.dumps(manifest))
    return path


@pytest.fixture(scope="module")
def manifest_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def backend(manifest_path: Path):
    be = create_backend("ort", threads=1).load(load_manifest(manifest_path))
    yield be
    be.close()


class SlowBackend(OnnxRuntimeBackend):
    """ONNX Runtime made artificially slow: every batch takes at least `delay_s`."""

    delay_s = 0.1

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        time.sleep(self.delay_s)
        return super()._infer(feeds)


# ---------------------------------------------------------------------- a scripted source


class ScriptedSource(Source):
    """Plays black frames with a white card and silence with noise bursts, on virtual time.

    Timestamps: origin (monotonic ns at start) + scene time; device time = scene time
    (video) and sample index / rate (audio). Non-live runs as fast as it is consumed;
    live sleeps to wall time.
    """

    def __init__(
        self,
        *,
        name: str = "scripted",
        duration_s: float = 3.0,
        card: tuple[float, float] | None = (1.0, 2.0),
        noise: tuple[float, float] | None = None,
        live: bool = False,
        audio: bool = True,
        video: bool = True,
        audio_fault_at: float | None = None,
        raise_at: float | None = None,
        audio_gap: tuple[float, float] | None = None,
        rate: int = FS,
        forever: bool = False,
    ) -> None:
        super().__init__(name=name)
        self.duration_s = duration_s
        self.card = card
        self.noise = noise
        self.live = live
        self.has_audio = audio
        self.has_video = video
        self.audio_fault_at = audio_fault_at
        self.raise_at = raise_at
        self.audio_gap = audio_gap
        self.rate = rate
        self.forever = forever
        self.block = 320
        rng = np.random.default_rng(1)
        self._noise = (0.05 * rng.standard_normal(self.block)).astype(np.float32)
        self._silence = np.zeros(self.block, np.float32)
        self._black = np.zeros((120, 160, 3), np.uint8)
        self._white = np.full((120, 160, 3), 255, np.uint8)

    def _open(self) -> SourceInfo:
        return SourceInfo(
            name=self.name,
            audio=AudioFormat(sample_rate=self.rate, block_size=self.block)
            if self.has_audio
            else None,
            video=VideoFormat(width=160, height=120, fps=FPS) if self.has_video else None,
            live=self.live,
        )

    @staticmethod
    def _inside(t: float, span: tuple[float, float] | None) -> bool:
        return span is not None and span[0] <= t < span[1]

    def _run(self, sink: FrameSink) -> None:
        origin = now_ns()
        n_frames = int(self.duration_s * FPS)
        k = 0
        blk = 0
        audio_ok = self.has_audio
        while not self.stopping.is_set() and (self.forever or k < n_frames):
            tv = k / FPS
            ta = blk * self.block / self.rate
            if audio_ok and ta <= tv:
                if self.audio_fault_at is not None and ta >= self.audio_fault_at:
                    sink.status(
                        SourceStatus(
                            kind="error",
                            source=self.name,
                            modality="audio",
                            message="microphone unplugged",
                            recoverable=False,
                        )
                    )
                    audio_ok = False
                    continue
                if not self._inside(ta, self.audio_gap):
                    block = self._noise if self._inside(ta, self.noise) else self._silence
                    self._pace(origin, ta)
                    sink.audio(block, device_time_s=ta, host_ns=origin + int(ta * 1e9))
                blk += 1
                continue
            if self.raise_at is not None and tv >= self.raise_at:
                raise RuntimeError("camera driver crashed")
            if self.has_video:
                frame = self._white if self._inside(tv, self.card) else self._black
                self._pace(origin, tv)
                sink.video(frame, device_time_s=tv, host_ns=origin + int(tv * 1e9))
            elif not audio_ok:
                break
            k += 1

    def _pace(self, origin: int, t: float) -> None:
        if self.live:
            wait = origin + int(t * 1e9) - now_ns()
            if wait > 0:
                time.sleep(wait / 1e9)


class Collect(Sink):
    """Keeps every record, stats dict and frame overlay."""

    wants_frames = True

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.stats: list[dict[str, Any]] = []
        self.overlays: list[FrameOverlay] = []
        self.closed = 0

    def on_record(self, record: dict[str, Any]) -> None:
        self.records.append(record)

    def on_frame(self, frame: np.ndarray, overlay: FrameOverlay) -> None:
        assert frame.shape == (120, 160, 3)
        self.overlays.append(overlay)

    def on_stats(self, stats: dict[str, Any]) -> None:
        self.stats.append(stats)

    def close(self) -> None:
        self.closed += 1

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r["type"] == kind]


# ---------------------------------------------------------------------- tests


def config(**kw: Any) -> PipelineConfig:
    """Pipeline settings for tests: the reference kernels (the definition; no JIT wait)."""
    kw.setdefault("kernel_impl", "reference")
    return PipelineConfig(**kw)


def run(srcs: list[Any], backend: Any, sink: Sink, **kw: Any) -> dict[str, Any]:
    return Pipeline(streams=srcs, backend=backend, sinks=[sink], config=config(**kw)).run()


def test_file_run_end_to_end(backend) -> None:
    sink = Collect()
    src = ScriptedSource(duration_s=3.0, card=(1.0, 2.0), noise=None)
    summary = run([src], backend, sink)
    events = sink.of("event")
    assert [e["label"] for e in events] == ["3"]
    ev = events[0]
    assert set(ev) == {
        "type",
        "label",
        "score",
        "start",
        "end",
        "modalities",
        "degraded",
        "latency_ms",
    }
    # stream time: the card is shown during [1.0, 2.0) s; smoothing delays by a few frames
    assert 1.0 <= ev["start"] <= 1.15
    assert 2.0 <= ev["end"] <= 2.2
    assert ev["modalities"] == ["audio", "video"] and ev["degraded"] is False
    assert ev["score"] > 0.9 and ev["latency_ms"] >= 0
    # a file is processed completely: every frame, no drops
    assert summary["type"] == "summary" and sink.records[-1] is summary
    assert summary["frames"] == 90 and summary["events"] == 1
    assert sum(summary["drops"].values()) == 0
    assert summary["latency_ms"]["end_to_end"]["count"] == 90
    assert summary["streams"][0]["audio_gaps"] == 0
    assert len(sink.overlays) == 90 and sink.closed == 1
    assert any(o.label == "3" for o in sink.overlays)


def test_audio_drives_its_label_through_alignment(backend) -> None:
    # noise from 1.0 to 2.0 s; the tiny model says "7" once about 3/4 of its 1 s window
    # is noise, i.e. while the window end is in ~[1.75, 2.25] s; the card never shows
    sink = Collect()
    src = ScriptedSource(duration_s=3.5, card=None, noise=(1.0, 2.0))
    run([src], backend, sink)
    events = sink.of("event")
    assert [e["label"] for e in events] == ["7"]
    assert 1.7 <= events[0]["start"] <= 1.95
    assert 2.2 <= events[0]["end"] <= 2.5


def test_streaming_mel_gives_the_same_events_as_full_windows(backend) -> None:
    def once(streaming: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        sink = Collect()
        src = ScriptedSource(duration_s=3.5, card=(0.4, 0.9), noise=(1.0, 2.0))
        summary = run([src], backend, sink, streaming_mel=streaming)
        return sink.of("event"), summary["streams"][0]

    (ev_stream, st), (ev_full, _) = once(True), once(False)

    def key(e: dict[str, Any]) -> tuple[Any, ...]:
        return (e["label"], e["start"], e["end"], e["modalities"], e["degraded"])

    assert [key(e) for e in ev_stream] == [key(e) for e in ev_full]
    for a, b in zip(ev_stream, ev_full, strict=True):
        assert a["score"] == pytest.approx(b["score"], abs=0.002)
    assert [e["label"] for e in ev_full] == ["3", "7"]
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
    assert abs(plain["start"] - shifted["start"]) <= 0.07


def test_audio_only_stream_uses_audio_driven_windows(backend) -> None:
    sink = Collect()
    src = ScriptedSource(duration_s=3.0, video=False, card=None, noise=(1.0, 2.0))
    summary = run([src], backend, sink, step_ms=50.0)
    assert summary["streams"][0]["mode"] == "audio"
    # windows end every 50 ms from 1.0 s (the first full window) to 3.0 s
    assert 38 <= summary["frames"] <= 41
    ev = sink.of("event")
    assert [e["label"] for e in ev] == ["7"]
    assert ev[0]["modalities"] == ["audio"] and ev[0]["degraded"] is True


def test_audio_fault_degrades_and_the_run_goes_on(backend) -> None:
    sink = Collect()
    src = ScriptedSource(duration_s=3.0, card=(2.0, 2.6), audio_fault_at=1.0)
    summary = run([src], backend, sink)
    faults = sink.of("fault")
    assert len(faults) == 1 and faults[0]["modality"] == "audio"
    assert "unplugged" in faults[0]["message"] and faults[0]["recoverable"] is False
    ev = sink.of("event")
    assert [e["label"] for e in ev] == ["3"]
    assert ev[0]["degraded"] is True and ev[0]["modalities"] == ["video"]
    assert summary["frames"] == 90


def test_source_crash_is_a_fault_record_not_a_crash(backend) -> None:
    sink = Collect()
    src = ScriptedSource(duration_s=3.0, card=(0.5, 1.0), raise_at=1.5)
    summary = run([src], backend, sink)
    faults = sink.of("fault")
    assert len(faults) == 1 and "camera driver crashed" in faults[0]["message"]
    assert 40 <= summary["frames"] <= 46
    assert [e["label"] for e in sink.of("event")] == ["3"]
    assert sink.closed == 1


def test_audio_gap_is_reported_and_marked(backend) -> None:
    sink = Collect()
    src = ScriptedSource(duration_s=3.0, card=None, audio_gap=(1.0, 1.5))
    summary = run([src], backend, sink)
    assert summary["streams"][0]["audio_gaps"] == 1
    assert summary["streams"][0]["audio_gap_samples"] == 8000
    warnings = [w for w in sink.of("warning") if w["kind"] == "audio_gap"]
    assert len(warnings) == 1 and "8000" in warnings[0]["message"]


def test_multi_stream_micro_batches(backend) -> None:
    sink = Collect()
    srcs = [
        ScriptedSource(name=f"cam{i}", duration_s=2.0, card=(0.5, 1.5) if i == 1 else None)
        for i in range(3)
    ]
    summary = run(srcs, backend, sink, max_batch=3, max_wait_ms=20.0)
    assert summary["frames"] == 180
    assert summary["batches"] < 180  # several streams per inference call
    ev = sink.of("event")
    assert [(e["stream"], e["label"]) for e in ev] == [("cam1", "3")]


def test_combined_sources_make_one_stream(backend) -> None:
    sink = Collect()
    cam = ScriptedSource(name="cam", audio=False, duration_s=2.0, card=(0.5, 1.5))
    mic = ScriptedSource(name="mic", video=False, duration_s=2.0, card=None)
    summary = run([[cam, mic]], backend, sink)
    assert summary["streams"][0]["name"] == "cam+mic"
    assert summary["streams"][0]["mode"] == "fused"
    assert [e["modalities"] for e in sink.of("event")] == [["audio", "video"]]


def test_video_only_model_with_a_fixed_batch(tmp_path: Path) -> None:
    m = load_manifest(write_video_only_model(tmp_path))
    sink = Collect()
    srcs = [ScriptedSource(name=f"s{i}", duration_s=2.0, card=(0.5, 1.5)) for i in range(2)]
    with create_backend("ort", threads=1).load(m) as be:
        summary = run(srcs, be, sink, max_batch=4)
    # the fixed batch of 1 caps micro-batching, and the run says so
    assert any(w["kind"] == "batch" for w in sink.of("warning"))
    assert summary["frames"] == 120 and summary["batches"] == 120
    assert {s["mode"] for s in summary["streams"]} == {"video"}
    ev = sink.of("event")
    assert sorted(e["stream"] for e in ev) == ["s0", "s1"]
    assert all(e["modalities"] == ["video"] and e["degraded"] is False for e in ev)


def test_realtime_plays_a_file_at_its_own_pace(backend) -> None:
    sink = Collect()
    summary = run([ScriptedSource(duration_s=1.0, card=None)], backend, sink, realtime=True)
    # the last frame is at 0.967 s of stream time and is not let in before then
    assert summary["wall_s"] >= 0.95
    assert summary["frames"] + sum(summary["drops"].values()) == 30


def test_overload_keeps_latency_bounded(manifest_path: Path) -> None:
    be = SlowBackend().load(load_manifest(manifest_path))
    sink = Collect()
    src = ScriptedSource(duration_s=2.0, live=True, card=None)
    try:
        summary = run([src], be, sink, queue_depth=2, max_batch=1)
    finally:
        be.close()
    frames = summary["frames"]
    drops = summary["drops"]
    # 60 frames at 30 fps against ~10 inferences a second: most are dropped, counted
    assert frames + sum(drops.values()) >= 60 - 2
    assert drops.get("queue_full", 0) > 20
    # an unbounded backlog would reach ~4 s; latest-wins keeps it to a few inferences
    assert summary["latency_ms"]["end_to_end"]["max"] < 1500
    # live statistics about once a second
    assert 1 <= len(sink.stats) <= 3
    assert sink.stats[0]["drops"] > 0 and sink.stats[0]["latency_ms"]["p99"] > 0


def test_stop_from_another_thread(backend) -> None:
    sink = Collect()
    src = ScriptedSource(live=True, forever=True, card=None)
    p = Pipeline(streams=[src], backend=backend, sinks=[sink], config=config()).start()
    time.sleep(0.5)
    p.stop()
    assert p.wait(5.0)
    assert p.summary is not None and p.summary["frames"] > 0
    assert sink.closed == 1 and sink.records[-1]["type"] == "summary"
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
    assert [e["label"] for e in sink.of("event")] == ["3"]
    assert sink.records[-1]["type"] == "summary" and sink.closed == 1


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


def test_postprocess_config_is_used(backend) -> None:
    # a minimum duration longer than the card suppresses the event
    sink = Collect()
    src = ScriptedSource(duration_s=3.0, card=(1.0, 2.0))
    run([src], backend, sink, postprocess=PostprocessConfig(min_duration_s=2.0))
    assert sink.of("event") == []
