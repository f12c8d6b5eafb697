"""Drafting a manifest from an ONNX graph: roles, state pairs, kinds, labels, TODOs.

The graphs are real ONNX files built with onnx.helper (tests/manifest/graphs.py) and
read back the way `avfuse manifest init` reads them; a few pairing rules are checked on
hand-made `GraphInfo`s, whose names are the point.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from avfuse.errors import ManifestError, UsageError
from avfuse.manifest import load_manifest
from avfuse.manifest.draft import draft_manifest, labels_from_metadata, write_draft
from avfuse.manifest.graph import GraphInfo, TensorInfo, graph_from_ort, read_graph
from avfuse.manifest.roles import draft_inputs, pair_states
from avfuse.manifest.todo import TODO, load_complete, todo_fields
from tests.manifest import graphs

pytestmark = pytest.mark.timeout(60)


def _write(data: dict[str, Any], folder: Path) -> Path:
    path = folder / "manifest.json"
    path.write_text(json.dumps(data))
    return path


def _graph(inputs: list[TensorInfo], outputs: list[TensorInfo]) -> GraphInfo:
    return GraphInfo(path=Path("x.onnx"), inputs=tuple(inputs), outputs=tuple(outputs))


def _t(name: str, dims: tuple[Any, ...], dtype: str = "float32") -> TensorInfo:
    return TensorInfo(name=name, dims=dims, dtype=dtype)


# ---------------------------------------------------------------------- the VAD-like graph


def test_vad_state_is_paired_with_its_output_and_batched_on_its_dynamic_axis(
    tmp_path: Path,
) -> None:
    d = draft_manifest(graphs.vad(tmp_path / "vad.onnx"))
    state = d["inputs"][1]
    assert state["role"] == "state" and state["from"] == "stateN"
    assert state["batch_axis"] == 1 and state["shape"] == [2, "batch", 128]
    assert [o["kind"] for o in d["outputs"]] == ["score", "state"]


def test_vad_waveform_and_rank0_sr_leave_what_only_the_user_knows_todo(tmp_path: Path) -> None:
    d = draft_manifest(graphs.vad(tmp_path / "vad.onnx"))
    audio, sr = d["inputs"][0], d["inputs"][2]
    assert audio["role"] == "audio" and audio["audio"]["feature"] == "waveform"
    assert sr["role"] == "const" and sr["dtype"] == "int64" and sr["shape"] == []
    assert todo_fields(d) == [
        "inputs[0].audio.sample_rate",
        "inputs[0].audio.chunk",
        "inputs[0].audio.context",
        "inputs[2].value",
    ]
    assert "sample rate" in sr["comment"] and "TODO" in audio["comment"]


def test_the_output_kind_comes_from_the_op_the_graph_ends_in(tmp_path: Path) -> None:
    kinds = {
        name: draft_manifest(make(tmp_path / f"{name}.onnx"))["outputs"][0]
        for name, make in (
            ("vad", graphs.vad),  # Sigmoid -> Identity, one class
            ("classifier", graphs.classifier),  # Softmax
            ("multilabel", graphs.multilabel),  # Sigmoid, five classes
            ("constant", graphs.constant),  # Add
        )
    }
    assert {k: v["kind"] for k, v in kinds.items()} == {
        "vad": "score",
        "classifier": "probabilities",
        "multilabel": "sigmoid",
        "constant": "logits",
    }
    assert "Softmax" in kinds["classifier"]["comment"]
    assert "guessed" in kinds["constant"]["comment"] and "Add" in kinds["constant"]["comment"]


def test_labels_come_from_the_onnx_metadata_when_they_fit(tmp_path: Path) -> None:
    d = draft_manifest(graphs.classifier(tmp_path / "c.onnx"))
    assert d["outputs"][0]["labels"] == list(graphs.LABELS)
    assert "outputs[0].labels" not in todo_fields(d)
    wrong = graphs.classifier(tmp_path / "w.onnx", metadata={"labels": "a,b,c"})
    d = draft_manifest(wrong)
    assert d["outputs"][0]["labels"] == TODO
    assert "3 entries but the output has 4 classes" in d["outputs"][0]["comment"]


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ('["cat", "dog"]', ["cat", "dog"]),
        ("{0: 'person', 1: 'bicycle'}", ["person", "bicycle"]),
        ('{"1": "b", "0": "a"}', ["a", "b"]),
        ("0\n90\n180\n270", ["0", "90", "180", "270"]),
        ("yes, no", ["yes", "no"]),
    ],
)
def test_metadata_label_formats(text: str, want: list[str]) -> None:
    assert labels_from_metadata({"names": text}, len(want))[0] == want


def test_metadata_labels_that_repeat_are_not_used() -> None:
    labels, said = labels_from_metadata({"classes": "a,b,a"}, 3)
    assert labels == [] and "repeats" in said


# ---------------------------------------------------------------------- images


def test_nhwc_uint8_image_is_raw_nhwc_video_with_its_colour_order_todo(tmp_path: Path) -> None:
    d = draft_manifest(graphs.classifier(tmp_path / "c.onnx"))
    v = d["inputs"][0]
    assert v["role"] == "video" and v["dtype"] == "uint8"
    assert v["video"] == {
        "layout": "NHWC",
        "height": 32,
        "width": 48,
        "colour": TODO,
        "dtype": "uint8",
        "resize": "stretch",
        "interpolation": "bilinear",
    }
    assert todo_fields(d) == ["inputs[0].video.colour"]


def test_nchw_float_image_leaves_colour_mean_and_std_todo(tmp_path: Path) -> None:
    d = draft_manifest(graphs.multilabel(tmp_path / "m.onnx"))
    v = d["inputs"][0]["video"]
    assert v["layout"] == "NCHW" and (v["height"], v["width"]) == (16, 16)
    assert todo_fields(d) == [
        "inputs[0].video.colour",
        "inputs[0].video.mean",
        "inputs[0].video.std",
        "outputs[0].labels",
    ]


def test_a_dynamic_image_size_is_left_todo() -> None:
    g = _graph([_t("x", (None, 3, "h", "w"))], [_t("y", (None, 2))])
    v = draft_inputs(g, {})[0]["video"]
    assert (v["height"], v["width"]) == (TODO, TODO)


# ---------------------------------------------------------------------- names and shapes


@pytest.mark.parametrize(
    ("ins", "outs", "want"),
    [
        # LSTM h/c returned as hn/cn (openwakeword's old silero)
        (["h", "c"], ["hn", "cn"], {"h": "hn", "c": "cn"}),
        (["state_in"], ["state_out"], {"state_in": "state_out"}),
        (["h0"], ["hn"], {"h0": "hn"}),
        # the only state-like output of that shape, whatever its stem
        (["hidden"], ["new_memory"], {"hidden": "new_memory"}),
        # same shape, but nothing says state: not paired
        (["x"], ["y"], {}),
        # two state-like outputs and no matching stem: ambiguous, not paired
        (["state"], ["mem_a", "mem_b"], {}),
    ],
)
def test_state_pairing_by_name(ins: list[str], outs: list[str], want: dict[str, str]) -> None:
    dims = (2, "batch", 64)
    g = _graph([_t(n, dims) for n in ins], [_t(n, dims) for n in outs])
    assert pair_states(g) == want


def test_a_state_of_another_size_is_not_paired() -> None:
    g = _graph([_t("state", (2, None, 128))], [_t("stateN", (2, None, 64))])
    assert pair_states(g) == {}
    d = draft_inputs(g, pair_states(g))[0]
    assert d["role"] == "state" and d["from"] == TODO  # state-like name, feeder unknown


def test_log_mel_inputs_take_the_smaller_axis_as_mels() -> None:
    g = _graph([_t("audio", ("batch", 64, 97))], [])
    assert draft_inputs(g, {})[0]["audio"]["layout"] == "mels_frames"
    assert draft_inputs(g, {})[0]["audio"]["n_mels"] == 64
    g = _graph([_t("input_1", ("N", 900, 120))], [])  # DNSMOS P.808
    a = draft_inputs(g, {})[0]["audio"]
    assert (a["layout"], a["n_mels"], a["sample_rate"]) == ("frames_mels", 120, TODO)


def test_an_input_that_reads_as_nothing_gets_a_todo_role() -> None:
    g = _graph([_t("features", ("batch", 96))], [_t("y", ("batch", 2))])
    d = draft_inputs(g, {})[0]
    assert d["role"] == TODO and "float32" in d["comment"]


def test_without_onnx_the_ort_reader_leaves_the_last_op_unknown(tmp_path: Path) -> None:
    path = graphs.classifier(tmp_path / "c.onnx")
    g = graph_from_ort(path)
    assert g.reader == "onnxruntime" and g.outputs[0].ends_in is None
    assert g.metadata == {"labels": ",".join(graphs.LABELS)}
    out = draft_manifest(path, graph=g)["outputs"][0]
    assert out["kind"] == "logits" and "unknown" in out["comment"]
    assert read_graph(path).outputs[0].ends_in == "Softmax"


# ---------------------------------------------------------------------- TODOs and the parser


@pytest.mark.parametrize("make", [graphs.vad, graphs.classifier, graphs.multilabel])
def test_a_draft_is_refused_naming_every_todo_field(tmp_path: Path, make: Any) -> None:
    path, todo = write_draft(make(tmp_path / "model.onnx"))
    with pytest.raises(ManifestError) as err:
        load_complete(path)
    assert err.value.field in todo
    for field in todo:
        assert field in str(err.value)
    assert "\n" not in str(err.value)
    with pytest.raises(ManifestError) as plain:  # the parser alone stops at one
        load_manifest(path)
    assert plain.value.field is not None
    assert any(t == plain.value.field or t.startswith(plain.value.field + ".") for t in todo)


def test_a_filled_draft_resolves_against_its_graph(tmp_path: Path) -> None:
    from avfuse.backends import create_backend

    path, _ = write_draft(graphs.vad(tmp_path / "model.onnx"))
    data = json.loads(path.read_text())
    data["inputs"][0]["audio"].update(sample_rate=16000, chunk=512, context=64)
    data["inputs"][2]["value"] = 16000
    m = load_manifest(_write(data, tmp_path))
    with create_backend("ort", threads=1) as be:
        be.load(m)
        r = be.manifest
    assert r is not None
    assert r.input_for("audio").shape == ("batch", 576)
    assert r.state[0].input == "state" and r.state[0].output == "stateN"
    assert r.inputs[1].batch_axis == 1 and r.inputs[2].value == 16000


def test_write_draft_refuses_to_replace_a_manifest(tmp_path: Path) -> None:
    model = graphs.vad(tmp_path / "model.onnx")
    path, _ = write_draft(model)
    with pytest.raises(UsageError, match="already exists.*--force"):
        write_draft(model)
    assert write_draft(model, force=True)[0] == path


def test_a_draft_written_elsewhere_points_back_at_the_model(tmp_path: Path) -> None:
    model = graphs.vad(tmp_path / "models" / "vad.onnx")
    path, _ = write_draft(model, tmp_path / "manifests" / "vad.json")
    data = json.loads(path.read_text())
    assert data["model"]["file"] == "../models/vad.onnx"
    assert (path.parent / data["model"]["file"]).resolve() == model.resolve()
