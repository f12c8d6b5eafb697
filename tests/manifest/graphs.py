"""Tiny real ONNX graphs shaped like third-party models, built with onnx.helper.

vad        silero-vad's interface: raw samples [batch, samples] (both dynamic), LSTM-like
           state [2, batch, 128] returned as stateN (shape left unknown, as silero's
           is), a rank-0 int64 `sr`; speech probability [batch, 1] from a Sigmoid of
           the window's mean |x|. `int16=True` makes a model that takes int16 sample
           values (x 32768): fed floats in [-1, 1], its output does not move.
classifier an NHWC uint8 image [N, 32, 48, 3] -> mean colour -> 4 classes -> Softmax,
           class names in the ONNX metadata ("labels")
multilabel an NCHW float image [batch, 3, 16, 16] -> mean colour -> 5 Sigmoids
constant   raw samples in, the same logits whatever they hold
broken     raw samples in, NaN out
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

LABELS = ("up", "down", "left", "right")


def _save(graph, path: Path, metadata: dict[str, str] | None = None) -> Path:
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    for k, v in (metadata or {}).items():
        model.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _c(name: str, value) -> object:
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(value), name)


def vad(path: Path, *, int16: bool = False) -> Path:
    """The silero-vad-like graph (see the module docstring)."""
    from onnx import TensorProto, helper

    f32 = TensorProto.FLOAT
    level = 0.004 * (32768.0 if int16 else 1.0)  # mean |x| where the score crosses 0.5
    gain = 2000.0 / (32768.0 if int16 else 1.0)
    inputs = [
        helper.make_tensor_value_info("input", f32, [None, None]),
        helper.make_tensor_value_info("state", f32, [2, None, 128]),
        helper.make_tensor_value_info("sr", TensorProto.INT64, []),
    ]
    outputs = [
        helper.make_tensor_value_info("output", f32, [None, 1]),
        helper.make_tensor_value_info("stateN", f32, [None, None, None]),
    ]
    inits = [
        _c("ax1", np.array([1], np.int64)),
        _c("ax0", np.array([0], np.int64)),
        _c("ax02", np.array([0, 2], np.int64)),
        _c("level", np.float32(level)),
        _c("gain", np.float32(gain)),
        _c("half", np.float32(0.5)),
        _c("tenth", np.float32(0.1)),
        _c("rate", np.float32(16000.0)),
    ]
    nodes = [
        helper.make_node("Abs", ["input"], ["absx"]),
        helper.make_node("ReduceMean", ["absx", "ax1"], ["e"], keepdims=1),  # [batch, 1]
        helper.make_node("Cast", ["sr"], ["srf"], to=f32),
        helper.make_node("Div", ["srf", "rate"], ["srn"]),
        helper.make_node("Sub", ["e", "level"], ["d"]),
        helper.make_node("Mul", ["d", "gain"], ["z0"]),
        helper.make_node("Mul", ["z0", "srn"], ["z1"]),
        helper.make_node("ReduceMean", ["state", "ax02"], ["sm"], keepdims=0),  # [batch]
        helper.make_node("Unsqueeze", ["sm", "ax1"], ["sm1"]),
        helper.make_node("Mul", ["sm1", "tenth"], ["smt"]),
        helper.make_node("Add", ["z1", "smt"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["p"]),
        helper.make_node("Identity", ["p"], ["output"]),
        helper.make_node("Mul", ["state", "half"], ["sh"]),
        helper.make_node("Unsqueeze", ["e", "ax0"], ["e3"]),  # [1, batch, 1]
        helper.make_node("Add", ["sh", "e3"], ["stateN"]),
    ]
    return _save(helper.make_graph(nodes, "vad", inputs, outputs, inits), path)


def classifier(path: Path, *, metadata: dict[str, str] | None = None) -> Path:
    """The NHWC uint8 classifier ending in Softmax (labels in the metadata by default)."""
    from onnx import TensorProto, helper

    f32 = TensorProto.FLOAT
    w = np.array(
        [[0.06, -0.03, 0.0, -0.03], [-0.03, 0.06, -0.03, 0.0], [0.0, -0.03, 0.06, -0.03]],
        np.float32,
    )
    inputs = [helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", 32, 48, 3])]
    outputs = [helper.make_tensor_value_info("probs", f32, ["N", 4])]
    inits = [_c("ax12", np.array([1, 2], np.int64)), _c("w", w), _c("b", np.zeros(4, np.float32))]
    nodes = [
        helper.make_node("Cast", ["image"], ["x"], to=f32),
        helper.make_node("ReduceMean", ["x", "ax12"], ["m"], keepdims=0),  # [N, 3]
        helper.make_node("MatMul", ["m", "w"], ["mw"]),
        helper.make_node("Add", ["mw", "b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
    ]
    meta = {"labels": ",".join(LABELS)} if metadata is None else metadata
    return _save(helper.make_graph(nodes, "classifier", inputs, outputs, inits), path, meta)


def multilabel(path: Path) -> Path:
    """The NCHW float multi-label head: five independent Sigmoids."""
    from onnx import TensorProto, helper

    f32 = TensorProto.FLOAT
    rng = np.random.default_rng(0)
    inputs = [helper.make_tensor_value_info("pixel_values", f32, ["batch", 3, 16, 16])]
    outputs = [helper.make_tensor_value_info("scores", f32, ["batch", 5])]
    inits = [
        _c("ax23", np.array([2, 3], np.int64)),
        _c("w", (rng.standard_normal((3, 5)) * 3).astype(np.float32)),
        _c("b", np.zeros(5, np.float32)),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["pixel_values", "ax23"], ["m"], keepdims=0),
        helper.make_node("Gemm", ["m", "w", "b"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["scores"]),
    ]
    return _save(helper.make_graph(nodes, "multilabel", inputs, outputs, inits), path)


def constant(path: Path) -> Path:
    """Raw samples in, fixed logits out (the input is multiplied by zero)."""
    from onnx import TensorProto, helper

    f32 = TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info("audio", f32, ["batch", 16000])]
    outputs = [helper.make_tensor_value_info("logits", f32, ["batch", 3])]
    inits = [
        _c("ax1", np.array([1], np.int64)),
        _c("zero", np.float32(0.0)),
        _c("bias", np.array([2.0, -1.0, 0.5], np.float32)),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["audio", "ax1"], ["m"], keepdims=1),
        helper.make_node("Mul", ["m", "zero"], ["z"]),
        helper.make_node("Add", ["z", "bias"], ["logits"]),
    ]
    return _save(helper.make_graph(nodes, "constant", inputs, outputs, inits), path)


def broken(path: Path) -> Path:
    """Raw samples in, sqrt(mean |x| - 1) out: NaN for every input in [-1, 1]."""
    from onnx import TensorProto, helper

    f32 = TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info("audio", f32, ["batch", 16000])]
    outputs = [helper.make_tensor_value_info("quality", f32, ["batch", 2])]
    inits = [_c("ax1", np.array([1], np.int64)), _c("one", np.array([1.0, 2.0], np.float32))]
    nodes = [
        helper.make_node("Abs", ["audio"], ["a"]),
        helper.make_node("ReduceMean", ["a", "ax1"], ["m"], keepdims=1),
        helper.make_node("Sub", ["m", "one"], ["d"]),
        helper.make_node("Sqrt", ["d"], ["quality"]),
    ]
    return _save(helper.make_graph(nodes, "broken", inputs, outputs, inits), path)
