"""Shared kit of the pipeline tests: a tiny real ONNX model, a scripted source, a collecting sink.

The scripted source plays generated audio and frames with virtual timestamps through
the real Source interface; the model is a real ONNX graph run by ONNX Runtime.
"""

from __future__ import annotations

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
from avfuse.engine.records import Record, RunInfo, Stats
from avfuse.engine.sinks import FrameOverlay, Sink
from avfuse.engine.sources.base import (
    AudioFormat,
    FrameSink,
    Source,
    SourceInfo,
    SourceStatus,
    VideoFormat,
)
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
        fps: float = FPS,
        video_gap: tuple[float, float] | None = None,
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
        self.fps = fps
        self.video_gap = video_gap
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
            video=VideoFormat(width=160, height=120, fps=self.fps) if self.has_video else None,
            live=self.live,
        )

    @staticmethod
    def _inside(t: float, span: tuple[float, float] | None) -> bool:
        return span is not None and span[0] <= t < span[1]

    def _run(self, sink: FrameSink) -> None:
        origin = now_ns()
        n_frames = int(self.duration_s * self.fps)
        k = 0
        blk = 0
        audio_ok = self.has_audio
        while not self.stopping.is_set() and (self.forever or k < n_frames):
            tv = k / self.fps
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
            if not self.has_video and not audio_ok:
                break
            if self.has_video and not self._inside(tv, self.video_gap):
                frame = self._white if self._inside(tv, self.card) else self._black
                self._pace(origin, tv)
                sink.video(frame, device_time_s=tv, host_ns=origin + int(tv * 1e9))
            k += 1

    def _pace(self, origin: int, t: float) -> None:
        if self.live:
            wait = origin + int(t * 1e9) - now_ns()
            if wait > 0:
                time.sleep(wait / 1e9)


class Collect(Sink):
    """Keeps every record, stats record and frame overlay, and the run info."""

    wants_frames = True
    durable = False

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.stats: list[Stats] = []
        self.overlays: list[FrameOverlay] = []
        self.info: RunInfo | None = None
        self.closed = 0

    def on_start(self, info: RunInfo) -> None:
        self.info = info

    def on_record(self, record: Record) -> None:
        self.records.append(record)

    def on_frame(self, frame: np.ndarray, overlay: FrameOverlay) -> None:
        assert frame.shape == (120, 160, 3)
        self.overlays.append(overlay)

    def on_stats(self, stats: Stats) -> None:
        self.stats.append(stats)

    def close(self) -> None:
        self.closed += 1

    def of(self, kind: str) -> list[Any]:
        return [r for r in self.records if r.type == kind]


# ---------------------------------------------------------------------- tests


#: kernels the pipeline tests run on; tests/engine/test_pipeline.py runs each test on both
KERNELS = {"impl": "reference"}


def config(**kw: Any) -> PipelineConfig:
    """Pipeline settings for tests: the reference kernels unless a test module asks for more."""
    kw.setdefault("kernel_impl", KERNELS["impl"])
    return PipelineConfig(**kw)


def run(srcs: list[Any], backend: Any, sink: Sink, **kw: Any) -> Any:
    """Run a pipeline to the end; returns the summary record."""
    return Pipeline(streams=srcs, backend=backend, sinks=[sink], config=config(**kw)).run()
