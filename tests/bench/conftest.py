"""A tiny fused model with the default model's contract, built with the onnx helper API."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avfuse.kernels.reference import AudioParams, VideoParams
from avfuse.manifest import Manifest, TensorSpec


def make_tiny_model(folder: Path, *, seed: int = 0) -> Path:
    """Write model.onnx + manifest.json (audio [B,64,97], image [B,1,48,64], mask [B,2])."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    wa = numpy_helper.from_array(
        (rng.standard_normal((64 * 97, 11)) * 0.01).astype(np.float32), "wa"
    )
    wi = numpy_helper.from_array(
        (rng.standard_normal((48 * 64, 11)) * 0.01).astype(np.float32), "wi"
    )
    wm = numpy_helper.from_array(rng.standard_normal((2, 11)).astype(np.float32), "wm")
    nodes = [
        helper.make_node("Flatten", ["audio"], ["af"], axis=1),
        helper.make_node("Flatten", ["image"], ["if"], axis=1),
        helper.make_node("MatMul", ["af", "wa"], ["la"]),
        helper.make_node("MatMul", ["if", "wi"], ["li"]),
        helper.make_node("MatMul", ["mask", "wm"], ["lm"]),
        helper.make_node("Add", ["la", "li"], ["s"]),
        helper.make_node("Add", ["s", "lm"], ["logits"]),
    ]
    f = TensorProto.FLOAT
    graph = helper.make_graph(
        nodes,
        "tiny",
        [
            helper.make_tensor_value_info("audio", f, ["batch", 64, 97]),
            helper.make_tensor_value_info("image", f, ["batch", 1, 48, 64]),
            helper.make_tensor_value_info("mask", f, ["batch", 2]),
        ],
        [helper.make_tensor_value_info("logits", f, ["batch", 11])],
        [wa, wi, wm],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(folder / "model.onnx"))
    labels = tuple([str(i) for i in range(10)] + ["none"])
    m = Manifest(
        model_file="model.onnx",
        fusion="early",
        labels=labels,
        inputs=(
            TensorSpec(
                name="audio", shape=("batch", 64, 97), modality="audio", audio=AudioParams()
            ),
            TensorSpec(
                name="image",
                shape=("batch", 1, 48, 64),
                modality="video",
                video=VideoParams(height=48, width=64, colour="gray"),
            ),
            TensorSpec(name="mask", shape=("batch", 2), modality="mask", order=("audio", "video")),
        ),
        outputs=(
            TensorSpec(
                name="logits", shape=("batch", 11), kind="logits", labels=labels, drives=True
            ),
        ),
        name="tiny",
        opset=17,
    )
    return m.save(folder / "manifest.json")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Manifest path of a tiny fused ONNX model (shared by the bench tests)."""
    pytest.importorskip(
        "onnx", reason="building the tiny model needs onnx: pip install 'avfuse[export]'"
    )
    return make_tiny_model(tmp_path_factory.mktemp("tiny_model"))
