"""The pipeline's figures: the live `Stats` record, the snapshot an exporter reads, and
the run's `Summary`.

Made on the pipeline's thread from its live objects, which nothing else may read: the
snapshot is a plain dict published whole (`Pipeline.snapshot`), so the Prometheus
exporter and the health endpoint on other threads never touch a ring or a counter
that is being written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from avfuse.engine.clock import now_ns
from avfuse.engine.records import Stats, Summary

if TYPE_CHECKING:
    from avfuse.engine.pipeline import Pipeline

LATENCY_BOUNDS_MS = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 5000.0)
"""The snapshot's latency bucket bounds (ms), the exporter's histogram buckets."""


def make_stats(p: Pipeline, fps: float) -> Stats:
    """The live `Stats` record sent to the sinks about once a second."""
    return Stats(
        fps=round(fps, 2),
        frames=p.frames,
        events=p.sink_set.events,
        latency_p50_ms=round(p.interval_latency.percentile(50), 3),
        latency_p99_ms=round(p.interval_latency.percentile(99), 3),
        drops=sum(p.metrics.drops.values()),
        streams=len(p.streams),
        labels={
            st.name if len(st.lanes) == 1 else f"{st.name}/{lane.slot.name}": (
                lane.post.current_label
            )
            for st in p.streams
            for lane in st.lanes
        },
    )


def snapshot(p: Pipeline, stats: Stats) -> dict[str, Any]:
    """The live figures, made on the pipeline's thread and published whole (an exporter
    on another thread reads `p.snapshot`, never the live objects)."""
    cap = p.metrics.hist["capture_to_ring"]  # the capture threads' own histograms
    cap.reset()
    for st in p.streams:
        cap.merge(st.ingest.capture_to_ring)
    stages = {}
    for name, h in p.metrics.hist.items():
        stages[name] = {
            "count": h.count,
            "sum_ms": h.total_ms,
            "le": list(zip(LATENCY_BOUNDS_MS, h.cumulative(LATENCY_BOUNDS_MS), strict=True)),
        }
    streams = []
    for st in p.streams:
        ing = st.ingest
        d: dict[str, Any] = {
            "name": st.name,
            "frames": sum(lane.frames for lane in st.lanes),
            "audio_up": ing.audio_up,
            "video_up": ing.video_up,
            "video_absent": st.video_absent,
            "waiting": st.waiting,
            "events": p.sink_set.events_by_stream.get(st.name, 0),
            "counters": {
                **ing.counters,
                **{k: v for k, v in ing.stats().items() if k.endswith("_overruns")},
            },
            "drops": st.drops(),
        }
        if ing.audio_clock is not None:
            d["audio_clock"] = ing.audio_clock.model.stats()
        if ing.video_clock is not None:
            d["video_clock"] = ing.video_clock.stats()
        sync = next((lane.sync for lane in st.lanes if lane.sync is not None), None)
        if sync is not None:
            d["av_sync"] = sync.summary()
        streams.append(d)
    models = [
        {
            "name": slot.name,
            "frames": slot.frames,
            "batches": slot.batches,
            "backend_errors": slot.backend_errors,
            "queued": slot.scheduler.pending() if slot.scheduler is not None else 0,
        }
        for slot in p.slots
    ]
    return {
        "time_ns": now_ns(),
        "stats": stats.to_dict(),
        "frames": p.frames,
        "events": p.sink_set.events,
        "wakeups": p.wakeups,
        "drops": dict(p.metrics.drops),
        "sink_errors": p.metrics.counters.get("sink_errors", 0),
        "backend_errors": p.metrics.counters.get("backend_errors", 0),
        "stages": stages,
        "streams": streams,
        "models": models,
        "running": not p.closed,
    }


def summary(p: Pipeline) -> Summary:
    """The run's last record: totals, latency, drops and why it ended."""
    cap = p.metrics.hist["capture_to_ring"]
    cap.reset()
    for st in p.streams:
        cap.merge(st.ingest.capture_to_ring)
    drops = dict(p.metrics.drops)
    for st in p.streams:
        for k, v in st.drops().items():
            if v:
                drops[k] = drops.get(k, 0) + v
    m = p.metrics.as_dict()
    t0 = p.t_begin_ns or now_ns()
    return Summary(
        frames=p.frames,
        events=p.sink_set.events,
        drops=drops,
        sink_errors=p.metrics.counters.get("sink_errors", 0),
        latency_ms=m["latency_ms"],
        wall_s=round((now_ns() - t0) / 1e9, 3),
        batches=sum(slot.batches for slot in p.slots),
        wakeups=p.wakeups,
        streams=tuple(st.summary() for st in p.streams),
        models=tuple(
            {"name": slot.name, "frames": slot.frames, "batches": slot.batches} for slot in p.slots
        ),
        sinks=tuple(f for s in p.sink_set.sinks if (f := s.figures()) is not None),
        stopped_by=p.stopped_by,
        model="+".join(slot.name for slot in p.slots),
    )


__all__ = ["LATENCY_BOUNDS_MS", "make_stats", "snapshot", "summary"]
