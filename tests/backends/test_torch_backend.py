"""The torch backend runs the checkpoint beside model.onnx and agrees with ONNX Runtime."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from avfuse.backends import create_backend
from avfuse.errors import BackendUnavailable, ModelError
from avfuse.export.parity import parity_feeds
from avfuse.export.pipeline import export_model
from avfuse.kernels.reference import AudioParams, VideoParams
from avfuse.manifest import load_manifest
from avfuse.models.checkpoint import save_checkpoint
from avfuse.models.features import Features
from avfuse.models.zoo import ModelConfig, build_model

LABELS = tuple(str(d) for d in range(10)) + ("none",)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    import torch

    root = tmp_path_factory.mktemp("torch_backend")
    torch.manual_seed(0)
    config = ModelConfig(name="early", dim=16)
    ckpt = save_checkpoint(
        root / "train" / "checkpoint.pt",
        model=build_model(config).eval(),
        config=config,
        audio=AudioParams(mean=-40.0, std=20.0),
        video=VideoParams(height=48, width=64, colour="gray", mean=(0.5,), std=(0.25,)),
        labels=LABELS,
    )
    rng = np.random.default_rng(0)
    feats = Features(
        rng.normal(size=(10, 64, 97)).astype(np.float32),
        rng.normal(size=(10, 1, 48, 64)).astype(np.float32),
        rng.integers(0, 11, 10),
    )
    export_model(ckpt, root / "model", feeds=parity_feeds(config, feats), min_samples=30)
    return root / "model", parity_feeds(config, feats)


def test_matches_onnx_runtime(exported):
    folder, feeds = exported
    m = load_manifest(folder)
    with create_backend("torch", threads=1) as tb, create_backend("ort", threads=1) as ob:
        tb.load(m)
        ob.load(m)
        got = tb.infer(feeds)["logits"]
        want = ob.infer(feeds)["logits"]
        assert tb.last_infer_ms > 0
    assert got.shape == (30, 11) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_missing_checkpoint_names_the_fix(exported, tmp_path):
    folder, _ = exported
    (tmp_path / "model.onnx").write_bytes((folder / "model.onnx").read_bytes())
    (tmp_path / "manifest.json").write_text((folder / "manifest.json").read_text())
    m = load_manifest(tmp_path)
    with pytest.raises(ModelError, match="avfuse export"):
        create_backend("torch").load(m)


def test_cuda_without_gpu_is_unavailable(exported):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(BackendUnavailable):
        create_backend("torch", device="cuda").load(load_manifest(exported[0]))


def test_module_import_does_not_import_torch():
    code = (
        "import sys, avfuse.backends.torch_backend; "
        "assert 'torch' not in sys.modules, 'torch imported at module level'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_without_torch_says_how_to_install(exported):
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from avfuse.backends import create_backend\n"
        "from avfuse.errors import BackendUnavailable\n"
        "from avfuse.manifest import load_manifest\n"
        f"m = load_manifest({str(exported[0])!r})\n"
        "try:\n"
        "    create_backend('torch').load(m)\n"
        "except BackendUnavailable as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'avfuse[train]'" in out.stdout


def test_every_output_of_forward_is_returned_in_manifest_order(exported):
    """A model with more than one output (a stateful model returns its new state) gets all
    of them back, named as the manifest says; a count mismatch is a clear error."""
    import dataclasses

    import torch

    from avfuse.errors import BackendError
    from avfuse.manifest import TensorSpec

    folder, feeds = exported
    m = load_manifest(folder)
    two = dataclasses.replace(
        m, outputs=(*m.outputs, TensorSpec(name="energy", shape=("batch", 1)))
    )

    class WithEnergy(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *args: torch.Tensor):  # noqa: ANN202
            return self.inner(*args), args[0].mean(dim=(1, 2)).unsqueeze(1)

    be = create_backend("torch").load(two)
    try:
        be._model = WithEnergy(be._model)  # the checkpoint's real model, one more output
        batch = {k: v[:3] for k, v in feeds.items()}
        out = be.infer(batch)
        assert list(out) == ["logits", "energy"]
        assert out["logits"].shape == (3, 11)
        np.testing.assert_allclose(out["energy"][:, 0], batch["audio"].mean(axis=(1, 2)), rtol=1e-5)
        be._outputs = ["logits"]  # a manifest listing fewer outputs than forward returns
        with pytest.raises(BackendError, match="returned 2 outputs"):
            be.infer(batch)
    finally:
        be.close()
