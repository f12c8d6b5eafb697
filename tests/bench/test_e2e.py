"""End-to-end scenario: the timing proxy, the per-frame arithmetic, a real pipeline run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avfuse.backends import create_backend
from avfuse.bench.data import synthetic_data
from avfuse.bench.e2e import TimedBackend, _per_frame, run_streams
from avfuse.manifest import load_manifest


@pytest.mark.timeout(60)
def test_timed_backend_times_every_call_and_returns_the_inner_outputs(tiny_model: Path) -> None:
    m = load_manifest(tiny_model)
    data = synthetic_data(m, n=4, seed=0, reason="test")
    with create_backend("ort", threads=1).load(m) as inner:
        timed = TimedBackend(inner)
        want = inner.infer(data.batch([0, 1]))["logits"]
        for _ in range(3):
            got = timed.infer(data.batch([0, 1]))["logits"]
        np.testing.assert_array_equal(got, want)
        assert timed.calls == 3
        assert np.all(timed.ends[:3] >= timed.starts[:3]) and timed.starts[0] > 0
        assert timed.input_specs == inner.input_specs


@pytest.mark.timeout(10)
def test_per_frame_overhead_subtracts_inference_and_the_audio_block_wait() -> None:
    origin = 10_000_000_000
    # frame at t = 1/30 s: its window ends at 30 ms (hop grid), inside the 20 ms audio
    # block [20, 40) ms -> complete at 40 ms: wait 6.667 ms; frames at 0 and 2/30 s wait 0
    ts = np.array([0.0, 1 / 30, 2 / 30])
    start = origin + ((ts + 0.008) * 1e9).astype(np.int64)  # inference starts 8 ms after capture
    rows = np.stack([ts, start, start + 1_000_000], axis=1).astype(np.float64)  # and takes 1 ms
    out = _per_frame(rows, origin, block_ms=20.0, rate=16000, hop=160)
    pf = out["per_frame"]
    assert pf["end_to_end_ms"]["p50"] == pytest.approx(9.0, abs=1e-3)
    assert pf["inference_ms"]["max"] == pytest.approx(1.0, abs=1e-3)
    assert pf["algorithmic_wait_ms"]["max"] == pytest.approx(20 / 3, abs=1e-3)
    assert pf["algorithmic_wait_ms"]["p50"] == pytest.approx(0.0, abs=1e-6)
    assert pf["overhead_ms"]["max"] == pytest.approx(8.0, abs=1e-3)
    assert pf["overhead_ms"]["p50"] == pytest.approx(8.0, abs=1e-3)
    assert pf["e2e_minus_inference_ms"]["max"] == pytest.approx(8.0, abs=1e-3)


@pytest.mark.timeout(60)
def test_one_live_stream_through_the_pipeline(tiny_model: Path) -> None:
    # the pipeline is the project's own: if it does not import, this fails (never skips)
    m = load_manifest(tiny_model)
    with create_backend("ort", threads=1).load(m) as be:
        r = run_streams(be, streams=1, fps=30.0, seconds=1.5, per_frame=True)
    assert r["frames"] > 10
    assert r["latency_ms"]["count"] == r["frames"]
    assert "inference" in r["stages_ms"] and "align_wait" in r["stages_ms"]
    pf = r["per_frame"]
    assert 0.8 * r["frames"] <= pf["frames"] <= r["frames"]  # a torn frame has no overlay
    # 30 fps, 20 ms audio blocks, hop 160 at 16 kHz: frames k = 0, 1, 2 (mod 3) wait
    # 0, 40 - 33.3 and 0 ms (see the per-frame test above): the wait is known in advance
    assert pf["algorithmic_wait_ms"]["max"] == pytest.approx(20 / 3, abs=1e-3)
    assert pf["algorithmic_wait_ms"]["p50"] == pytest.approx(0.0, abs=1e-6)
    assert pf["inference_ms"]["p50"] <= pf["end_to_end_ms"]["p50"]


@pytest.mark.timeout(60)
def test_media_file_streams_through_the_pipeline(tiny_model: Path, tmp_path: Path) -> None:
    from avfuse.engine.sources.synthetic import SceneItem, SceneScript, render_scene_to_file

    script = SceneScript(
        items=(SceneItem(label="3", card_start=0.2, card_end=1.2, speech_start=0.4),),
        duration_s=1.5,
    )
    path = tmp_path / "scene.mp4"
    render_scene_to_file(script, path)
    m = load_manifest(tiny_model)
    with create_backend("ort", threads=1).load(m) as be:
        r = run_streams(be, streams=2, fps=30.0, seconds=1.0, source=str(path), per_frame=True)
    assert r["source"] == str(path) and r["audio_block_ms"] is None
    assert r["frames"] > 20  # two streams of the same file
    assert "per_frame" not in r  # the algorithmic wait is unknown for a file's audio framing
    assert "inference" in r["stages_ms"]


@pytest.mark.timeout(60)
def test_run_e2e_fails_when_a_project_module_does_not_import(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a broken project module is a failure of the run, never an end-to-end "skipped"
    import sys

    from avfuse.bench.config import BenchConfig
    from avfuse.bench.e2e import run_e2e

    pytest.importorskip("mlperf_loadgen")
    monkeypatch.setitem(sys.modules, "avfuse.engine.sources.synthetic", None)
    cfg = BenchConfig(
        scenario="end-to-end", threads=(1,), min_duration_ms=1, warmup_queries=2, e2e_seconds=0.5
    )
    with pytest.raises(ImportError, match="avfuse.engine.sources.synthetic"):
        run_e2e(cfg, load_manifest(tiny_model), lambda s: None)
