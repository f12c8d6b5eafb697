"""Every zoo member builds, has the contract's shapes, and a masked modality has no influence."""

from __future__ import annotations

import pytest
import torch

from avfuse.errors import UsageError
from avfuse.models.train import model_args
from avfuse.models.zoo import FUSED, ZOO, ModelConfig, build_model


def _inputs(batch: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(batch, 64, 97, generator=g),
        torch.randn(batch, 1, 48, 64, generator=g),
    )


@pytest.mark.parametrize("name", list(ZOO))
def test_logits_shape(name):
    config = ModelConfig(name=name, dim=16)
    model = build_model(config).eval()
    audio, image = _inputs(3)
    out = model(*model_args(config, audio, image, torch.ones(3, 2)))
    assert out.shape == (3, 11)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", FUSED)
@pytest.mark.parametrize("missing", [0, 1])
def test_masked_modality_has_no_influence(name, missing):
    model = build_model(ModelConfig(name=name, dim=16)).eval()
    audio, image = _inputs(4)
    other_audio, other_image = _inputs(4, seed=1)
    mask = torch.ones(4, 2)
    mask[:, missing] = 0.0
    with torch.no_grad():
        a = model(audio, image, mask)
        if missing == 0:
            b = model(other_audio, image, mask)
        else:
            b = model(audio, other_image, mask)
        present = model(audio, image, torch.ones(4, 2))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, present)  # the mask itself changes the decision


def test_unimodal_models_take_only_their_input():
    assert ModelConfig(name="audio").inputs == ("audio",)
    assert ModelConfig(name="video").inputs == ("image",)
    assert ModelConfig(name="attention").inputs == ("audio", "image", "mask")


def test_unknown_model_is_a_usage_error():
    with pytest.raises(UsageError, match="choose one of"):
        ModelConfig(name="transformer")
