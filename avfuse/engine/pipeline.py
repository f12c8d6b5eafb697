"""The streaming pipeline: sources -> ingest -> aligner -> scheduler -> kernels -> backend ->
postprocess -> sinks, for one or many streams in one process.

Threads: every source captures on its own thread into its stream's `Ingest`
(rings, clock fits; never blocked by the pipeline). One worker (the thread that
calls `run`, or the one `start` spawns) does everything else in a loop:

    1. turn source statuses, gaps and clock jumps into warning/fault records;
    2. pull new frames (video-driven) or audio windows (audio-driven) from the rings
       into the scheduler's bounded queues (latest wins for live streams; files are
       pulled only as fast as they are processed, so nothing of a file is dropped);
    3. take a micro-batch of READY items across streams: an item is ready when its
       audio window is complete, or its audio deadline passed, or no audio will come;
    4. pre-process into preallocated feed buffers, run the backend once per batch,
       post-process per stream, hand records and frames to the sinks;
    5. with nothing to do, sleep on a `Doorbell` until a capture thread publishes
       something the loop waits for, a stop is requested, or the next deadline it
       computed (an audio deadline, a batch filling, the stats tick): it never polls.

A source fault becomes a record and the run goes on with the modality it still
has (its mask column is 0 and events say `degraded`).

Stopping: `stop(reason)` or a `StopToken` (safe from signal handlers and other
threads) ends the loop; the post-processors are flushed (open events are written),
the summary is sent and the sinks are closed. A KeyboardInterrupt in the thread
running `run()` does the same and is then re-raised.

Sinks: a sink whose hook raises is dropped for the rest of the run and the others
get a `fault` record naming it. `sink_failures` lists them; when no durable sink is
left the run stops at once ("sinks_failed"), and a sink writing to stdout whose
reader went away stops it quietly ("stdout_closed").
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from avfuse.backends.base import Backend
from avfuse.engine.clock import now_ns
from avfuse.engine.compose import add_fusions, add_lanes
from avfuse.engine.control import Doorbell, StopToken
from avfuse.engine.fusion import FusionPlan, LateFusion
from avfuse.engine.metrics import LatencyHistogram, Metrics
from avfuse.engine.model_slot import ModelOptions, ModelSlot
from avfuse.engine.pipeline_batch import infer, process_batch
from avfuse.engine.pipeline_config import PipelineConfig
from avfuse.engine.pipeline_figures import LATENCY_BOUNDS_MS, make_stats, snapshot, summary
from avfuse.engine.reconfig import Reconfig, apply_reconfig
from avfuse.engine.records import (
    Record,
    RunInfo,
    Stats,
    StreamInfo,
    Summary,
)
from avfuse.engine.schedule import Scheduler, Ticket
from avfuse.engine.sink_set import SinkFailure, SinkSet
from avfuse.engine.sinks import Sink
from avfuse.engine.sources.base import WAKE_SLACK_NS, Source
from avfuse.engine.stream_build import build_stream
from avfuse.engine.streams import Stream
from avfuse.errors import UsageError
from avfuse.kernels.warm import warm_kernels
from avfuse.kernels.waveform import WaveformKernel


class Pipeline:
    """Runs one or several loaded models on one or many streams and reports to sinks.

    Args:
        streams: one entry per stream: a Source, or a sequence of Sources whose
            modalities combine into one stream (e.g. a camera and a microphone). They
            are opened here (so a bad source fails before any sink is opened).
        backend: a loaded Backend (its manifest says what the model takes); or
        backends: several loaded backends, one per model (names must differ), each run
            on every stream that has a modality it takes.
        sinks: where records, frames and stats go; opened (`on_start`) when the run
            begins.
        config: behaviour.
        stop: a token that ends the run when requested (e.g. by a signal handler).
        options: per-model overrides by model name (thresholds, cadence, embeddings).

    Raises:
        UsageError: a backend is not loaded, two models share a name, or no model can run
            on a stream; StreamFormatError: a stream's audio rate differs from a model's.
    """

    def __init__(
        self,
        *,
        streams: Sequence[Source | Sequence[Source]],
        backend: Backend | None = None,
        backends: Sequence[Backend] = (),
        sinks: Sequence[Sink] = (),
        config: PipelineConfig | None = None,
        stop: StopToken | None = None,
        options: Mapping[str, ModelOptions] | None = None,
        fusion: FusionPlan | None = None,
    ) -> None:
        self.config = cfg = config or PipelineConfig()
        bes = ([backend] if backend is not None else []) + list(backends)
        if not bes:
            raise UsageError("no model given: pass a loaded backend")
        for be in bes:
            if be.manifest is None:
                raise UsageError("the backend is not loaded; call backend.load(manifest) first")
        names = [be.manifest.name for be in bes]  # type: ignore[union-attr]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup is not None:
            raise UsageError(f"two models are named {dup!r}: name them apart (--model NAME=PATH)")
        if not streams:
            raise UsageError("no streams given; pass at least one Source")
        opts = dict(options or {})
        unknown = sorted(set(opts) - set(names))
        if unknown:
            raise UsageError(f"options for unknown model(s) {unknown}; the models are {names}")
        self.slots = [
            ModelSlot(
                index=i, backend=be, config=cfg, options=opts.get(be.manifest.name, ModelOptions())
            )  # type: ignore[union-attr]
            for i, be in enumerate(bes)
        ]
        self.backend = bes[0]
        self.manifest = self.slots[0].manifest
        self.metrics = Metrics()
        self._bell = Doorbell()
        self.stop_token = stop or StopToken()
        self.stop_token.attach(self._bell)
        self.sink_set = SinkSet(sinks, stop=self.stop_token, metrics=self.metrics)
        self._records: list[Record] = [r for slot in self.slots for r in slot.records]
        groups = [[s] if isinstance(s, Source) else list(s) for s in streams]
        manifests = [slot.manifest for slot in self.slots]
        self.streams: list[Stream] = [
            build_stream(index=i, sources=g, manifests=manifests, config=cfg, bell=self._bell)
            for i, g in enumerate(groups)
        ]
        for st in self.streams:
            add_lanes(self, st)
        self.fusion = fusion or FusionPlan()
        self.fusion.check(names)
        self._late: list[LateFusion] = []
        for st in self.streams:
            add_fusions(self, st)
        for slot in self.slots:
            slot.make_scheduler(lambda t, reason, slot=slot: self._on_drop(slot, t, reason))
        self._thread: threading.Thread | None = None
        self._started = False
        self._closed = False
        #: end-to-end latency since the last `Stats` record (read by its p50/p99)
        self.interval_latency = LatencyHistogram()
        #: when the run began (ns, `now_ns`); 0 before it did
        self.t_begin_ns = 0
        self.frames = 0
        self.wakeups = 0
        # each stream's next played-out item, reused by every `_next_wake`
        self._play_dues: list[int | None] = [None] * len(self.streams)
        self._reconfig: Reconfig | None = None
        #: called (on the pipeline's thread) once a started run has finished
        self.on_finished: Callable[[], None] | None = None
        #: the latest live figures (see `_snapshot`), None before the first stats tick
        self.snapshot: dict[str, Any] | None = None
        #: the summary record, set at the end of the run
        self.summary: Summary | None = None
        self.error: BaseException | None = None

    # ------------------------------------------------------------------ set-up
    def slot(self, name: str) -> ModelSlot:
        """The model slot named `name`."""
        return next(s for s in self.slots if s.name == name)

    @property
    def scheduler(self) -> Scheduler:
        """The first model's scheduler (what a one-model run has)."""
        sched = self.slots[0].scheduler
        assert sched is not None  # made in __init__
        return sched

    def _warmup(self) -> None:
        """Compile/load every kernel path and the backends before any source starts.

        A JIT compile after capture starts would stall the live clock for seconds (numba
        with an empty cache), so every specialisation the run calls is made here.
        """
        for slot in self.slots:
            frames = [
                (st.ingest.frame_ring.shape, st.video_format.pixel_format)
                for st in self.streams
                if st.video_format is not None and st.ingest.frame_ring is not None
            ]
            warm_kernels(
                mel=slot.audio_kernel
                if not isinstance(slot.audio_kernel, WaveformKernel)
                else None,
                image=slot.image_kernel,
                frames=frames,
                streaming_mel=self.config.streaming_mel,
            )
            for b in sorted({1, slot.batch}):  # the runtime plans per input shape
                infer(self, slot, b, [None] * b, warmup=True)
            slot.backend.reset_state()

    def run_info(self) -> RunInfo:
        """What the sinks are told at the start of the run."""
        infos = []
        for st in self.streams:
            v, a = st.ingest.video_format, st.ingest.audio_format
            infos.append(
                StreamInfo(
                    name=st.name,
                    fps=v.fps if v else None,
                    width=v.width if v else None,
                    height=v.height if v else None,
                    sample_rate=a.sample_rate if a else None,
                    live=st.ingest.live,
                )
            )
        return RunInfo(
            model="+".join(slot.name for slot in self.slots),
            labels=self.manifest.labels,
            streams=tuple(infos),
        )

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Pipeline:
        """Start the sources and run the worker on a background thread."""
        self._begin()
        self._thread = threading.Thread(target=self._worker, daemon=True, name="avfuse-pipeline")
        self._thread.start()
        return self

    def _worker(self) -> None:
        try:
            self._loop()
        except BaseException as e:  # noqa: BLE001 - reported by wait()/stop()
            self.error = e
        finally:
            self._finish()
            if self.on_finished is not None:
                self.on_finished()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a started pipeline to end; True when it has. Re-raises a worker error."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                return False
        if self.error is not None:
            raise self.error
        return True

    def stop(self, timeout: float = 5.0, *, reason: str = "stop") -> None:
        """Ask the run to end (from any thread) and wait for the worker started by `start`."""
        self.stop_token.request(reason)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def request_reconfig(self, rc: Reconfig) -> None:
        """Hand a prepared change to the pipeline's thread (from any thread); it is applied
        between two batches and `rc.done` is set (see avfuse.engine.reconfig)."""
        self._reconfig = rc
        self._bell.ring()

    @property
    def stopped_by(self) -> str:
        """Why the run ended (see `Summary.stopped_by`)."""
        if self.error is not None and not isinstance(self.error, KeyboardInterrupt):
            return "error"
        return self.stop_token.reason or "end"

    def run(self) -> Summary:
        """Run in this thread until every stream ends or a stop; returns the summary record.

        Raises:
            KeyboardInterrupt: after a clean shutdown, when interrupted (Ctrl-C).
            BackendError: after a clean shutdown, when inference failed.
        """
        try:
            self._begin()
            self._loop()
        except BaseException as e:
            self.error = e
            if isinstance(e, KeyboardInterrupt):
                self.stop_token.request("SIGINT")
            raise
        finally:
            self._finish()
        assert self.summary is not None  # set by _finish; internal invariant
        return self.summary

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._finish()

    def _begin(self) -> None:
        if self._started:
            raise UsageError("a Pipeline runs once; build a new one to run again")
        self._started = True
        self.t_begin_ns = now_ns()
        self._warmup()
        self.sink_set.start(self.run_info())  # may raise (an unwritable path): nothing ran yet
        for st in self.streams:
            st.start()
        self.t_begin_ns = now_ns()

    # ------------------------------------------------------------------ the loop
    def _loop(self) -> None:
        bell, token = self._bell, self.stop_token
        interval = int(self.config.stats_interval_s * 1e9)
        next_stats = now_ns() + interval
        frames_at_tick = 0
        while not token.requested:
            now = now_ns()
            for st in self.streams:
                st.play_out(now)  # before the clear: these deliveries ring the bell too
            bell.clear()  # before looking for work: a ring from now on is not lost
            rc = self._reconfig
            if rc is not None:
                self._reconfig = None
                apply_reconfig(self, rc)
            now = now_ns()
            self._emit_records()
            # sampled BEFORE pulling: a source that had finished has written everything
            ended = all(st.finished() for st in self.streams)
            pulled = 0
            for st in self.streams:
                pulled += st.pull(now)
            worked = False
            for slot in self.slots:
                batch = slot.scheduler.next_batch(now)  # type: ignore[union-attr]
                if batch:
                    process_batch(self, slot, batch)
                    worked = True
            queued = any(slot.scheduler.pending() for slot in self.slots)  # type: ignore[union-attr]
            if worked and not ended and not queued:
                # nothing left to run: send the records now and sleep, instead of a
                # second pass that finds nothing (a ring during the work left a token,
                # so the wait returns at once for anything that came meanwhile)
                self._emit_records()
                now = now_ns()
                bell.wait((self._next_wake(now, next_stats) - now) / 1e9)
                self.wakeups += 1
            elif not worked:
                if (
                    ended
                    and not pulled
                    and not queued
                    and not any(st.waiting for st in self.streams)
                ):
                    break
                bell.wait((self._next_wake(now, next_stats) - now) / 1e9)
                self.wakeups += 1
            now = now_ns()
            if now >= next_stats:
                dt = self.config.stats_interval_s
                self._stats((self.frames - frames_at_tick) / dt)
                frames_at_tick = self.frames
                next_stats = now + interval
        self._emit_records()

    def _next_wake(self, now: int, next_stats: int) -> int:
        """The earliest moment the loop has something to do without being rung.

        Played-out items (files and scenes in real time) due within `WAKE_SLACK_NS` of
        the first share its wake-up, as within one stream: several streams started
        together are a few ms apart, and each would otherwise wake the loop on its own
        (8 scenes: about 50 wake-ups a second instead of 12). They arrive up to that
        much late, never early. A late-audio deadline is kept exactly.
        """
        wake = next_stats
        dues = self._play_dues
        if len(dues) != len(self.streams):
            dues = self._play_dues = [None] * len(self.streams)
        first: int | None = None
        for i, st in enumerate(self.streams):
            due = st.next_deadline()
            if due is not None and due < wake:
                wake = due
            dues[i] = due = st.next_playout()
            if due is not None and (first is None or due < first):
                first = due
        if first is not None:
            target, limit = first, first + WAKE_SLACK_NS
            for due in dues:
                if due is not None and target < due <= limit:
                    target = due
            if target < wake:
                wake = target
        for slot in self.slots:
            fill = slot.scheduler.next_fill_ns()  # type: ignore[union-attr]
            if fill is not None and fill < wake:
                wake = fill
        return max(wake, now)

    def _on_drop(self, slot: ModelSlot, t: Ticket, reason: str) -> None:
        self.metrics.drop(reason)
        slot.lanes[t.stream].release(t.item)

    # ------------------------------------------------------------------ records, stats, end
    def _emit_records(self) -> None:
        while self._records:
            self.sink_set.send(self._records.pop(0))
        for st in self.streams:
            for r in st.drain_records():
                self.sink_set.send(r)

    def _stats(self, fps: float) -> None:
        stats = self._make_stats(fps)
        self.interval_latency.reset()
        self.snapshot = self._snapshot(stats)
        for s in self.sink_set.sinks:
            self.sink_set.call(s, "on_stats", stats)

    def _make_stats(self, fps: float) -> Stats:
        return make_stats(self, fps)

    def _snapshot(self, stats: Stats) -> dict[str, Any]:
        return snapshot(self, stats)

    @property
    def closed(self) -> bool:
        """True once the run has finished (sources stopped, summary sent, sinks closed)."""
        return self._closed

    def _finish(self) -> None:
        """Stop sources, flush post-processing, send the summary, close the sinks. Once."""
        if self._closed:
            return
        self._closed = True
        for st in self.streams:
            abandoned = st.stop()
            if abandoned:
                self.metrics.drop("shutdown", abandoned)
        for slot in self.slots:
            if slot.scheduler is not None:
                for t in slot.scheduler.drain():
                    self._on_drop(slot, t, "shutdown")
        try:
            self._emit_records()
            for st in self.streams:
                for lane in st.lanes:
                    for r in lane.post.push(None):
                        self.sink_set.send(r)
                    for r in lane.agreement.push(None) if lane.agreement is not None else ():
                        self.sink_set.send(r)
            for fusion in self._late:
                for r in fusion.finish():
                    self.sink_set.send(r)
            self.summary = self._summary()
            self.sink_set.send(self.summary)
            # the last figures, marked not running, for an exporter still being scraped
            wall = max(self.summary.wall_s, 1e-9)
            self.snapshot = self._snapshot(self._make_stats(self.frames / wall))
        finally:
            self.sink_set.close()

    def _summary(self) -> Summary:
        return summary(self)

    @property
    def sinks(self) -> list[Sink]:
        """The run's sinks."""
        return self.sink_set.sinks

    @property
    def sink_failures(self) -> list[SinkFailure]:
        """Sinks that failed during the run, in order."""
        return self.sink_set.failures

    @property
    def stdout_closed(self) -> bool:
        """True when a sink's stdout reader went away."""
        return self.sink_set.stdout_closed

    @property
    def events(self) -> int:
        """Event records sent so far."""
        return self.sink_set.events

    def table(self) -> str:
        """The latency table (for printing at exit)."""
        return self.metrics.table()


__all__ = ["LATENCY_BOUNDS_MS", "ModelOptions", "Pipeline", "PipelineConfig", "SinkFailure"]
