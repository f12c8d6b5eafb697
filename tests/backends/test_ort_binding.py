"""ONNX Runtime IO binding on the CPU provider: the same answers as `InferenceSession.run`,
outputs in buffers that keep their address, inputs rebound exactly when they move, and
nothing allocated per call once a batch size has been seen (tracemalloc)."""

from __future__ import annotations

import gc
import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from avfuse.assets import default_model_path
from avfuse.backends import create_backend
from avfuse.manifest import Manifest, TensorSpec, file_sha256, load_manifest
from tests.fixtures.models import AUDIO, write_tiny_model


def _feeds(batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "audio": rng.standard_normal((batch, 64, 97)).astype(np.float32),
        "image": rng.standard_normal((batch, 1, 48, 64)).astype(np.float32),
        "mask": np.ones((batch, 2), np.float32),
    }


def _ptr(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def _echo_model(d: Path) -> Manifest:
    """audio [batch, 64, 97] -> relu(audio), same shape: an output as large as its input."""
    import onnx
    from onnx import TensorProto, helper

    shape = ["batch", AUDIO.n_mels, AUDIO.frames]
    graph = helper.make_graph(
        [helper.make_node("Relu", ["audio"], ["echo"])],
        "echo",
        [helper.make_tensor_value_info("audio", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("echo", TensorProto.FLOAT, shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    d.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(d / "model.onnx"))
    m = Manifest(
        model_file="model.onnx",
        labels=(),
        inputs=(TensorSpec(name="audio", shape=tuple(shape), modality="audio", audio=AUDIO),),
        outputs=(TensorSpec(name="echo", shape=tuple(shape), kind="values"),),
        name="echo",
        opset=18,
        sha256=file_sha256(d / "model.onnx"),
    )
    (d / "manifest.json").write_text(json.dumps(m.to_dict()))
    return load_manifest(d / "manifest.json")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("batch", [1, 8])
def test_bound_outputs_equal_plain_run_on_the_bundled_model(batch: int) -> None:
    m = load_manifest(default_model_path())
    with (
        create_backend("ort", threads=1, extra={"io_binding": False}).load(m) as plain,
        create_backend("ort", threads=1).load(m) as bound,
    ):
        assert bound.reuses_outputs and not plain.reuses_outputs
        for seed in range(3):
            feeds = _feeds(batch, seed)
            want = plain.infer(feeds)["logits"]
            got = bound.infer(feeds, borrow=True)["logits"]
            np.testing.assert_array_equal(got, want)


@pytest.mark.timeout(60)
def test_bound_output_buffers_keep_their_address_across_calls(tmp_path: Path) -> None:
    m = load_manifest(write_tiny_model(tmp_path))
    with create_backend("ort").load(m) as be:
        first = be.infer(_feeds(4, 0), borrow=True)["logits"]
        address, values = _ptr(first), first.copy()
        again = be.infer(_feeds(4, 1), borrow=True)["logits"]
        assert _ptr(again) == address
        assert not np.array_equal(again, values)  # the same buffer, this call's result
        other = be.infer(_feeds(2, 0), borrow=True)["logits"]
        assert _ptr(other) != address  # each batch size has its own buffers
        assert _ptr(be.infer(_feeds(4, 2), borrow=True)["logits"]) == address


@pytest.mark.timeout(60)
def test_inputs_are_read_in_place_and_rebound_when_they_move(tmp_path: Path) -> None:
    m = load_manifest(write_tiny_model(tmp_path))
    with (
        create_backend("ort", extra={"io_binding": False}).load(m) as plain,
        create_backend("ort").load(m) as be,
    ):
        feeds = _feeds(3, 0)
        be.infer(feeds, borrow=True)
        feeds["audio"][:] = np.random.default_rng(5).standard_normal(feeds["audio"].shape)
        np.testing.assert_array_equal(  # same arrays, new content: read again
            be.infer(feeds, borrow=True)["logits"], plain.infer(feeds)["logits"]
        )
        moved = {**feeds, "image": feeds["image"] + 1.0}  # a new array at a new address
        np.testing.assert_array_equal(
            be.infer(moved, borrow=True)["logits"], plain.infer(moved)["logits"]
        )
        strided = {**feeds, "image": np.asfortranarray(feeds["image"] * 2.0)}
        np.testing.assert_array_equal(
            be.infer(strided, borrow=True)["logits"], plain.infer(strided)["logits"]
        )


@pytest.mark.timeout(60)
def test_without_borrow_results_survive_the_next_call(tmp_path: Path) -> None:
    m = load_manifest(write_tiny_model(tmp_path))
    with create_backend("ort").load(m) as be:
        kept = be.infer(_feeds(2, 0))["logits"]
        snapshot = kept.copy()
        be.infer(_feeds(2, 1))
        np.testing.assert_array_equal(kept, snapshot)
        borrowed = be.infer(_feeds(2, 0), borrow=True)["logits"]
        be.infer(_feeds(2, 1), borrow=True)
        assert not np.array_equal(borrowed, snapshot)  # the contract borrow=True accepts


@pytest.mark.timeout(60)
def test_stateful_and_const_inputs_bind_too(tmp_path: Path) -> None:
    m = load_manifest(write_tiny_model(tmp_path, stateful=True))
    with (
        create_backend("ort", extra={"io_binding": False}).load(m) as plain,
        create_backend("ort").load(m) as be,
    ):
        for _ in range(3):  # state carried from call to call, rebound each time
            np.testing.assert_array_equal(
                be.infer(_feeds(2), streams=["a", "b"])["logits"],
                plain.infer(_feeds(2), streams=["a", "b"])["logits"],
            )


def _heap_left_by_us(be, feeds: dict[str, np.ndarray], calls: int) -> int:
    """Bytes of Python heap that `calls` borrowed calls leave behind, garbage included (the
    collector is off), outside onnxruntime's own frames: its pybind layer keeps a few
    small objects per call that it frees later, which is not ours to measure."""
    gc.collect()
    gc.disable()
    tracemalloc.start(25)
    try:
        before = tracemalloc.take_snapshot()
        for _ in range(calls):
            be.infer(feeds, borrow=True)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
        gc.enable()
    keep = [tracemalloc.Filter(False, "*onnxruntime*", all_frames=True),
            tracemalloc.Filter(False, tracemalloc.__file__)]  # fmt: skip
    diff = after.filter_traces(keep).compare_to(before.filter_traces(keep), "filename")
    return sum(d.size_diff for d in diff)


@pytest.mark.timeout(120)
def test_no_allocation_per_call_after_warm_up(tmp_path: Path) -> None:
    m = _echo_model(tmp_path)
    feeds = {"audio": np.random.default_rng(0).standard_normal((8, 64, 97)).astype(np.float32)}
    with create_backend("ort", threads=1).load(m) as be:
        first = be.infer(feeds, borrow=True)["echo"]
        for _ in range(20):
            assert be.infer(feeds, borrow=True)["echo"] is first  # no new output array
        left = _heap_left_by_us(be, feeds, 1000)
    np.testing.assert_array_equal(first, np.maximum(feeds["audio"], 0))
    assert left < 2048, f"1000 calls left {left} B of Python heap behind"
