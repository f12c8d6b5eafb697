"""ONNX Runtime backend on real sessions: loading, input checks, state carrying, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from avfuse.backends import available_backends, create_backend
from avfuse.backends.base import BackendOptions
from avfuse.errors import BackendError, BackendUnavailable, ManifestError, ModelError, UsageError
from avfuse.manifest import load_manifest
from tests.fixtures.models import write_tiny_model


def _feeds(batch: int = 1, mask=(1.0, 1.0)) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "audio": rng.standard_normal((batch, 64, 97)).astype(np.float32),
        "image": rng.standard_normal((batch, 1, 48, 64)).astype(np.float32),
        "mask": np.tile(np.asarray(mask, np.float32), (batch, 1)),
    }


def test_infer_matches_the_graph_definition(tmp_path: Path) -> None:
    m = load_manifest(write_tiny_model(tmp_path))
    feeds = _feeds(batch=3)
    with create_backend("ort", threads=1).load(m) as be:
        out = be.infer(feeds)["logits"]
        assert be.last_infer_ms > 0
        assert be.providers == ["CPUExecutionProvider"]
    audio = feeds["audio"].mean(axis=2)[:, :11]
    image = np.stack(
        [feeds["image"][:, 0, 4 * c : 4 * c + 4, :].mean(axis=(1, 2)) for c in range(11)], axis=1
    )
    np.testing.assert_allclose(out, audio + image, rtol=1e-5, atol=1e-5)


def test_mask_zero_removes_a_modality(tmp_path: Path) -> None:
    m = load_manifest(write_tiny_model(tmp_path))
    with create_backend("ort").load(m) as be:
        only_audio = be.infer(_feeds(mask=(1.0, 0.0)))["logits"]
        feeds = _feeds(mask=(1.0, 0.0))
        feeds["image"][:] = 100.0
        assert np.allclose(be.infer(feeds)["logits"], only_audio)


def test_wrong_feeds_are_usage_errors(tmp_path: Path) -> None:
    m = load_manifest(write_tiny_model(tmp_path))
    with create_backend("ort").load(m) as be:
        feeds = _feeds()
        with pytest.raises(UsageError, match="float32"):
            be.infer({**feeds, "audio": feeds["audio"].astype(np.float64)})
        with pytest.raises(UsageError, match="dim 2 must be 97"):
            be.infer({**feeds, "audio": np.zeros((1, 64, 96), np.float32)})
        with pytest.raises(UsageError, match="missing \\['mask'\\]"):
            be.infer({k: v for k, v in feeds.items() if k != "mask"})
        with pytest.raises(UsageError, match="same batch"):
            be.infer({**feeds, "mask": np.ones((2, 2), np.float32)})


def test_state_is_carried_per_stream_and_reset(tmp_path: Path) -> None:
    m = load_manifest(write_tiny_model(tmp_path, stateful=True))
    feeds = _feeds(batch=2, mask=(1.0, 0.0))
    with create_backend("ort").load(m) as be:
        first = be.infer(feeds, streams=["a", "b"])["logits"]
        second = be.infer(feeds, streams=["a", "b"])["logits"]
        np.testing.assert_allclose(second, 2 * first, rtol=1e-5)
        be.reset_state("a")
        third = be.infer(feeds, streams=["a", "b"])["logits"]
        np.testing.assert_allclose(third[0], first[0], rtol=1e-5)
        np.testing.assert_allclose(third[1], 3 * first[1], rtol=1e-5)
        # a stream seen first inside a batch starts from zeros
        swapped = be.infer(feeds, streams=["c", "b"])["logits"]
        np.testing.assert_allclose(swapped[0], first[0], rtol=1e-5)


def test_corrupt_model_is_a_model_error(tmp_path: Path) -> None:
    path = write_tiny_model(tmp_path)
    (tmp_path / "model.onnx").write_bytes(b"this is not a protobuf" * 10)
    data = json.loads(path.read_text())
    data["model"]["sha256"] = None
    path.write_text(json.dumps(data))
    with pytest.raises(ModelError, match="corrupt"):
        create_backend("ort").load(load_manifest(path))


def test_manifest_contradicting_graph_is_rejected_at_load(tmp_path: Path) -> None:
    path = write_tiny_model(tmp_path)
    data = json.loads(path.read_text())
    data["outputs"][0]["name"] = "scores"
    path.write_text(json.dumps(data))
    with pytest.raises(ManifestError) as info:
        create_backend("ort").load(load_manifest(path))
    assert info.value.field == "outputs[0].name"


def test_use_before_load_and_double_close(tmp_path: Path) -> None:
    be = create_backend("ort")
    with pytest.raises(BackendError, match="not loaded"):
        be.infer(_feeds())
    be.close()
    be.close()


def test_unavailable_gpu_paths_fail_clearly(tmp_path: Path) -> None:
    m = load_manifest(write_tiny_model(tmp_path))
    with pytest.raises(BackendUnavailable, match="onnxruntime-gpu"):
        create_backend("ort", device="cuda").load(m)
    with pytest.raises(BackendUnavailable, match="onnxruntime-gpu"):
        create_backend("ort", device="cuda", provider="tensorrt").load(m)


def test_options_are_validated_once() -> None:
    with pytest.raises(UsageError, match="device"):
        BackendOptions(device="tpu")
    with pytest.raises(UsageError, match="optimization"):
        BackendOptions(optimization="max")
    with pytest.raises(UsageError, match="unknown backend"):
        create_backend("nope")
    assert "ort" in available_backends()


@pytest.mark.parametrize("level", ["disable", "basic", "extended", "all"])
def test_every_optimisation_level_gives_the_same_answer(tmp_path: Path, level: str) -> None:
    m = load_manifest(write_tiny_model(tmp_path))
    with (
        create_backend("ort").load(m) as ref,
        create_backend("ort", optimization=level).load(m) as be,
    ):
        np.testing.assert_allclose(be.infer(_feeds())["logits"], ref.infer(_feeds())["logits"])
