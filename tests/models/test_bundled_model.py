"""The bundled default model reproduces its recorded test accuracy from regenerated data.

Regenerates the test split from scratch (a fresh cache folder), pre-processes it
with the reference kernels and the manifest's parameters, and runs it through
ONNX Runtime: the accuracy must be within 1 point of what the manifest records.
"""

from __future__ import annotations

import numpy as np
import pytest

from avfuse.assets import default_model_path
from avfuse.backends import create_backend
from avfuse.kernels.reference import image_to_tensor, log_mel
from avfuse.manifest import load_manifest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def manifest():
    if not default_model_path().exists():
        pytest.skip("no bundled model yet (avfuse train --zoo writes it)")
    return load_manifest(default_model_path())


def test_bundle_is_complete_and_small(manifest):
    folder = manifest.model_path.parent
    files = [folder / n for n in ("model.onnx", "manifest.json", "checkpoint.pt")]
    assert all(f.exists() for f in files)
    assert sum(f.stat().st_size for f in files) < 5 * 1024 * 1024
    assert manifest.fusion in ("early", "late", "attention", "hybrid")
    assert [s.name for s in manifest.inputs] == ["audio", "image", "mask"]
    assert manifest.metrics["parity"]["max_abs_error"] <= 1e-4


def test_regenerated_test_split_reproduces_recorded_accuracy(manifest, tmp_path):
    from avfuse.data import load_split
    from avfuse.export.pipeline import data_config_from

    config = data_config_from(manifest.provenance.get("data_config"))
    split = load_split("test", config=config, cache_dir=tmp_path, progress=False)
    assert str(split.version) == manifest.provenance["data_version"]
    n = len(split.labels)
    audio = np.concatenate(
        [log_mel(split.audio[s : s + 128], manifest.audio) for s in range(0, n, 128)]
    ).astype(np.float32)
    image = np.stack([image_to_tensor(f, manifest.video, "bgr24") for f in split.images])
    feeds = {
        "audio": audio,
        "image": image.astype(np.float32),
        "mask": np.ones((n, 2), dtype=np.float32),
    }
    with create_backend("ort", threads=2) as be:
        be.load(manifest)
        logits = np.concatenate(
            [be.infer({k: v[s : s + 256] for k, v in feeds.items()})["logits"]
             for s in range(0, n, 256)]
        )  # fmt: skip
    acc = float((logits.argmax(1) == split.labels).mean())
    recorded = manifest.metrics["test"]["clean"]
    assert abs(acc - recorded) <= 0.01, f"accuracy {acc:.4f} vs recorded {recorded:.4f}"
