"""The TensorRT build's choices as pure functions (TensorRT is not installed here): the
optimisation profile from the manifest, the builder plan per precision and version, the
engine cache key; and the API's types where tensorrt is importable."""

from __future__ import annotations

import dataclasses
import importlib.util

import pytest

from avfuse.assets import default_model_path
from avfuse.errors import UsageError
from avfuse.export.trt_build import BuildPlan, build_plan, engine_key, profile_shapes
from avfuse.manifest import TensorSpec, load_manifest

HAVE_TRT = importlib.util.find_spec("tensorrt") is not None


def _bundled():
    return load_manifest(default_model_path())


def test_profile_spans_batch_one_to_max_on_each_batch_axis() -> None:
    p = profile_shapes(_bundled(), max_batch=32)
    assert p["audio"] == ((1, 64, 97), (8, 64, 97), (32, 64, 97))
    assert p["image"] == ((1, 1, 48, 64), (8, 1, 48, 64), (32, 1, 48, 64))
    assert p["mask"] == ((1, 2), (8, 2), (32, 2))
    assert profile_shapes(_bundled(), max_batch=4)["mask"][1] == (4, 2)  # opt <= max


def test_profile_follows_each_inputs_own_batch_axis_and_fixed_dims() -> None:
    m = _bundled()
    state = TensorSpec(name="h", shape=(2, "batch", 128), modality="state", batch_axis=1)
    fixed = TensorSpec(name="f", shape=(4, 3), modality="audio")
    p = profile_shapes(dataclasses.replace(m, inputs=(state, fixed)), max_batch=16)
    assert p["h"] == ((2, 1, 128), (2, 8, 128), (2, 16, 128))
    assert p["f"] == ((4, 3), (4, 3), (4, 3))


def test_profile_refuses_a_dynamic_dim_that_is_not_the_batch() -> None:
    seq = TensorSpec(name="x", shape=("batch", "time", 64), modality="audio")
    with pytest.raises(UsageError, match=r"'x' dim 1 \('time'\) is dynamic"):
        profile_shapes(dataclasses.replace(_bundled(), inputs=(seq,)), max_batch=8)
    with pytest.raises(UsageError, match="max batch"):
        profile_shapes(_bundled(), max_batch=0)


@pytest.mark.parametrize(
    ("precision", "version", "qdq", "plan"),
    [
        ("fp16", "10.3.0", False, BuildPlan(strongly_typed=False, flags=("FP16",))),
        ("fp16", "11.0.0", False, BuildPlan(strongly_typed=True, flags=(), convert_fp16=True)),
        ("int8", "10.3.0", True, BuildPlan(strongly_typed=True, flags=())),
        ("int8", "11.0.0", True, BuildPlan(strongly_typed=True, flags=())),
        ("fp32", "10.3.0", False, BuildPlan(strongly_typed=False, flags=())),
        ("fp32", "10.3.0", True, BuildPlan(strongly_typed=True, flags=())),
    ],
)
def test_build_plan_per_precision_and_version(
    precision: str, version: str, qdq: bool, plan: BuildPlan
) -> None:
    assert build_plan(precision, version, qdq=qdq) == plan


def test_build_plan_refuses_implicit_int8_and_old_tensorrt() -> None:
    with pytest.raises(UsageError, match=r"Q/DQ.*avfuse build MODEL --precision int8"):
        build_plan("int8", "10.3.0", qdq=False)
    with pytest.raises(UsageError, match="10 or newer"):
        build_plan("fp16", "8.6.1", qdq=False)


def test_engine_key_changes_with_everything_that_invalidates_an_engine() -> None:
    profile = profile_shapes(_bundled(), max_batch=64)
    base = dict(
        gpu="NVIDIA H100 80GB HBM3",
        compute_capability=(9, 0),
        trt_version="10.3.0",
        cuda_runtime=12040,
        cuda_driver=12060,
        precision="fp16",
        profile=profile,
    )
    k = engine_key("abc", **base)
    assert k == engine_key("abc", **base) and len(k) == 32
    assert k != engine_key("abd", **base)
    other = {
        "gpu": "NVIDIA H200",
        "compute_capability": (8, 9),
        "trt_version": "10.4.0",
        "cuda_runtime": 12080,
        "cuda_driver": 12080,
        "precision": "int8",
        "profile": profile_shapes(_bundled(), max_batch=32),
    }
    for field, value in other.items():
        assert k != engine_key("abc", **{**base, field: value}), field


@pytest.mark.skipif(not HAVE_TRT, reason="needs the tensorrt package (not installable here)")
def test_the_plan_names_flags_the_installed_tensorrt_has() -> None:
    import tensorrt as trt

    plan = build_plan("fp16", trt.__version__, qdq=False)
    for name in plan.flags:
        assert hasattr(trt.BuilderFlag, name)
    if int(trt.__version__.split(".")[0]) == 10:
        assert hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED")


def test_profile_of_a_manifest_that_leaves_shapes_to_the_graph(tmp_path) -> None:
    """A bring-your-own-model manifest names inputs without shapes; TensorRT's profile
    reads them from the ONNX graph (a CPU session) first."""
    import json

    from avfuse.backends.ort import complete_from_graph
    from tests.fixtures.models import write_tiny_model

    path = write_tiny_model(tmp_path, version=2)
    data = json.loads(path.read_text())
    for spec in data["inputs"]:
        spec.pop("shape", None)
    path.write_text(json.dumps(data))
    m = load_manifest(path)
    assert all(s.shape is None for s in m.inputs)
    with pytest.raises(UsageError, match="no shape in the manifest"):
        profile_shapes(m, max_batch=4)
    p = profile_shapes(complete_from_graph(m), max_batch=4)
    assert p["audio"] == ((1, 64, 97), (4, 64, 97), (4, 64, 97))
    assert p["mask"] == ((1, 2), (4, 2), (4, 2))
