"""Export round trip: checkpoint -> ONNX + manifest -> load_manifest + ort backend -> compare."""

from __future__ import annotations

import json

import numpy as np
import pytest

from avfuse.backends import create_backend
from avfuse.export.parity import parity_feeds, torch_logits, torch_outputs
from avfuse.export.pipeline import export_model
from avfuse.manifest import load_manifest
from avfuse.models.checkpoint import load_model
from avfuse.models.zoo import ModelConfig


@pytest.mark.parametrize("name", ["hybrid", "attention"])
def test_round_trip_matches_torch(tmp_path, checkpoint_factory, held_out, name):
    ckpt = checkpoint_factory(tmp_path / "ckpt.pt", name)
    config = ModelConfig(name=name, dim=16)
    feeds = parity_feeds(config, held_out)
    result = export_model(ckpt, tmp_path / "out", feeds=feeds)

    m = load_manifest(tmp_path / "out")  # checks the recorded sha256 too
    assert m.fusion == name
    assert [s.name for s in m.inputs] == ["audio", "image", "mask"]
    assert [s.modality for s in m.inputs] == ["audio", "video", "mask"]
    assert m.mask_order == ("audio", "video")
    assert m.audio.mean == -40.0 and m.video.std == (0.2,)
    assert m.metrics["parity"]["samples"] == 3 * len(held_out)
    assert m.provenance["exporter"] in ("dynamo", "legacy")
    assert m.provenance["torch"] and m.provenance["onnxruntime"]
    assert m.opset == result.manifest.opset >= 17
    assert (tmp_path / "out" / "checkpoint.pt").exists()

    model, _ = load_model(ckpt)
    small = {k: v[:7] for k, v in feeds.items()}  # a batch size never seen at export
    with create_backend("ort", threads=1) as be:
        be.load(m)
        got = be.infer(small)["logits"]
    want = torch_logits(model, config, small)
    assert got.shape == (7, 11)
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert (got.argmax(1) == want.argmax(1)).all()


def test_unimodal_export_takes_only_its_modality(tmp_path, checkpoint_factory, held_out):
    ckpt = checkpoint_factory(tmp_path / "ckpt.pt", "video")
    feeds = parity_feeds(ModelConfig(name="video", dim=16), held_out)
    assert set(feeds) == {"image"}
    export_model(ckpt, tmp_path / "out", feeds=feeds, min_samples=200)
    data = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [i["name"] for i in data["inputs"]] == ["image"]
    assert data["version"] == 2 and [i["role"] for i in data["inputs"]] == ["video"]
    m = load_manifest(tmp_path / "out")
    assert m.modalities == ("video",)


def test_legacy_exporter_is_recorded(tmp_path, checkpoint_factory, held_out):
    ckpt = checkpoint_factory(tmp_path / "ckpt.pt", "late")
    feeds = parity_feeds(ModelConfig(name="late", dim=16), held_out)
    r = export_model(ckpt, tmp_path / "out", feeds=feeds, prefer_dynamo=False, slim=False)
    assert r.exporter == "legacy" and not r.slimmed
    assert load_manifest(tmp_path / "out").provenance["exporter"] == "legacy"


def test_embed_export_has_every_output_with_its_modality_and_matches_torch(
    tmp_path, checkpoint_factory, held_out
):
    ckpt = checkpoint_factory(tmp_path / "ckpt.pt", "embed")
    config = ModelConfig(name="embed", dim=16)
    feeds = parity_feeds(config, held_out)
    export_model(ckpt, tmp_path / "out", feeds=feeds)
    m = load_manifest(tmp_path / "out")
    got = {o.name: (o.kind, o.modality, o.drives) for o in m.outputs}
    assert got == {
        "logits": ("logits", None, True),
        "audio_probs": ("probabilities", "audio", False),
        "video_probs": ("probabilities", "video", False),
        "audio_embedding": ("embedding", "audio", False),
        "video_embedding": ("embedding", "video", False),
    }
    assert m.has_agreement and m.output("audio_embedding").shape == ("batch", config.embed_dim)
    model, _ = load_model(ckpt)
    small = {k: v[:5] for k, v in feeds.items()}
    with create_backend("ort", threads=1) as be:
        be.load(m)
        out = be.infer(small)
    want = torch_outputs(model, config, small)
    for name in config.outputs:  # each graph output is the torch tensor of the same name
        np.testing.assert_allclose(out[name], want[name], atol=1e-4)
    np.testing.assert_allclose(out["audio_probs"].sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(out["video_embedding"], axis=1), 1.0, atol=1e-5)
