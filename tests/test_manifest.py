"""Manifest loading and validation: every rejection names the offending field."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from avfuse.errors import ManifestError
from avfuse.manifest import Manifest, check_against_graph, load_manifest
from tests.fixtures.models import tiny_manifest_dict, write_tiny_model


def _bad(mutate) -> ManifestError:
    data = copy.deepcopy(tiny_manifest_dict())
    mutate(data)
    with pytest.raises(ManifestError) as info:
        Manifest.from_dict(data)
    return info.value


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    path = write_tiny_model(tmp_path)
    m = load_manifest(path)
    again = Manifest.from_dict(json.loads(json.dumps(m.to_dict())))
    assert again.to_dict() == m.to_dict()
    assert m.modalities == ("audio", "video")
    assert m.input_for("mask").shape == ("batch", 2)
    assert m.model_path == (tmp_path / "model.onnx").resolve()


def test_accepts_onnx_path_and_folder(tmp_path: Path) -> None:
    write_tiny_model(tmp_path)
    assert load_manifest(tmp_path / "model.onnx").name == "tiny"
    assert load_manifest(tmp_path).name == "tiny"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.pop("labels"), "labels"),
        (lambda d: d["model"].pop("file"), "model.file"),
        (lambda d: d["preprocess"]["audio"].__setitem__("hop_length", 0), "preprocess.audio"),
        (lambda d: d["preprocess"]["audio"].__setitem__("n_mels", "64"), "preprocess.audio.n_mels"),
        (lambda d: d["preprocess"]["audio"].__setitem__("dither", 0.1), "preprocess.audio.dither"),
        (lambda d: d["preprocess"]["video"].__setitem__("colour", "hsv"), "preprocess.video"),
        (lambda d: d["inputs"][0].__setitem__("shape", ["batch", 64, 98]), "inputs[0].shape"),
        (lambda d: d["inputs"][1].__setitem__("modality", "smell"), "inputs[1].modality"),
        (lambda d: d["inputs"][2].__setitem__("dtype", "float128"), "inputs[2].dtype"),
        (lambda d: d.__setitem__("fusion", "magic"), "fusion"),
        (lambda d: d.__setitem__("labels", ["a", "b"]), "labels"),
        (lambda d: d.__setitem__("mask_order", []), "mask_order"),
        (lambda d: d.__setitem__("version", 99), "version"),
        (lambda d: d["preprocess"].__setitem__("text", {}), "preprocess.text"),
    ],
)
def test_rejections_name_the_field(mutate, field: str) -> None:
    err = _bad(mutate)
    assert err.field == field
    assert f"'{field}'" in str(err)


def test_missing_manifest_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="avfuse export"):
        load_manifest(tmp_path / "model.onnx")


def test_invalid_json_is_a_manifest_error(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        load_manifest(tmp_path)


def test_changed_model_file_fails_the_hash(tmp_path: Path) -> None:
    write_tiny_model(tmp_path)
    with open(tmp_path / "model.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ManifestError) as info:
        load_manifest(tmp_path)
    assert info.value.field == "model.sha256"


def test_shape_contradicting_the_graph_names_the_field() -> None:
    m = Manifest.from_dict(tiny_manifest_dict())
    graph_in = {"audio": (None, 64, 97), "image": (None, 1, 32, 64), "mask": (None, 2)}
    with pytest.raises(ManifestError) as info:
        check_against_graph(m, graph_in, {"logits": (None, 11)})
    assert info.value.field == "inputs[1].shape"
    graph_in["image"] = (None, 1, 48, 64)
    with pytest.raises(ManifestError) as info:
        check_against_graph(m, {**graph_in, "extra": (1,)}, {"logits": (None, 11)})
    assert info.value.field == "inputs"


def test_a_version_1_manifest_keeps_its_decision_section() -> None:
    """A v1 manifest (what `avfuse export` writes) with tuned decision settings runs with
    them, not with the defaults: the bundled model's settings live there."""
    data = copy.deepcopy(tiny_manifest_dict())
    assert data["version"] == 1
    data["decision"] = {"on": 0.5, "off": 0.3, "min_duration_ms": 250, "ema_alpha": 0.6}
    d = Manifest.from_dict(data).decision
    assert (d.on, d.off, d.min_duration_ms, d.ema_alpha) == (0.5, 0.3, 250, 0.6)
    data["decision"] = {"on": 0.3, "off": 0.5}
    assert _bad(lambda x: x.update(data)).field == "decision"


def test_a_version_1_manifest_keeps_its_cadence() -> None:
    """`cadence` in a v1 manifest (the bundled model's format) sets how often it runs; it
    was silently dropped, so the model ran on every frame whatever the file said."""
    data = copy.deepcopy(tiny_manifest_dict())
    data["cadence"] = {"every_frames": 3}
    assert Manifest.from_dict(data).cadence.every_frames == 3
    data["cadence"] = {"every_frames": 0}
    assert _bad(lambda x: x.update(data)).field == "cadence.every_frames"


def test_a_version_1_manifest_refuses_a_field_it_would_ignore() -> None:
    err = _bad(lambda d: d.__setitem__("cadnce", {"every_frames": 2}))
    assert err.field == "cadnce"
    assert '"version": 2' in str(err)
