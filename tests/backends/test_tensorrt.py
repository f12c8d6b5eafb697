"""TensorRT backend: clear errors where it cannot run; a real run where a GPU and TensorRT exist."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from avfuse.backends import create_backend
from avfuse.backends.tensorrt import engine_key
from avfuse.errors import BackendUnavailable
from avfuse.manifest import load_manifest
from tests.fixtures.models import write_tiny_model

HAVE_TRT = importlib.util.find_spec("tensorrt") is not None


def test_engine_key_changes_with_everything_that_invalidates_an_engine() -> None:
    base = dict(gpu="sm_90", trt_version="10.3", precision="fp16", max_batch=64)
    k = engine_key("abc", **base)
    assert k == engine_key("abc", **base)
    assert k != engine_key("abd", **base)
    for field, other in (
        ("gpu", "sm_89"),
        ("trt_version", "10.4"),
        ("precision", "fp32"),
        ("max_batch", 32),
    ):
        assert k != engine_key("abc", **{**base, field: other})


@pytest.mark.skipif(HAVE_TRT, reason="checks the message shown where TensorRT is absent")
def test_missing_tensorrt_names_the_install(tmp_path: Path) -> None:
    m = load_manifest(write_tiny_model(tmp_path))
    with pytest.raises(BackendUnavailable, match=r"pip install 'avfuse\[gpu\]'"):
        create_backend("tensorrt", device="cuda").load(m)


@pytest.mark.gpu
@pytest.mark.skipif(not HAVE_TRT, reason="needs the tensorrt package")
def test_tensorrt_matches_onnx_runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AVFUSE_CACHE_DIR", str(tmp_path / "cache"))
    m = load_manifest(write_tiny_model(tmp_path))
    rng = np.random.default_rng(0)
    feeds = {
        "audio": rng.standard_normal((4, 64, 97)).astype(np.float32),
        "image": rng.standard_normal((4, 1, 48, 64)).astype(np.float32),
        "mask": np.ones((4, 2), np.float32),
    }
    with (
        create_backend("ort").load(m) as ref,
        create_backend("tensorrt", device="cuda").load(m) as be,
    ):
        want = ref.infer(feeds)["logits"]
        for _ in range(3):  # the second call onwards replays the CUDA graph
            np.testing.assert_allclose(be.infer(feeds)["logits"], want, rtol=1e-3, atol=1e-3)
    assert any((tmp_path / "cache" / "tensorrt").glob("*.engine"))
