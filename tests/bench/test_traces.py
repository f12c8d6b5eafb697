"""Trace recording and offline replay of post-processing (avfuse/bench/traces.py)."""

from __future__ import annotations

import pytest

from avfuse.assets import default_model_path

pytestmark = pytest.mark.skipif(
    not default_model_path().exists(), reason="the bundled model is not built yet"
)


def _demo_scenes(n: int) -> list:
    from avfuse.assets.demo import load_demo_assets
    from avfuse.data.offsource import OffsourceScene, OffsourceVoice
    from avfuse.engine.sources.synthetic import SceneScript

    class _Material:
        def __init__(self) -> None:
            a = load_demo_assets()
            self.cards, self.utterances = a.cards, a.utterances
            self.backgrounds, self.sample_rate = a.backgrounds, a.sample_rate
            self.voice = OffsourceVoice("demo", "assets")

    m = _Material()
    return [OffsourceScene(SceneScript.default(seed=k), m, -60.0, 40.0) for k in range(n)]


@pytest.mark.timeout(240)
def test_replay_with_the_models_settings_gives_the_pipelines_events() -> None:
    """The events the pipeline reported and those replayed from the trace are the same
    (labels, times, scores), so settings chosen by replay act as they would in a run."""
    from avfuse.api import load_backend
    from avfuse.bench.traces import decision_config, record_traces, replay, replay_summary
    from avfuse.engine.postprocess import PostprocessConfig

    be = load_backend(None, threads=1)
    try:
        traces = record_traces(_demo_scenes(2), be)
        cfg = decision_config(be.manifest.decision)
    finally:
        be.close()
    n_events = 0
    for tr in traces:
        assert tr.scores.shape == (len(tr.times), len(tr.labels)) and len(tr.times) > 100
        got = replay(tr, cfg)
        assert len(got) == len(tr.events) > 0
        for a, b in zip(got, tr.events, strict=True):
            assert a["label"] == b["label"]
            assert a["start"] == pytest.approx(b["start"]) and a["end"] == pytest.approx(b["end"])
            assert a["score"] == pytest.approx(b["score"], abs=1e-6)
        n_events += len(got)
    # a minimum duration longer than the scenes leaves no event
    none = replay_summary(traces, PostprocessConfig(min_duration_s=1000.0))
    assert none["n_recognised"] == 0 and none["n_false"] == 0
    assert replay_summary(traces, cfg)["n_recognised"] >= 15  # the demo digits, 10 a scene
