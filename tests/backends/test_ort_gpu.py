"""ONNX Runtime on the GPU providers, where a GPU and onnxruntime-gpu exist (every test is
marked `gpu` and skips cleanly elsewhere): the same binding code as on the CPU, checked
against the CPU provider; device feeds read where they are; the TensorRT provider's fp16."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from avfuse.assets import default_model_path
from avfuse.backends import create_backend
from avfuse.manifest import load_manifest

pytestmark = pytest.mark.gpu


def _eps() -> list[str]:
    import onnxruntime

    return onnxruntime.get_available_providers()


def _need(provider: str) -> None:
    if provider not in _eps():
        pytest.skip(f"this onnxruntime has no {provider} (pip install onnxruntime-gpu)")


def _feeds(batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "audio": rng.standard_normal((batch, 64, 97)).astype(np.float32),
        "image": rng.standard_normal((batch, 1, 48, 64)).astype(np.float32),
        "mask": np.ones((batch, 2), np.float32),
    }


@pytest.mark.timeout(300)
@pytest.mark.parametrize("batch", [1, 8])
def test_cuda_provider_through_binding_matches_the_cpu(batch: int) -> None:
    _need("CUDAExecutionProvider")
    m = load_manifest(default_model_path())
    with (
        create_backend("ort").load(m) as cpu,
        create_backend("ort", device="cuda", provider="cuda").load(m) as gpu,
    ):
        assert gpu.providers[0] == "CUDAExecutionProvider" and gpu.reuses_outputs
        first = None
        for seed in range(3):
            feeds = {k: gpu.host_buffer(v.shape, v.dtype) for k, v in _feeds(batch).items()}
            for k, v in _feeds(batch, seed).items():
                feeds[k][...] = v
            out = gpu.infer(feeds, borrow=True)["logits"]
            np.testing.assert_allclose(out, cpu.infer(feeds)["logits"], rtol=1e-3, atol=1e-3)
            first = out if first is None else first
            assert out.__array_interface__["data"][0] == first.__array_interface__["data"][0]


@pytest.mark.timeout(300)
def test_cuda_provider_reads_device_feeds_in_place() -> None:
    _need("CUDAExecutionProvider")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA build of torch to make device buffers")
    m = load_manifest(default_model_path())
    host = _feeds(4, 1)
    dev = {k: torch.from_numpy(v).cuda() for k, v in host.items()}
    torch.cuda.synchronize()
    with (
        create_backend("ort").load(m) as cpu,
        create_backend("ort", device="cuda").load(m) as gpu,
    ):
        assert gpu.device_inputs
        got = gpu.infer(dev)["logits"]
        np.testing.assert_allclose(got, cpu.infer(host)["logits"], rtol=1e-3, atol=1e-3)


@pytest.mark.timeout(600)
def test_tensorrt_provider_fp16_stays_close_to_fp32(tmp_path, monkeypatch) -> None:
    _need("TensorrtExecutionProvider")
    if importlib.util.find_spec("tensorrt") is None:
        pytest.skip("needs TensorRT's libraries (pip install 'avfuse[gpu]')")
    monkeypatch.setenv("AVFUSE_CACHE_DIR", str(tmp_path))
    m = load_manifest(default_model_path())
    with (
        create_backend("ort").load(m) as cpu,
        create_backend("ort", provider="tensorrt", device="cuda", precision="fp16",
                       extra={"max_batch": 8}).load(m) as trt,
    ):  # fmt: skip
        assert trt.providers[0] == "TensorrtExecutionProvider"
        for batch in (1, 8):
            want = cpu.infer(_feeds(batch))["logits"]
            got = trt.infer(_feeds(batch))["logits"]
            np.testing.assert_allclose(got, want, atol=5e-2)
            assert (np.argmax(got, 1) == np.argmax(want, 1)).mean() >= 0.99
    assert any((tmp_path / "ort-tensorrt").iterdir())  # engines and timings cached
