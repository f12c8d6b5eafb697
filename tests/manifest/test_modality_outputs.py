"""Per-modality outputs (`"modality"` on an output) and the `agreement` block of a manifest."""

from __future__ import annotations

import copy
import json

import pytest

from avfuse.errors import ManifestError
from avfuse.manifest import AgreementSpec, Manifest
from tests.fixtures.models import tiny_manifest_dict

HEADS = [
    {"name": "audio_probs", "kind": "probabilities", "modality": "audio"},
    {"name": "video_probs", "kind": "probabilities", "modality": "video"},
    {"name": "audio_embedding", "kind": "embedding", "modality": "audio"},
    {"name": "video_embedding", "kind": "embedding", "modality": "video"},
]


def _with_heads(**extra) -> dict:
    d = copy.deepcopy(tiny_manifest_dict(version=2))
    d["outputs"] += copy.deepcopy(HEADS)
    d.update(extra)
    return d


@pytest.mark.timeout(30)
def test_heads_and_embeddings_are_read_by_modality_and_survive_a_round_trip():
    m = Manifest.from_dict(_with_heads(agreement={"on": 0.7, "min_duration_ms": 250}))
    assert m.head_for("audio").name == "audio_probs" and m.head_for("video").name == "video_probs"
    assert m.embedding_for("video").name == "video_embedding"
    assert m.has_agreement and m.driving_output.name == "logits"
    assert m.head_for("audio").labels == m.labels  # heads take the top-level labels
    assert m.agreement == AgreementSpec(on=0.7, min_duration_ms=250.0)
    again = Manifest.from_dict(json.loads(json.dumps(m.to_dict())))
    assert again == m
    written = m.to_dict()
    assert written["agreement"] == {"on": 0.7, "min_duration_ms": 250.0}
    assert [o.get("modality") for o in written["outputs"]] == [None, "audio", "video", "audio",
                                                                "video"]  # fmt: skip


@pytest.mark.timeout(30)
def test_a_head_listed_first_does_not_become_the_driving_output():
    d = copy.deepcopy(tiny_manifest_dict(version=2))
    logits = d["outputs"][0]
    logits.pop("drives", None)
    d["outputs"] = [copy.deepcopy(HEADS[0]), logits, copy.deepcopy(HEADS[1])]
    assert Manifest.from_dict(d).driving_output.name == "logits"


@pytest.mark.timeout(30)
def test_a_model_without_heads_has_no_agreement_check():
    m = Manifest.from_dict(tiny_manifest_dict(version=2))
    assert not m.has_agreement and m.head_for("audio") is None
    assert "agreement" not in m.to_dict()


def _set(i: int, key: str, value):
    return lambda d: d["outputs"][i].__setitem__(key, value)


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("mutate", "field", "words"),
    [
        (_set(1, "modality", "smell"), "outputs[1].modality", "one of"),
        (_set(1, "kind", "values"), "outputs[1].modality", "no modality"),
        (_set(1, "drives", True), "outputs[1].drives", "cannot drive"),
        (_set(2, "modality", "audio"), "outputs[2].modality", "second audio head"),
        (_set(1, "labels", ["a", "b"]), "outputs[1].labels", "driving output's labels"),
        (lambda d: d.__setitem__("agreement", {"on": 0.5, "off": 0.7}), "agreement", "off <= on"),
        (lambda d: d.__setitem__("agreement", {"max_gap_ms": -1}), "agreement.max_gap_ms", ">= 0"),
        (lambda d: d.__setitem__("agreement", {"on_threshold": 0.5}), "agreement.on_threshold",
         ""),
    ],
)  # fmt: skip
def test_bad_modality_outputs_and_agreement_blocks_name_the_field(mutate, field, words):
    d = _with_heads()
    mutate(d)
    with pytest.raises(ManifestError) as info:
        Manifest.from_dict(d)
    assert info.value.field == field
    assert words in str(info.value)


@pytest.mark.timeout(30)
def test_an_agreement_block_needs_a_head_for_each_modality():
    d = copy.deepcopy(tiny_manifest_dict(version=2))
    d["outputs"].append(copy.deepcopy(HEADS[0]))  # audio only
    d["agreement"] = {"on": 0.9}
    with pytest.raises(ManifestError, match="modality 'audio' and one with modality 'video'"):
        Manifest.from_dict(d)


@pytest.mark.timeout(30)
def test_a_head_of_a_modality_the_model_does_not_take_is_refused():
    d = copy.deepcopy(tiny_manifest_dict(version=2))
    d["inputs"] = [i for i in d["inputs"] if i["role"] == "audio"]
    d["outputs"].append(copy.deepcopy(HEADS[1]))
    with pytest.raises(ManifestError, match="takes no video input"):
        Manifest.from_dict(d)
