"""The doctor's bundled samples: demo material the model recognises, each modality missing too."""

from __future__ import annotations

import numpy as np
import pytest

from avfuse.assets import default_model_path
from avfuse.backends import create_backend
from avfuse.doctor.samples import build_samples
from avfuse.manifest import load_manifest


@pytest.mark.timeout(120)
def test_each_modality_of_the_samples_carries_its_digit() -> None:
    m = load_manifest(default_model_path())
    s = build_samples(m)
    assert len(s) == 60  # 40 cards with their utterances, then 10 audio-only, 10 video-only
    digits = [d for d in range(10) for _ in range(4)] + list(range(10)) * 2
    assert s.labels == [m.labels.index(str(d)) for d in digits]
    with create_backend("ort", threads=1) as be:
        be.load(m)
        right = [int(np.argmax(be.infer(f)["logits"][0])) == lab
                 for f, lab in zip(s.feeds, s.labels, strict=True)]  # fmt: skip
    # chance is 1/11: a window without its utterance, or a frame without its card, is near it
    assert sum(right[:40]) >= 36, right
    assert sum(right[40:50]) >= 7, f"audio only: {right[40:50]}"
    assert sum(right[50:]) >= 7, f"video only: {right[50:]}"


@pytest.mark.timeout(120)
def test_a_missing_modality_is_zeros_with_a_zero_in_the_mask() -> None:
    m = load_manifest(default_model_path())
    s = build_samples(m)
    assert m.mask_order == ("audio", "video")
    for f in s.feeds[:40]:
        assert f["mask"].tolist() == [[1.0, 1.0]]
        assert f["audio"].any() and f["image"].any()
    for f in s.feeds[40:50]:
        assert f["mask"].tolist() == [[1.0, 0.0]] and not f["image"].any() and f["audio"].any()
    for f in s.feeds[50:]:
        assert f["mask"].tolist() == [[0.0, 1.0]] and not f["audio"].any() and f["image"].any()
    for f in s.feeds:
        assert f["audio"].shape == (1, 64, 97) and f["audio"].dtype == np.float32
        assert f["image"].shape == (1, 1, 48, 64) and f["image"].dtype == np.float32
