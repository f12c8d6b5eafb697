"""The content sync model's training loop and export round trip, on a tiny smoke setup."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from avfuse.engine.content_features import audio_windows, standardise_stacks
from avfuse.engine.content_sync import ContentSyncConfig, ContentSyncMonitor
from avfuse.models.content_sync import ContentSyncTrainConfig, col_of, make_training_clips

pytest.importorskip("torch")


@pytest.mark.timeout(240)
def test_tiny_training_exports_a_model_the_monitor_runs(tmp_path: Path) -> None:
    from avfuse.export.content_sync import export_content_sync
    from avfuse.models.content_sync import train_content_sync

    cfg = ContentSyncTrainConfig(
        clips=2, clip_s=2.0, voices=1, phrases_per_voice=1, steps=3, batch=4
    )
    clips = make_training_clips(cfg)
    model, figures = train_content_sync(cfg, clips)
    assert np.isfinite(figures["loss"])
    c = clips[0]
    video = standardise_stacks(np.stack([c.frames[i - 2 : i + 3] for i in range(2, 12)]).copy())
    audio = audio_windows(c.cols, col_of(c.times[2:12]))
    mpath = export_content_sync(model, tmp_path, video=video, audio=audio)
    manifest = json.loads(mpath.read_text())
    assert [o["kind"] for o in manifest["outputs"]] == ["embedding", "embedding"]
    assert manifest["parity"]["max_abs_error"] <= 1e-4
    mon = ContentSyncMonitor(
        configured_offset_ms=0.0,
        sample_rate=16000,
        config=ContentSyncConfig(model=str(tmp_path / "model.onnx")),
    )
    for k in range(50):  # a second of a frame and audio: the model runs in ORT
        mon.push_video(k / 25, c.frames[k % len(c.frames)])
        mon.push_audio((k + 1) * 640 / 16000, np.zeros(640, np.float32))
        mon.poll()
    assert mon.evaluations == 0 or mon.status in ("not enough cues yet", "no usable sync cues")
    assert mon._frames.next_embed > 0  # frame stacks were embedded by the exported model
