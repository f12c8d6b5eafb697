"""`avfuse bench --provider`: the ort variants on the provider asked for, refused without ort;
the TensorRT provider's int8 variant runs the symmetric Q/DQ model `avfuse build` makes."""

from __future__ import annotations

from pathlib import Path

import pytest

from avfuse.bench.config import BenchConfig, Variant
from avfuse.errors import UsageError


def test_provider_puts_the_ort_variants_on_it() -> None:
    cfg = BenchConfig(backends=("ort", "torch"), provider="tensorrt",
                      precisions=("fp32", "fp16", "int8"))  # fmt: skip
    ort = [v for v in cfg.variants() if v.backend == "ort"]
    assert [(v.device, v.provider, v.precision) for v in ort] == [
        ("cuda", "tensorrt", "fp32"), ("cuda", "tensorrt", "fp16"), ("cuda", "tensorrt", "int8"),
    ]  # fmt: skip
    assert ort[1].label.startswith("ort-tensorrt-cuda")
    cuda = [v for v in BenchConfig(backends=("ort",), provider="cuda").variants()]
    assert {v.provider for v in cuda} == {"cuda"} and {v.precision for v in cuda} == {
        "fp32",
        "fp16",
    }
    assert all(v.provider is None for v in BenchConfig(backends=("ort",)).variants())


def test_provider_without_ort_is_refused() -> None:
    with pytest.raises(UsageError, match="--provider applies to --backends ort only"):
        BenchConfig(backends=("torch",), provider="cuda")
    with pytest.raises(UsageError, match="unknown provider"):
        BenchConfig(provider="rocm")


@pytest.mark.timeout(180)
def test_tensorrt_int8_variant_derives_the_qdq_model(tmp_path: Path) -> None:
    from avfuse.assets import default_model_path
    from avfuse.bench.data import synthetic_data
    from avfuse.bench.variants import derive_model
    from avfuse.export.quantize import has_qdq
    from avfuse.manifest import load_manifest

    m = load_manifest(default_model_path())
    data = synthetic_data(m, n=16, reason="test")
    v = Variant(backend="ort", device="cuda", provider="tensorrt", precision="int8")
    q, info = derive_model(m, v, data, tmp_path)
    assert q.model_path.name == "model.int8-qdq.onnx" and has_qdq(q.model_path)
    assert info["activations"] == "int8 symmetric" and info["biases"] == "float"
