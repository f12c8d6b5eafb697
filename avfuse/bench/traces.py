"""Record a model's per-frame decisions on scenes once, then replay post-processing offline.

Choosing decision settings (thresholds, smoothing, minimum duration) by running the
pipeline once per candidate costs a full pass of every scene per candidate. The
settings act only after the model: the decisions the post-processor is fed do not
depend on them. So `record_traces` runs each scene once through the real pipeline and
keeps every decision of the driving post-processor (time, scores, modalities), and
`replay` feeds a copy of them to a fresh `PostProcessor` with other settings and scores
the events with the demo's rule (`avfuse.engine.scoring`). A replay with the model's
own settings gives the events the pipeline gave (a test checks it).

Only settings tuned on scenes from allowed sources (`avfuse.data.valscenes`) may become
a model's defaults; the test-only scenes are scored, never searched.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

__all__ = ["SceneTrace", "decision_config", "record_traces", "replay", "replay_summary"]


@dataclass(frozen=True)
class SceneTrace:
    """One scene's decisions and ground truth.

    Attributes:
        voice: the scene's voice key (``engine:voice``).
        engine: the synthesizer.
        duration_s: scene length.
        truth: ground-truth records (`SyntheticSource.truth`).
        labels: the post-processor's labels.
        kind: what the scores are ("logits", "probabilities", "score").
        times: (n,) stream times of the decisions.
        scores: (n, labels) the decisions' scores.
        modalities: per decision, the modalities present.
        degraded: per decision, whether a modality was missing.
        events: the events the pipeline reported (for the replay check).
    """

    voice: str
    engine: str
    duration_s: float
    truth: list[dict[str, Any]]
    labels: tuple[str, ...]
    kind: str
    times: np.ndarray
    scores: np.ndarray
    modalities: list[tuple[str, ...]]
    degraded: list[bool]
    events: list[dict[str, Any]]


@contextlib.contextmanager
def _recording(log: list[tuple[Any, Any]]) -> Iterator[None]:
    """Every PostProcessor made inside keeps its decisions in ``log``: (processor, decision)."""
    from avfuse.engine import postprocess

    cls = postprocess.PostProcessor
    original = cls.push

    def push(self: Any, decision: Any) -> list[Any]:
        if decision is not None:  # copy: the caller may reuse its score buffer
            log.append((self, replace(decision, scores=np.array(decision.scores, np.float64))))
        return original(self, decision)

    cls.push = push  # type: ignore[method-assign]
    try:
        yield
    finally:
        cls.push = original  # type: ignore[method-assign]


def record_traces(
    scenes: Sequence[Any],
    backend: Any,
    *,
    modalities: tuple[str, ...] = ("audio", "video"),
    on_scene: Callable[[int, SceneTrace], None] | None = None,
) -> list[SceneTrace]:
    """Run each scene through the pipeline once and keep the driving decisions.

    The driving post-processor is the one whose decisions made the run's events: the
    fusion's for a zoo member with a late fusion section, else the single model lane's.
    """
    from avfuse.api import run
    from avfuse.engine.pipeline import PipelineConfig
    from avfuse.engine.sources.synthetic import SyntheticSource

    rate = backend.manifest.audio.sample_rate if backend.manifest.audio else 16000
    traces = []
    for k, scene in enumerate(scenes):
        src = SyntheticSource(
            script=scene.script,
            material=scene.material,
            sample_rate=rate,
            noise_dbfs=scene.noise_dbfs,
            audio="audio" in modalities,
            video="video" in modalities,
            name=f"trace-{k}",
        )
        log: list[tuple[Any, Any]] = []
        with _recording(log):
            res = run(
                sources=[src], backend=backend, sinks=(), config=PipelineConfig(realtime=False)
            )
        procs = list(dict.fromkeys(p for p, _ in log))
        if len(procs) != 1:
            raise RuntimeError(f"scene {k}: expected one post-processor, saw {len(procs)}")
        proc = procs[0]
        decs = [d for _, d in log]
        trace = SceneTrace(
            voice=scene.material.voice.name,
            engine=scene.material.voice.engine,
            duration_s=scene.script.duration_s,
            truth=src.truth(),
            labels=tuple(proc.labels),
            kind=proc.kind,
            times=np.array([d.stream_time_s for d in decs], np.float64),
            scores=np.array([d.scores for d in decs]),
            modalities=[tuple(d.modalities) for d in decs],
            degraded=[bool(d.degraded) for d in decs],
            events=[
                e.to_dict() if hasattr(e, "to_dict") else dict(e)
                for e in res.events
                if (e.to_dict() if hasattr(e, "to_dict") else e).get("type", "event") == "event"
            ],
        )
        traces.append(trace)
        if on_scene is not None:
            on_scene(k, trace)
    return traces


def decision_config(decision: Any) -> Any:
    """A `PostprocessConfig` from a manifest's `DecisionSpec` (the pipeline's mapping)."""
    from avfuse.engine.postprocess import PostprocessConfig

    return PostprocessConfig(
        smoothing=decision.smoothing,
        ema_alpha=decision.ema_alpha,
        mean_frames=decision.mean_frames,
        on_threshold=decision.on,
        off_threshold=decision.off,
        min_duration_s=decision.min_duration_ms / 1000.0,
        none_label=decision.background,
        thresholds=dict(decision.thresholds),
    )


def replay(trace: SceneTrace, config: Any) -> list[dict[str, Any]]:
    """The events a post-processor with ``config`` makes of the trace's decisions."""
    from avfuse.engine.postprocess import Decision, PostProcessor

    post = PostProcessor(labels=trace.labels, config=config, kind=trace.kind)
    out: list[dict[str, Any]] = []
    for t, s, m, g in zip(trace.times, trace.scores, trace.modalities, trace.degraded, strict=True):
        out.extend(r.to_dict() for r in post.push(Decision(float(t), s.copy(), m, g, 0.0)))
    out.extend(r.to_dict() for r in post.push(None))
    return [r for r in out if r.get("type", "event") == "event"]


def replay_summary(traces: Sequence[SceneTrace], config: Any) -> dict[str, Any]:
    """Recall, false events per minute and their counts over all traces with ``config``."""
    from avfuse.engine.scoring import score_events

    n_truth = n_rec = n_false = 0
    minutes = 0.0
    for tr in traces:
        s = score_events(replay(tr, config), tr.truth)
        n_truth += s["n_truth"]
        n_rec += s["n_recognised"]
        n_false += s["n_false"]
        minutes += tr.duration_s / 60
    return {
        "n_truth": n_truth,
        "n_recognised": n_rec,
        "n_false": n_false,
        "minutes": minutes,
        "recall": n_rec / n_truth if n_truth else 0.0,
        "false_per_min": n_false / minutes if minutes else 0.0,
    }
