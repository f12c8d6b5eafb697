"""One batch of the pipeline's loop: pre-process, infer, post-process, hand to sinks.

Functions of the `Pipeline` they run in (`p`), as `pipeline_figures` is: the loop
(`Pipeline._loop`) decides when a batch runs, these do its work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from avfuse.engine.clock import now_ns
from avfuse.engine.lane import Item, Lane
from avfuse.engine.model_slot import ModelSlot
from avfuse.engine.postprocess import Decision
from avfuse.engine.records import FaultRecord, Record
from avfuse.engine.schedule import Ticket
from avfuse.errors import BackendError

if TYPE_CHECKING:
    from avfuse.engine.pipeline import Pipeline

#: backend failures in a row after which a run stops (one is a glitch, three a broken model)
MAX_BACKEND_ERRORS = 3


def process_batch(p: Pipeline, slot: ModelSlot, batch: list[Ticket]) -> None:
    """Pre-process, infer and post-process one batch; hand records and frames to the
    sinks and release the items (their frames and audio may then be overwritten)."""
    t0 = now_ns()
    lanes = [slot.lanes[t.stream] for t in batch]
    for i, (t, lane) in enumerate(zip(batch, lanes, strict=True)):
        it: Item = t.item
        if it.ready_ns:
            p.metrics.record("align_wait", it.ready_ns - it.first_seen_ns)
        lane.prepare(it, i)
        if it.reset:  # a gap: recurrent state must not span it (one item per stream)
            slot.backend.reset_state(lane.stream.name)
    t1 = now_ns()
    p.metrics.record("preprocess", t1 - t0)
    out = infer(p, slot, len(batch), [lane.stream.name for lane in lanes])
    if out is None:
        for t, lane in zip(batch, lanes, strict=True):
            p.metrics.drop("backend_error")
            lane.release(t.item)
        return
    t2 = now_ns()
    p.metrics.record("inference", t2 - t1)
    slot.batches += 1
    scores = slot.reader.scores(out)
    records: list[Record] = []
    for i, (t, lane) in enumerate(zip(batch, lanes, strict=True)):
        it = t.item
        st = lane.stream
        stream_t = st.ingest.stream_time_s(it.time_ns)
        latency_ms = (t2 - it.base_ns) / 1e6
        if scores is not None:
            d = Decision(
                stream_time_s=stream_t,
                scores=scores[i],
                modalities=it.modalities,
                degraded=it.degraded,
                latency_ms=latency_ms,
            )
            records.extend(lane.post.push(d))
            lane.note_output(scores[i], it)
            for fusion in lane.fusions:
                records.extend(fusion.on_output(lane, it, stream_t, latency_ms))
        for output, (ring, consumers) in lane.history_out.items():
            end = ring.push(out[output][i])
            for consumer in consumers:
                consumer.on_history(it, end, t2)
        if slot.reader.values:
            records.extend(
                slot.reader.value_records(
                    out,
                    i,
                    degraded=it.degraded,
                    latency_ms=round(latency_ms, 2),
                    stream=st.name,
                    model=slot.name,
                    stream_time=round(stream_t, 3),
                )  # fmt: skip
            )
        if lane.agreement is not None:
            records.extend(lane.agreement.push_outputs(out, i, stream_t, it.modalities))
        p.frames += 1
        lane.frames += 1
        slot.frames += 1
    t3 = now_ns()
    p.metrics.record("postprocess", t3 - t2)
    for t in batch:  # capture -> decision handed to the sinks
        p.metrics.record("end_to_end", t3 - t.item.base_ns)
        p.interval_latency.record_ns(t3 - t.item.base_ns)
    for r in records:
        p.sink_set.send(r)
    frame_sinks = p.sink_set.frame_sinks
    for t, lane in zip(batch, lanes, strict=True):
        if frame_sinks and lane.takes_video and slot.index == frame_slot(lane):
            frame, overlay = lane.stream.overlay(t.item, lane)
            if frame is not None and overlay is not None:
                for s in frame_sinks:
                    p.sink_set.call(s, "on_frame", frame, overlay)
        lane.release(t.item)
    p.metrics.record("sink", now_ns() - t3)


def frame_slot(lane: Lane) -> int:
    """Annotated frames come from the first video-driven model of a stream."""
    first = next((x for x in lane.stream.lanes if x.takes_video), lane)
    return first.slot.index


def infer(
    p: Pipeline, slot: ModelSlot, n: int, stream_ids: list[Any], *, warmup: bool = False
) -> dict[str, np.ndarray] | None:
    """Run a batch; None when the backend failed (a fault record, the batch dropped).

    A backend error is recoverable once: the run goes on with the next batch. After
    `MAX_BACKEND_ERRORS` failures in a row (or any during warm-up) it is fatal.
    """
    try:
        out = slot.infer(n, stream_ids)
    except BackendError as e:
        slot.backend_errors += 1
        slot.errors_in_a_row += 1
        fatal = warmup or slot.errors_in_a_row >= MAX_BACKEND_ERRORS
        p.metrics.count("backend_errors")
        p.sink_set.send(
            FaultRecord(
                source=f"backend:{slot.backend.name}",
                kind="error",
                message=str(e) + ("" if fatal else "; the batch is dropped and the run goes on"),
                recoverable=not fatal,
                model=slot.name,
            )
        )
        if fatal:
            raise
        return None
    slot.errors_in_a_row = 0
    return out


__all__ = ["MAX_BACKEND_ERRORS", "frame_slot", "infer", "process_batch"]
