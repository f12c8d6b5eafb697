"""Changing a running pipeline between batches: models, thresholds, sinks, fusions.

A service reloads its config on SIGHUP (avfuse.service). Everything that takes time
happens off the pipeline thread first: the new config is read and checked, new models
are loaded into their backends and warmed up. The result, a `Reconfig`, is handed to
the pipeline (`Pipeline.request_reconfig`), whose thread applies it at the top of its
loop, between two batches, so no frame is lost and the sources never stop:

    * thresholds / minimum durations / cadence of a model that stays: its lanes'
      post-processors take the new decision rule from the next decision on (an open
      decision stays open and closes by the new rule);
    * a model removed: its lanes' open decisions are flushed as events, its queued work
      released, its lanes taken off the streams;
    * a model added (or replaced: removed, then added): it gets lanes on every stream it
      can run on, like a model given at start;
    * sinks: new ones are opened, removed ones closed, the others keep going;
    * the fusion plan: late fusions and gates are rebuilt (open fused decisions
      flushed first).
A `reloaded` warning record says what changed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from avfuse.backends.base import Backend
from avfuse.engine.compose import add_fusions, add_lanes
from avfuse.engine.fusion import FusionPlan
from avfuse.engine.model_slot import ModelOptions, ModelSlot, decision_config
from avfuse.engine.records import WarningRecord
from avfuse.engine.sinks import Sink

if TYPE_CHECKING:
    from avfuse.engine.pipeline import Pipeline


@dataclass
class Reconfig:
    """What a reload changes (see the module docstring).

    Attributes:
        add: models to add, prepared off the pipeline thread (`prepare_slot`).
        remove: names of models to remove.
        options: new per-model options of models that stay.
        sinks: the new sink list (None: unchanged).
        fusion: the new fusion plan (None: unchanged).
        summary: what changed, for the `reloaded` record.
        done: set once the pipeline applied it; `error` says why it could not.
    """

    add: list[ModelSlot] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    options: dict[str, ModelOptions] = field(default_factory=dict)
    sinks: list[Sink] | None = None
    fusion: FusionPlan | None = None
    summary: str = ""
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


def apply_reconfig(pipe: Pipeline, rc: Reconfig) -> None:
    """Apply `rc` on the pipeline's thread (see the module docstring)."""
    try:
        _remove_models(pipe, rc.remove)
        for name, opts in rc.options.items():
            slot = pipe.slot(name)
            slot.options = opts
            slot.decision = decision_config(slot.manifest, opts, pipe.config.postprocess)
            for lane in slot.lanes:
                lane.post.reconfigure(slot.decision)
                lane.set_cadence(opts)
        for slot in rc.add:
            slot.index = len(pipe.slots)
            pipe.slots.append(slot)
            for st in pipe.streams:
                try:
                    add_lanes(pipe, st, [slot])
                except Exception:  # noqa: BLE001 - a model may run on some streams only
                    continue
            slot.make_scheduler(lambda t, reason, slot=slot: pipe._on_drop(slot, t, reason))
        if rc.fusion is not None or rc.remove or rc.add:
            _rebuild_fusions(pipe, rc.fusion or pipe.fusion)
        if rc.sinks is not None:
            pipe.sink_set.replace(rc.sinks, pipe.run_info())
        pipe.sink_set.send(
            WarningRecord(
                source="config",
                kind="reloaded",
                message=f"config reloaded: {rc.summary or 'no change'}",
            )
        )
    except BaseException as e:  # noqa: BLE001 - reported to the reloader, the run goes on
        rc.error = e
    finally:
        rc.done.set()


def prepare_slot(pipe: Pipeline, backend: Backend, options: ModelOptions) -> ModelSlot:
    """A new model's slot, its kernels compiled and its backend warmed, on the caller's
    thread (not the pipeline's), ready for `Reconfig.add`."""
    from avfuse.kernels.warm import warm_kernels
    from avfuse.kernels.waveform import WaveformKernel

    slot = ModelSlot(index=-1, backend=backend, config=pipe.config, options=options)
    frames = [
        (st.ingest.frame_ring.shape, st.video_format.pixel_format)
        for st in pipe.streams
        if st.video_format is not None and st.ingest.frame_ring is not None
    ]
    mel = slot.audio_kernel if not isinstance(slot.audio_kernel, WaveformKernel) else None
    warm_kernels(
        mel=mel, image=slot.image_kernel, frames=frames, streaming_mel=pipe.config.streaming_mel
    )
    for b in sorted({1, slot.batch}):
        slot.infer(b, [None] * b)
    backend.reset_state()
    return slot


def _remove_models(pipe: Pipeline, names: list[str]) -> None:
    for name in names:
        slot = pipe.slot(name)
        if slot.scheduler is not None:
            for t in slot.scheduler.drain():
                pipe._on_drop(slot, t, "reload")
        for lane in slot.lanes:
            for r in lane.post.push(None):
                pipe.sink_set.send(r)
            lane.stream.lanes.remove(lane)
            lane.stream.released()
        pipe.slots.remove(slot)
        slot.backend.close()
    for i, slot in enumerate(pipe.slots):
        slot.index = i


def _rebuild_fusions(pipe: Pipeline, plan: FusionPlan) -> None:
    for fusion in pipe._late:
        for r in fusion.post.push(None):
            pipe.sink_set.send(r)
    pipe._late = []
    names = [s.name for s in pipe.slots]
    live = FusionPlan(
        late=tuple(f for f in plan.late if all(m.model in names for m in f.members)),
        gates=tuple(g for g in plan.gates if g.model in names and g.by in names),
    )
    live.check(names)
    pipe.fusion = live
    for st in pipe.streams:
        for lane in st.lanes:
            lane.fusions = []
            lane.gate = None
        add_fusions(pipe, st)


__all__ = ["Reconfig", "apply_reconfig"]
