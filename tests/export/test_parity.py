"""The parity gate passes an honest export and fails a perturbed one, with the numbers."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from avfuse.errors import ExportError, ParityError
from avfuse.export.check import check_onnx
from avfuse.export.manifest_step import build_manifest
from avfuse.export.onnx_export import to_onnx
from avfuse.export.parity import check_parity, parity_feeds
from avfuse.models.checkpoint import audio_params_of, load_model, video_params_of
from avfuse.models.zoo import ModelConfig


def _export(tmp_path, checkpoint_factory, name="early"):
    ckpt = checkpoint_factory(tmp_path / "ckpt.pt", name)
    model, blob = load_model(ckpt)
    config = ModelConfig(**blob["config"])
    exported = to_onnx(model, config, tmp_path / "model.onnx")
    check_onnx(exported.path)

    def manifest():
        return build_manifest(
            onnx_path=exported.path,
            config=config,
            audio=audio_params_of(blob),
            video=video_params_of(blob),
            labels=tuple(blob["labels"]),
            opset=exported.opset,
            metrics={},
            provenance={},
        )

    return model, config, exported.path, manifest


def test_honest_export_passes(tmp_path, checkpoint_factory, held_out):
    model, config, _, manifest = _export(tmp_path, checkpoint_factory)
    report = check_parity(model, config, manifest(), parity_feeds(config, held_out))
    assert report.samples == 600
    assert report.max_abs_error <= 1e-4
    assert report.top1_agreement == 1.0


def test_perturbed_initializer_fails_with_numbers(tmp_path, checkpoint_factory, held_out):
    model, config, path, manifest = _export(tmp_path, checkpoint_factory)
    graph = onnx.load(str(path))
    # scale the largest initializer (a conv or linear weight) by 1.5
    init = max(graph.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 1.5, init.name))
    onnx.save(graph, str(path))

    with pytest.raises(ParityError) as info:
        check_parity(model, config, manifest(), parity_feeds(config, held_out))
    err = info.value
    assert err.max_abs_error > 1e-4
    assert 0.0 <= err.top1_agreement <= 1.0
    assert f"{err.max_abs_error:.3g}" in str(err)
    assert f"{err.top1_agreement:.4f}" in str(err)


def test_an_embedding_that_differs_fails_the_gate_though_the_logits_agree(
    tmp_path, checkpoint_factory, held_out
):
    model, config, _, manifest = _export(tmp_path, checkpoint_factory, name="embed")
    feeds = parity_feeds(config, held_out)
    assert check_parity(model, config, manifest(), feeds).max_abs_error <= 1e-4
    with torch.no_grad():  # the projection feeds only the embedding, never the logits
        model.video_proj[2].weight.mul_(1.5)
    with pytest.raises(ParityError) as info:
        check_parity(model, config, manifest(), feeds)
    assert info.value.top1_agreement == 1.0 and info.value.max_abs_error > 1e-4


def test_too_few_samples_is_refused(tmp_path, checkpoint_factory, held_out):
    model, config, _, manifest = _export(tmp_path, checkpoint_factory)
    feeds = {k: v[:100] for k, v in parity_feeds(config, held_out).items()}
    with pytest.raises(ExportError, match=">= 500"):
        check_parity(model, config, manifest(), feeds)


def test_checker_rejects_a_broken_file(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not an onnx model")
    with pytest.raises(ExportError, match="onnx.checker"):
        check_onnx(bad)
