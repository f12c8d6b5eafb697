"""TensorRT backend: clear errors where it cannot run; a real run where a GPU and TensorRT exist
(the engine key and the build choices are tested on the CPU in tests/export/test_trt_build.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from avfuse.backends import create_backend
from avfuse.errors import BackendUnavailable
from avfuse.manifest import load_manifest
from tests.fixtures.models import write_tiny_model

HAVE_TRT = importlib.util.find_spec("tensorrt") is not None


def _feeds(batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "audio": rng.standard_normal((batch, 64, 97)).astype(np.float32),
        "image": rng.standard_normal((batch, 1, 48, 64)).astype(np.float32),
        "mask": np.ones((batch, 2), np.float32),
    }


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
    with (
        create_backend("ort").load(m) as ref,
        create_backend("tensorrt", device="cuda", extra={"max_batch": 8}).load(m) as be,
    ):
        first = None
        for seed in range(3):  # the second call onwards replays the CUDA graph
            feeds = _feeds(4, seed)
            out = be.infer(feeds, borrow=True)["logits"]
            np.testing.assert_allclose(out, ref.infer(feeds)["logits"], rtol=1e-3, atol=1e-3)
            first = out if first is None else first
            assert out.__array_interface__["data"][0] == first.__array_interface__["data"][0]
        small = be.infer(_feeds(1), borrow=True)["logits"]  # another batch, another graph
        np.testing.assert_allclose(small, ref.infer(_feeds(1))["logits"], rtol=1e-3, atol=1e-3)
    assert any((tmp_path / "cache" / "tensorrt").glob("*.engine"))
    assert any((tmp_path / "cache" / "tensorrt").glob("timing-*.cache"))
