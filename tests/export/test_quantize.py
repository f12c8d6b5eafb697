"""int8 by explicit quantisation on real ONNX Runtime sessions: the Q/DQ model of the bundled
model is written when it keeps its accuracy, refused when it loses more than 1 point."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from avfuse.assets import default_model_path
from avfuse.backends import create_backend
from avfuse.errors import AccuracyGateError, UsageError, exit_code_for
from avfuse.export.quantize import Labelled, demo_set, has_qdq, write_int8
from avfuse.manifest import file_sha256, load_manifest
from tests.fixtures.models import write_tiny_model


@pytest.fixture(scope="module")
def bundled():
    m = load_manifest(default_model_path())
    return m, demo_set(m)


def _top1(m, data: Labelled) -> np.ndarray:
    with create_backend("ort").load(m) as be:
        return np.argmax(be.infer(data.rows(0, len(data)))[m.driving_output.name], axis=1)


@pytest.mark.timeout(180)
def test_an_int8_model_that_keeps_its_accuracy_is_written(bundled, tmp_path: Path) -> None:
    m, demo = bundled
    q, record = write_int8(m, tmp_path / "int8", calibration=demo, evaluation=demo)
    # 60 samples: one changed answer is 1.67 points, the smallest loss this set resolves
    assert record["limit_points"] == pytest.approx(100 / 60, abs=1e-3)
    assert record["loss_points"] <= record["limit_points"] and not record["forced"]
    again = load_manifest(tmp_path / "int8")  # a model folder `avfuse run --model` takes
    assert again.name == f"{m.name}-int8"
    assert again.sha256 == file_sha256(again.model_path)
    assert has_qdq(again.model_path) and not has_qdq(m.model_path)
    assert json.loads((tmp_path / "int8" / "manifest.json").read_text())["metrics"]["int8"][
        "fp32_accuracy"
    ] == pytest.approx(record["fp32_accuracy"])
    # what the gate measured, measured again here on both real sessions
    labels = demo.labels
    fp32 = float(np.mean(_top1(m, demo) == labels))
    int8 = float(np.mean(_top1(again, demo) == labels))
    assert record["fp32_accuracy"] == pytest.approx(fp32, abs=1e-4)
    assert record["int8_accuracy"] == pytest.approx(int8, abs=1e-4)
    assert (fp32 - int8) * 100 <= 100 / 60 + 1e-9


@pytest.mark.timeout(180)
def test_on_a_set_that_resolves_a_point_the_limit_is_one_point(bundled, tmp_path: Path) -> None:
    """The demo samples 17 times over (1020): the same answers, but now a changed one is
    0.1 point, so the 1-point limit holds as written."""
    m, demo = bundled
    big = Labelled(
        {k: np.concatenate([v] * 17) for k, v in demo.feeds.items()},
        np.concatenate([demo.labels] * 17),
        "demo x17",
    )
    try:
        _, record = write_int8(m, tmp_path / "int8", calibration=demo, evaluation=big)
    except AccuracyGateError as e:
        assert e.loss_points > 1.0  # refused only for a loss past 1 point
    else:
        assert record["limit_points"] == 1.0 and record["loss_points"] <= 1.0


@pytest.mark.timeout(180)
def test_an_int8_model_that_loses_accuracy_is_refused_unless_forced(
    bundled, tmp_path: Path
) -> None:
    m, demo = bundled
    # calibrated on silence and blank frames: every activation range collapses
    blank = Labelled({k: np.zeros_like(v) for k, v in demo.feeds.items()}, demo.labels, "zeros")
    with pytest.raises(AccuracyGateError, match=r"loses .* points .*--force keeps it") as info:
        write_int8(m, tmp_path / "bad", calibration=blank, evaluation=demo)
    e = info.value
    assert e.loss_points > 1.0 and e.fp32_accuracy - e.int8_accuracy > 0.01
    assert exit_code_for(e) == 1
    assert not any((tmp_path / "bad").glob("*.onnx"))  # nothing left behind
    assert not (tmp_path / "bad" / "manifest.json").exists()
    q, record = write_int8(m, tmp_path / "forced", calibration=blank, evaluation=demo, force=True)
    assert record["forced"] and record["loss_points"] == pytest.approx(e.loss_points)
    assert q.model_path.is_file()


@pytest.mark.timeout(60)
def test_stateful_models_are_refused_in_one_line(tmp_path: Path) -> None:
    m = load_manifest(write_tiny_model(tmp_path, stateful=True))
    data = Labelled({}, np.zeros(0, np.int64), "none")
    with pytest.raises(UsageError, match="recurrent state"):
        write_int8(m, tmp_path / "out", calibration=data, evaluation=data)


@pytest.mark.timeout(180)
def test_the_qdq_model_is_what_tensorrt_takes(bundled, tmp_path: Path) -> None:
    """Q/DQ pairs (not QLinear* operators), int8 with zero points of 0: TensorRT's explicit
    quantisation is symmetric only."""
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    m, demo = bundled
    q, _ = write_int8(m, tmp_path / "int8", calibration=demo, evaluation=demo)
    g = onnx.load(str(q.model_path)).graph
    ops = {n.op_type for n in g.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert not any(op.startswith("QLinear") or op.startswith("DynamicQuantize") for op in ops)
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    zero_points = [
        inits[n.input[2]]
        for n in g.node
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2
    ]
    assert zero_points
    assert all(z.dtype == np.int8 and not z.any() for z in zero_points)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_split_labels_are_the_models_labels_none_included(bundled) -> None:
    from avfuse.errors import DataError
    from avfuse.export.quantize import split_set

    m, _ = bundled
    try:
        data = split_set(m, "test", limit=300)
    except DataError as e:
        pytest.skip(str(e))
    assert (data.labels >= 0).all()  # every AV-digits label is one of the model's
    assert (data.labels == m.labels.index("none")).any()
