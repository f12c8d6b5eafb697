"""Opening benchmark variants: derived int8/fp16 models, and why a variant cannot run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avfuse.bench.config import Variant
from avfuse.bench.data import synthetic_data
from avfuse.bench.env import machine
from avfuse.bench.variants import VariantUnavailable, open_variant
from avfuse.manifest import load_manifest


@pytest.mark.parametrize(("precision", "atol"), [("int8", 0.5), ("fp16", 0.05)])
def test_reduced_precision_copies_run_and_stay_close_to_fp32(
    tiny_model: Path, tmp_path: Path, precision: str, atol: float
) -> None:
    m = load_manifest(tiny_model)
    data = synthetic_data(m, n=8, seed=2, reason="test")
    feeds = data.batch(range(8))
    ref_be, _ = open_variant(Variant(backend="ort"), m, data, tmp_path)
    with ref_be:
        want = ref_be.infer(feeds)["logits"]
    be, notes = open_variant(Variant(backend="ort", precision=precision), m, data, tmp_path)
    with be:
        got = be.infer(feeds)["logits"]
    assert notes["derived_model"].startswith(f"model.{precision}")
    assert (tmp_path / notes["derived_model"]).exists()
    assert notes["providers"] == ["CPUExecutionProvider"]
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=atol)
    assert not np.array_equal(got, want) or precision == "fp16"


def test_torch_without_checkpoint_is_skipped_with_the_reason(tiny_model: Path, tmp_path: Path):
    m = load_manifest(tiny_model)
    data = synthetic_data(m, n=2, seed=0, reason="test")
    with pytest.raises(VariantUnavailable) as e:
        open_variant(Variant(backend="torch"), m, data, tmp_path)
    assert e.value.status == "skipped" and "checkpoint" in str(e.value)


def test_gpu_variant_without_a_gpu_is_skipped(tiny_model: Path, tmp_path: Path) -> None:
    if machine()["gpus"]:
        pytest.skip("this machine has a GPU")
    m = load_manifest(tiny_model)
    data = synthetic_data(m, n=2, seed=0, reason="test")
    with pytest.raises(VariantUnavailable) as e:
        open_variant(Variant(backend="ort", device="cuda"), m, data, tmp_path)
    assert e.value.status == "skipped" and "GPU" in str(e.value)
