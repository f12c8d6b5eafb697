"""Composing a run: which lanes each stream gets, and how the models work together.

The wiring of a run lives here, in one place (as Holoscan keeps it in `compose`): each
stream gets a lane per model that can run on what it delivers (chained models after
their sources), then the late fusions and gates of the run's plan are attached to the
lanes of each stream. The pipeline calls these once at set-up, and again for the models
a reload adds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from avfuse.engine.fusion import Gate, LateFusion
from avfuse.engine.history import HistoryRing
from avfuse.engine.lane import Lane
from avfuse.engine.stream_build import resolve_mode
from avfuse.errors import UsageError

if TYPE_CHECKING:
    from avfuse.engine.model_slot import ModelSlot
    from avfuse.engine.pipeline import Pipeline
    from avfuse.engine.streams import Stream


def add_lanes(pipe: Pipeline, st: Stream, slots: list[ModelSlot] | None = None) -> None:
    """Give a stream one lane per model that can run on it (chained models last).

    Raises:
        UsageError: no model of the run can run on the stream (naming what it lacks).
    """
    ing = st.ingest
    has_a, has_v = ing.audio_format is not None, ing.video_format is not None
    errors = []
    todo = pipe.slots if slots is None else slots
    for slot in todo:
        if slot.manifest.history_inputs:
            continue  # chained models, once their sources have lanes
        try:
            mode = resolve_mode(
                pipe.config.mode if len(pipe.slots) == 1 else "auto",
                slot.modalities,
                has_audio=has_a,
                has_video=has_v,
                name=st.name,
                model_name=slot.name,
            )
        except UsageError as e:
            errors.append(e)
            continue
        lane = Lane(stream=st, slot=slot, mode=mode, config=pipe.config)
        st.lanes.append(lane)
        slot.lanes.append(lane)
    for slot in todo:
        if slot.manifest.history_inputs:
            _add_chain_lane(pipe, st, slot)
    if not st.lanes:
        raise errors[0]


def _add_chain_lane(pipe: Pipeline, st: Stream, slot: ModelSlot) -> None:
    by_model = {lane.slot.name: lane for lane in st.lanes}
    sources = []
    for spec in slot.manifest.inputs:
        if spec.modality != "history":
            continue
        model, _, output = (spec.source or "").partition(":")
        if model not in {s.name for s in pipe.slots}:
            raise UsageError(
                f"model {slot.name!r} input {spec.name!r} reads {spec.source!r}, but no "
                f"model {model!r} runs (models: {', '.join(s.name for s in pipe.slots)}); "
                f"add it with --model {model}=PATH"
            )
        try:
            pipe.slot(model).manifest.output(output)
        except KeyError:
            raise UsageError(
                f"model {slot.name!r} input {spec.name!r} reads {spec.source!r}, but model "
                f"{model!r} has no output {output!r} in its manifest"
            ) from None
        if model not in by_model:
            return  # its source does not run on this stream
        sources.append((spec, by_model[model], output))
    lane = Lane(stream=st, slot=slot, mode="chain", config=pipe.config)
    for spec, producer, output in sources:
        shape = tuple(d for d in (spec.shape or ())[2:])
        if not all(isinstance(d, int) for d in shape):
            raise UsageError(
                f"model {slot.name!r} history input {spec.name!r} has dynamic dims "
                f"{list(spec.shape or ())}: give its shape in the manifest"
            )
        key = (producer.slot.name, output)
        ring = st.histories.get(key)
        if ring is None:
            ring = HistoryRing(row_shape=shape, capacity=spec.frames + 256, name=spec.source)
            st.histories[key] = ring
            producer.history_out[output] = (ring, [])
        elif ring.row_shape != shape:
            raise UsageError(
                f"{spec.source} is read with rows of shape {list(shape)} and "
                f"{list(ring.row_shape)}: chained inputs must agree"
            )
        lane.histories[spec.name] = (ring, spec.frames, spec.init)
        producer.history_out[output][1].append(lane)
    st.lanes.append(lane)
    slot.lanes.append(lane)


def add_fusions(pipe: Pipeline, st: Stream) -> None:
    """Late fusions and gates of the run's plan, on this stream."""
    by_model = {lane.slot.name: lane for lane in st.lanes}
    for spec in pipe.fusion.late:
        members = [by_model[m.model] for m in spec.members if m.model in by_model]
        drive = spec.drive or spec.members[0].model
        if len(members) < 2 or drive not in by_model:
            continue  # not enough of its models run on this stream
        fusion = LateFusion(spec, members, config=members[0].slot.decision)
        for lane in members:  # any member's decision may complete a pending moment
            lane.fusions.append(fusion)
        pipe._late.append(fusion)
    for spec in pipe.fusion.gates:
        gated = by_model.get(spec.model)
        if gated is None:
            continue
        by = by_model.get(spec.by)
        if by is None:
            raise UsageError(
                f"model {spec.model!r} runs on stream {st.name!r} behind gate "
                f"{spec.by!r}, which does not run there (it needs the stream's "
                f"{', '.join(pipe.slot(spec.by).modalities)})"
            )
        gated.gate = Gate(spec, by)
    # a gated lane is pulled after the lanes that gate it, so "the gating model is done"
    # is judged after it queued its last items
    st.lanes.sort(key=lambda lane: lane.gate is not None)


__all__ = ["add_fusions", "add_lanes"]
