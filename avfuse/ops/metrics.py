"""Prometheus metric families made from the pipeline's published snapshot.

`SnapshotCollector` is a prometheus_client custom collector: on each scrape it takes the
latest `Pipeline.snapshot` (a dict the pipeline replaces whole once per stats tick) and
turns it into metric families. It keeps no state of its own, so a scrape shows exactly
what the pipeline last published and never reads the live objects of the run.

`SERIES` is the one list of what is exposed (name as scraped, type, labels, meaning);
docs/metrics.md holds the same table for operators, and the tests check that the two
and a real run's exposition agree. Units are Prometheus base units (seconds), except the
clock drift, which is in parts per million as everywhere else in avfuse.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from avfuse.engine.clock import now_ns
from avfuse.errors import BackendUnavailable
from avfuse.ops.health import liveness, snapshot_age_s

INSTALL_HINT = "Prometheus metrics need prometheus_client: pip install 'avfuse[metrics]'"

#: the states `avfuse_av_sync_status` reports (avfuse.engine.sync.SyncMonitor.status)
AV_SYNC_STATES = ("ok", "misaligned", "no usable sync cues", "not enough cues yet")


@dataclass(frozen=True, slots=True)
class Series:
    """One exposed metric: its name as scraped, Prometheus type, labels and meaning."""

    name: str
    kind: str
    labels: tuple[str, ...]
    help: str


_S, _SM, _M, _SMOD = ("stream",), ("stream", "model"), ("model",), ("stream", "modality")

#: scheduler drop reasons, exposed at 0 from the start so `increase()` alerts work at once
DROP_REASONS = ("backend_error", "deadline", "queue_full", "reload", "shutdown")

#: ingest counter -> (series name, meaning); counters not listed go to avfuse_ingest_other_total
INGEST_COUNTERS: dict[str, tuple[str, str]] = {
    "audio_blocks": ("avfuse_audio_blocks_total", "Audio blocks captured into the ring."),
    "video_frames": ("avfuse_video_frames_captured_total", "Video frames captured into the ring."),
    "audio_gaps": (
        "avfuse_audio_gaps_total",
        "Gaps found in the captured audio (lost blocks, reconnects).",
    ),
    "audio_gap_samples": ("avfuse_audio_gap_samples_total", "Audio samples missing in gaps."),
    "device_clock_jumps": (
        "avfuse_device_clock_jumps_total",
        "Audio device timestamps that jumped against the host clock.",
    ),
    "video_time_regressions": (
        "avfuse_video_time_regressions_total",
        "Video frames whose timestamp went backwards (dropped).",
    ),
    "format_changes": ("avfuse_format_changes_total", "Mid-stream format changes accepted."),
    "format_errors": ("avfuse_format_errors_total", "Frames or blocks refused for their format."),
    "backpressure_timeouts": (
        "avfuse_backpressure_timeouts_total",
        "Times a file source waited too long for room in a ring.",
    ),
    "audio_overruns": (
        "avfuse_audio_ring_overruns_total",
        "Audio overwritten in the ring before it was read (the pipeline fell behind).",
    ),
    "video_overruns": (
        "avfuse_video_ring_overruns_total",
        "Frames overwritten in the ring before they were read (the pipeline fell behind).",
    ),
}

SERIES: tuple[Series, ...] = (
    Series("avfuse_up", "gauge", (), "1 while the run goes on and its figures are fresh."),
    Series(
        "avfuse_snapshot_age_seconds",
        "gauge",
        (),
        "Seconds since the pipeline last published its figures (NaN before the first).",
    ),
    Series("avfuse_build_info", "info", ("version",), "The avfuse version serving the metrics."),
    Series(
        "avfuse_frames_total",
        "counter",
        _S,
        "Decisions made on the stream (frames or audio windows processed), all models.",
    ),
    Series("avfuse_events_total", "counter", (), "Event records written."),
    Series("avfuse_stream_events_total", "counter", _S, "Event records about the stream."),
    Series("avfuse_wakeups_total", "counter", (), "Wake-ups of the pipeline loop."),
    Series(
        "avfuse_drops_total",
        "counter",
        ("reason",),
        "Items dropped by the schedulers (" + ", ".join(DROP_REASONS) + ").",
    ),
    Series(
        "avfuse_stream_drops_total",
        "counter",
        ("stream", "reason"),
        "Items lost in a stream's rings and lanes (ring_overrun, frame_overwritten, "
        "video_late, audio_windows_skipped, gated).",
    ),
    Series("avfuse_sink_errors_total", "counter", (), "Failed sink calls."),
    Series("avfuse_backend_errors_total", "counter", _M, "Failed inference calls."),
    Series("avfuse_model_frames_total", "counter", _M, "Decisions made by the model."),
    Series("avfuse_inference_batches_total", "counter", _M, "Inference calls (micro-batches)."),
    Series("avfuse_queue_depth", "gauge", _M, "Items queued in the model's scheduler."),
    Series(
        "avfuse_stage_latency_seconds",
        "histogram",
        ("stage",),
        "Latency per pipeline stage (align_wait, preprocess, inference, postprocess, sink, "
        "end_to_end, capture_to_ring).",
    ),
    Series("avfuse_waiting_items", "gauge", _S, "Items taken and waiting for their audio."),
    Series("avfuse_modality_up", "gauge", _SMOD, "1 while the stream's source delivers it."),
    Series(
        "avfuse_video_absent",
        "gauge",
        _S,
        "1 while the video stopped and decisions use the audio alone.",
    ),
    *(Series(name, "counter", _S, text) for name, text in INGEST_COUNTERS.values()),
    Series(
        "avfuse_ingest_other_total",
        "counter",
        ("stream", "counter"),
        "Ingest counters without a series of their own.",
    ),
    Series(
        "avfuse_clock_drift_ppm",
        "gauge",
        _SMOD,
        "How much faster the host clock runs than the device clock.",
    ),
    Series(
        "avfuse_clock_residual_seconds",
        "gauge",
        _SMOD,
        "Mean absolute residual of the device clock fit (the jitter left).",
    ),
    Series(
        "avfuse_clock_rejected_total",
        "counter",
        _SMOD,
        "Timestamps the clock fit rejected as outliers.",
    ),
    Series(
        "avfuse_clock_jumps_total",
        "counter",
        _SMOD,
        "Lasting steps of the device clock the fit restarted on.",
    ),
    Series("avfuse_clock_updates_total", "counter", _SMOD, "Timestamps the clock fit took."),
    Series(
        "avfuse_av_sync_offset_seconds",
        "gauge",
        _S,
        "Measured residual audio delay (NaN while no estimate was accepted).",
    ),
    Series(
        "avfuse_av_sync_offset_ci_seconds",
        "gauge",
        ("stream", "bound"),
        "95 % interval of that estimate, bound low or high (NaN without one).",
    ),
    Series("avfuse_av_sync_pairs", "gauge", _S, "Onset pairs behind the last estimate."),
    Series(
        "avfuse_av_sync_configured_offset_seconds",
        "gauge",
        _S,
        "The A/V offset configured for the stream (--av-offset-ms).",
    ),
    Series(
        "avfuse_av_sync_status",
        "stateset",
        ("stream", "avfuse_av_sync_status"),
        "The sync verdict: " + ", ".join(AV_SYNC_STATES) + ".",
    ),
)

_BY_NAME = {s.name: s for s in SERIES}


def prometheus_core() -> Any:
    """prometheus_client.core, or BackendUnavailable naming the install command."""
    try:
        from prometheus_client import core
    except ImportError as e:
        raise BackendUnavailable(INSTALL_HINT) from e
    return core


def _nan(x: Any, scale: float = 1.0) -> float:
    """`x * scale` as a float, NaN for None or a non-number."""
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return float(x) * scale
    return math.nan


class SnapshotCollector:
    """A prometheus_client collector over `snapshot()` (register it on a CollectorRegistry).

    Args:
        snapshot: returns the latest `Pipeline.snapshot` (None before the first tick).
        stale_after_s: `avfuse_up` is 0 once the snapshot is this old.
        since_ns: when the watcher started (host monotonic ns; now by default).

    Raises:
        BackendUnavailable: prometheus_client is not installed.
    """

    def __init__(
        self,
        snapshot: Callable[[], Mapping[str, Any] | None],
        *,
        stale_after_s: float = 5.0,
        since_ns: int | None = None,
    ) -> None:
        self._core = prometheus_core()
        self._snapshot = snapshot
        self.stale_after_s = stale_after_s
        self.since_ns = now_ns() if since_ns is None else since_ns

    def describe(self) -> list[Any]:
        """Nothing: registering must not call `collect` (the run may not have started)."""
        return []

    def _family(self, name: str) -> Any:
        s = _BY_NAME[name]
        core = self._core
        cls = {
            "counter": core.CounterMetricFamily,
            "gauge": core.GaugeMetricFamily,
            "histogram": core.HistogramMetricFamily,
            "stateset": core.StateSetMetricFamily,
        }[s.kind]
        labels = [x for x in s.labels if not (s.kind == "stateset" and x == s.name)]
        return cls(name, s.help, labels=labels)

    def collect(self) -> Iterator[Any]:
        """The families of the latest snapshot (only `avfuse_up` and the rest empty before it)."""
        from avfuse import __version__

        snap = self._snapshot()
        now = now_ns()
        fam = {s.name: self._family(s.name) for s in SERIES if s.kind != "info"}
        info = self._core.InfoMetricFamily("avfuse_build", _BY_NAME["avfuse_build_info"].help)
        info.add_metric([], {"version": str(__version__)})
        live = liveness(snap, now_ns=now, since_ns=self.since_ns, stale_after_s=self.stale_after_s)
        fam["avfuse_up"].add_metric([], 1.0 if live.ok and snap is not None else 0.0)
        age = snapshot_age_s(snap, now) if snap is not None else math.nan
        fam["avfuse_snapshot_age_seconds"].add_metric([], age)
        if snap is not None:
            self._fill(fam, snap)
        yield info
        yield from fam.values()

    def _fill(self, fam: dict[str, Any], snap: Mapping[str, Any]) -> None:
        """Add the snapshot's figures to the (empty) families."""
        fam["avfuse_events_total"].add_metric([], _nan(snap.get("events", 0)))
        fam["avfuse_wakeups_total"].add_metric([], _nan(snap.get("wakeups", 0)))
        fam["avfuse_sink_errors_total"].add_metric([], _nan(snap.get("sink_errors", 0)))
        drops = {reason: 0 for reason in DROP_REASONS}
        drops.update(snap.get("drops") or {})
        for reason, n in sorted(drops.items()):
            fam["avfuse_drops_total"].add_metric([reason], _nan(n))
        for name, st in sorted((snap.get("stages") or {}).items()):
            buckets = [(repr(b / 1e3), c) for b, c in st.get("le", [])]
            buckets.append(("+Inf", st.get("count", 0)))
            fam["avfuse_stage_latency_seconds"].add_metric(
                [name], buckets, sum_value=_nan(st.get("sum_ms", 0.0), 1e-3)
            )
        for m in snap.get("models") or []:
            lab = [str(m.get("name"))]
            fam["avfuse_backend_errors_total"].add_metric(lab, _nan(m.get("backend_errors", 0)))
            fam["avfuse_model_frames_total"].add_metric(lab, _nan(m.get("frames", 0)))
            fam["avfuse_inference_batches_total"].add_metric(lab, _nan(m.get("batches", 0)))
            fam["avfuse_queue_depth"].add_metric(lab, _nan(m.get("queued", 0)))
        for s in snap.get("streams") or []:
            self._stream(fam, s)

    def _stream(self, fam: dict[str, Any], s: Mapping[str, Any]) -> None:
        """Add one stream's figures."""
        name = str(s.get("name"))
        fam["avfuse_frames_total"].add_metric([name], _nan(s.get("frames", 0)))
        fam["avfuse_stream_events_total"].add_metric([name], _nan(s.get("events", 0)))
        fam["avfuse_waiting_items"].add_metric([name], _nan(s.get("waiting", 0)))
        fam["avfuse_video_absent"].add_metric([name], 1.0 if s.get("video_absent") else 0.0)
        for modality in ("audio", "video"):
            clock = s.get(f"{modality}_clock")
            up = bool(s.get(f"{modality}_up"))
            if clock is None and not up:
                continue  # the stream has no such modality
            lab = [name, modality]
            fam["avfuse_modality_up"].add_metric(lab, 1.0 if up else 0.0)
            if clock is None:
                continue
            fam["avfuse_clock_drift_ppm"].add_metric(lab, _nan(clock.get("drift_ppm")))
            res = _nan(clock.get("residual_ms"), 1e-3)
            fam["avfuse_clock_residual_seconds"].add_metric(lab, res)
            fam["avfuse_clock_rejected_total"].add_metric(lab, _nan(clock.get("rejected", 0)))
            fam["avfuse_clock_jumps_total"].add_metric(lab, _nan(clock.get("jumps", 0)))
            fam["avfuse_clock_updates_total"].add_metric(lab, _nan(clock.get("updates", 0)))
        for key, n in sorted((s.get("counters") or {}).items()):
            if key in INGEST_COUNTERS:
                fam[INGEST_COUNTERS[key][0]].add_metric([name], _nan(n))
            else:
                fam["avfuse_ingest_other_total"].add_metric([name, key], _nan(n))
        for reason, n in sorted((s.get("drops") or {}).items()):
            fam["avfuse_stream_drops_total"].add_metric([name, reason], _nan(n))
        sync = s.get("av_sync")
        if sync is not None:
            self._sync(fam, name, sync)

    @staticmethod
    def _sync(fam: dict[str, Any], name: str, sync: Mapping[str, Any]) -> None:
        """Add one stream's A/V sync estimate."""
        offset = _nan(sync.get("residual_offset_ms"), 1e-3)
        fam["avfuse_av_sync_offset_seconds"].add_metric([name], offset)
        ci = sync.get("ci_ms") or (None, None)
        fam["avfuse_av_sync_offset_ci_seconds"].add_metric([name, "low"], _nan(ci[0], 1e-3))
        fam["avfuse_av_sync_offset_ci_seconds"].add_metric([name, "high"], _nan(ci[1], 1e-3))
        fam["avfuse_av_sync_pairs"].add_metric([name], _nan(sync.get("pairs", 0)))
        configured = _nan(sync.get("configured_offset_ms"), 1e-3)
        fam["avfuse_av_sync_configured_offset_seconds"].add_metric([name], configured)
        status = str(sync.get("status"))
        states = {st: st == status for st in (*AV_SYNC_STATES, status)}
        fam["avfuse_av_sync_status"].add_metric([name], states)


__all__ = [
    "AV_SYNC_STATES",
    "DROP_REASONS",
    "INGEST_COUNTERS",
    "SERIES",
    "Series",
    "SnapshotCollector",
]
