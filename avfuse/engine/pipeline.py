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

import errno
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np

from avfuse.backends.base import Backend
from avfuse.engine.clock import now_ns
from avfuse.engine.control import Doorbell, StopToken
from avfuse.engine.fusion import FusionPlan, Gate, LateFusion
from avfuse.engine.history import HistoryRing
from avfuse.engine.lane import Item, Lane
from avfuse.engine.metrics import LatencyHistogram, Metrics
from avfuse.engine.model_slot import ModelOptions, ModelSlot
from avfuse.engine.postprocess import Decision, PostprocessConfig
from avfuse.engine.records import (
    Event,
    FaultRecord,
    Record,
    RunInfo,
    Stats,
    StreamInfo,
    Summary,
)
from avfuse.engine.schedule import Scheduler, Ticket
from avfuse.engine.sinks import Sink
from avfuse.engine.sources.base import Source
from avfuse.engine.stream_build import build_stream, resolve_mode
from avfuse.engine.streams import Stream
from avfuse.errors import BackendError, UsageError
from avfuse.kernels.warm import warm_kernels
from avfuse.kernels.waveform import WaveformKernel

Mode = Literal["auto", "fused", "audio", "video"]

#: largest |A/V offset| and audio deadline the pipeline accepts (ring memory grows with them)
MAX_OFFSET_MS = 10_000.0


@dataclass(frozen=True, kw_only=True)
class PipelineConfig:
    """Everything the pipeline's behaviour depends on; validated once.

    Attributes:
        av_offset_ms: how much later the audio arrives than the video it belongs with
            (positive: audio late); |offset| <= 10 s.
        audio_deadline_ms: longest wait for late audio after a frame (live streams),
            0..10 s.
        realtime: play non-live sources at their own pace (otherwise as fast as possible).
        mode: "auto" (from the model's and the streams' modalities), "fused"
            (video-driven with audio), "video" (video-driven, no audio), "audio"
            (audio-driven, one window every `step_ms`).
        step_ms: window step of audio-driven streams.
        min_audio_coverage: fraction of a window that must be valid for audio to count.
        postprocess: smoothing and hysteresis for every model (None: each model's
            manifest decision block).
        max_batch: largest micro-batch across streams.
        max_wait_ms: longest a ready item waits for a batch to fill (several streams).
        queue_depth: queued items per stream; a full queue drops its oldest (live).
        max_latency_ms: live items still queued this long after capture are dropped
            (None: never).
        kernel_impl: pre-processing implementation ("auto", "numba", "reference", ...).
        streaming_mel: reuse log-mel frames between overlapping windows.
        audio_ring_s: audio held per stream (None: sized for the stream; a value too small
            for the model window and offset is refused, never enlarged).
        video_slots: frames held per stream (None: sized for the stream, see
            `avfuse.engine.stream_build`).
        stats_interval_s: how often sinks get `on_stats`.
        nonlive_audio_wait_s: longest a file's frame waits for its audio (a safety net;
            files normally deliver audio in time).
        sync_monitor: measure the residual A/V offset from content (fused streams) and
            warn when it exceeds `sync_tolerance_ms` (see avfuse.engine.sync).
        sync_tolerance_ms: residual offset that triggers the misalignment warning.
    """

    av_offset_ms: float = 0.0
    audio_deadline_ms: float = 100.0
    realtime: bool = False
    mode: Mode = "auto"
    step_ms: float = 100.0
    min_audio_coverage: float = 0.5
    postprocess: PostprocessConfig | None = None
    max_batch: int = 8
    max_wait_ms: float = 2.0
    queue_depth: int = 2
    max_latency_ms: float | None = 1000.0
    kernel_impl: str = "auto"
    streaming_mel: bool = True
    audio_ring_s: float | None = None
    video_slots: int | None = None
    stats_interval_s: float = 1.0
    nonlive_audio_wait_s: float = 2.0
    sync_monitor: bool = True
    sync_tolerance_ms: float = 80.0

    def __post_init__(self) -> None:
        if self.mode not in ("auto", "fused", "audio", "video"):
            raise UsageError(f"unknown mode {self.mode!r}; use auto, fused, audio or video")
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and not math.isfinite(v):
                raise UsageError(f"invalid pipeline setting: {f.name} must be finite, got {v}")
        checks = (
            (abs(self.av_offset_ms) <= MAX_OFFSET_MS, "av_offset_ms must be within +-10000"),
            (0 <= self.audio_deadline_ms <= MAX_OFFSET_MS, "audio_deadline_ms in 0..10000"),
            (0 < self.step_ms <= 60_000, "step_ms must be in (0, 60000]"),
            (0 < self.min_audio_coverage <= 1, "min_audio_coverage must be in (0, 1]"),
            (1 <= self.max_batch <= 1024, "max_batch must be in 1..1024"),
            (0 <= self.max_wait_ms <= 10_000, "max_wait_ms must be in 0..10000"),
            (1 <= self.queue_depth <= 1024, "queue_depth must be in 1..1024"),
            (self.max_latency_ms is None or self.max_latency_ms > 0, "max_latency_ms > 0"),
            (self.audio_ring_s is None or 0 < self.audio_ring_s <= 3600, "audio_ring_s 0..3600"),
            (self.video_slots is None or 4 <= self.video_slots <= 4096, "video_slots 4..4096"),
            (0 < self.stats_interval_s <= 3600, "stats_interval_s must be in (0, 3600]"),
            (self.nonlive_audio_wait_s > 0, "nonlive_audio_wait_s must be > 0"),
            (self.sync_tolerance_ms > 0, "sync_tolerance_ms must be > 0"),
        )
        for ok, msg in checks:
            if not ok:
                raise UsageError(f"invalid pipeline setting: {msg}")


@dataclass(frozen=True)
class SinkFailure:
    """A sink that stopped working during a run (its later records were lost)."""

    sink: Sink
    error: BaseException

    @property
    def message(self) -> str:
        e = self.error
        what = f"[Errno {e.errno}] {e.strerror}" if isinstance(e, OSError) and e.strerror else e
        return f"{self.sink.name}: {what}"


def _is_epipe(e: BaseException) -> bool:
    return isinstance(e, BrokenPipeError) or (isinstance(e, OSError) and e.errno == errno.EPIPE)


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
        self.sinks = list(sinks)
        self.metrics = Metrics()
        self._bell = Doorbell()
        self.stop_token = stop or StopToken()
        self.stop_token.attach(self._bell)
        self._records: list[Record] = [r for slot in self.slots for r in slot.records]
        groups = [[s] if isinstance(s, Source) else list(s) for s in streams]
        manifests = [slot.manifest for slot in self.slots]
        self.streams: list[Stream] = [
            build_stream(index=i, sources=g, manifests=manifests, config=cfg, bell=self._bell)
            for i, g in enumerate(groups)
        ]
        for st in self.streams:
            self._add_lanes(st)
        self.fusion = fusion or FusionPlan()
        self.fusion.check(names)
        self._late: list[LateFusion] = []
        for st in self.streams:
            self._add_fusions(st)
        for slot in self.slots:
            slot.make_scheduler(lambda t, reason, slot=slot: self._on_drop(slot, t, reason))
        self._frame_sinks = [s for s in self.sinks if s.wants_frames]
        self._dead: set[int] = set()
        #: sinks that failed during the run, in order
        self.sink_failures: list[SinkFailure] = []
        #: True when a sink's stdout reader went away
        self.stdout_closed = False
        self._thread: threading.Thread | None = None
        self._started = False
        self._closed = False
        self._interval = LatencyHistogram()
        self.frames = 0
        self.events = 0
        self.wakeups = 0
        #: the summary record, set at the end of the run
        self.summary: Summary | None = None
        self.error: BaseException | None = None

    # ------------------------------------------------------------------ set-up
    def _add_lanes(self, st: Stream) -> None:
        ing = st.ingest
        has_a, has_v = ing.audio_format is not None, ing.video_format is not None
        errors = []
        for slot in self.slots:
            if slot.manifest.history_inputs:
                continue  # chained models, once their sources have lanes
            try:
                mode = resolve_mode(
                    self.config.mode if len(self.slots) == 1 else "auto",
                    slot.modalities,
                    has_audio=has_a,
                    has_video=has_v,
                    name=st.name,
                    model_name=slot.name,
                )
            except UsageError as e:
                errors.append(e)
                continue
            lane = Lane(stream=st, slot=slot, mode=mode, config=self.config)
            st.lanes.append(lane)
            slot.lanes.append(lane)
        for slot in self.slots:
            if slot.manifest.history_inputs:
                self._add_chain_lane(st, slot)
        if not st.lanes:
            raise errors[0]

    def _add_chain_lane(self, st: Stream, slot: ModelSlot) -> None:
        by_model = {lane.slot.name: lane for lane in st.lanes}
        sources = []
        for spec in slot.manifest.inputs:
            if spec.modality != "history":
                continue
            model, _, output = (spec.source or "").partition(":")
            if model not in {s.name for s in self.slots}:
                raise UsageError(
                    f"model {slot.name!r} input {spec.name!r} reads {spec.source!r}, but no "
                    f"model {model!r} runs (models: {', '.join(s.name for s in self.slots)}); "
                    f"add it with --model {model}=PATH"
                )
            try:
                self._slot(model).manifest.output(output)
            except KeyError:
                raise UsageError(
                    f"model {slot.name!r} input {spec.name!r} reads {spec.source!r}, but model "
                    f"{model!r} has no output {output!r} in its manifest"
                ) from None
            if model not in by_model:
                return  # its source does not run on this stream
            sources.append((spec, by_model[model], output))
        lane = Lane(stream=st, slot=slot, mode="chain", config=self.config)
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

    def _add_fusions(self, st: Stream) -> None:
        by_model = {lane.slot.name: lane for lane in st.lanes}
        for spec in self.fusion.late:
            members = [by_model[m.model] for m in spec.members if m.model in by_model]
            drive = spec.drive or spec.members[0].model
            if len(members) < 2 or drive not in by_model:
                continue  # not enough of its models run on this stream
            fusion = LateFusion(spec, members, config=members[0].slot.decision)
            by_model[drive].fusions.append(fusion)
            self._late.append(fusion)
        for spec in self.fusion.gates:
            gated = by_model.get(spec.model)
            if gated is None:
                continue
            by = by_model.get(spec.by)
            if by is None:
                raise UsageError(
                    f"model {spec.model!r} runs on stream {st.name!r} behind gate "
                    f"{spec.by!r}, which does not run there (it needs the stream's "
                    f"{', '.join(self._slot(spec.by).modalities)})"
                )
            gated.gate = Gate(spec, by)

    def _slot(self, name: str) -> ModelSlot:
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
                self._infer(slot, b, [None] * b)
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
        self._t_begin = now_ns()
        self._warmup()
        info = self.run_info()
        for s in self.sinks:
            s.on_start(info)  # may raise (an unwritable path): nothing has run yet
        for st in self.streams:
            st.start()
        self._t_begin = now_ns()

    # ------------------------------------------------------------------ the loop
    def _loop(self) -> None:
        bell, token = self._bell, self.stop_token
        interval = int(self.config.stats_interval_s * 1e9)
        next_stats = now_ns() + interval
        frames_at_tick = 0
        while not token.requested:
            bell.clear()  # before looking for work: a ring from now on is not lost
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
                    self._process(slot, batch)
                    worked = True
            if not worked:
                if (
                    ended
                    and not pulled
                    and not any(slot.scheduler.pending() for slot in self.slots)  # type: ignore[union-attr]
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
        """The earliest moment the loop has something to do without being rung."""
        wake = next_stats
        for st in self.streams:
            due = st.next_due()
            if due is not None and due < wake:
                wake = due
        for slot in self.slots:
            fill = slot.scheduler.next_fill_ns()  # type: ignore[union-attr]
            if fill is not None and fill < wake:
                wake = fill
        return max(wake, now)

    def _on_drop(self, slot: ModelSlot, t: Ticket, reason: str) -> None:
        self.metrics.drop(reason)
        slot.lanes[t.stream].release(t.item)

    # ------------------------------------------------------------------ one batch
    def _process(self, slot: ModelSlot, batch: list[Ticket]) -> None:
        t0 = now_ns()
        lanes = [slot.lanes[t.stream] for t in batch]
        for i, (t, lane) in enumerate(zip(batch, lanes, strict=True)):
            it: Item = t.item
            if it.ready_ns:
                self.metrics.record("align_wait", it.ready_ns - it.first_seen_ns)
            lane.prepare(it, i)
            if it.reset:  # a gap: recurrent state must not span it (one item per stream)
                slot.backend.reset_state(lane.stream.name)
        t1 = now_ns()
        self.metrics.record("preprocess", t1 - t0)
        out = self._infer(slot, len(batch), [lane.stream.name for lane in lanes])
        t2 = now_ns()
        self.metrics.record("inference", t2 - t1)
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
            self.frames += 1
            lane.frames += 1
            slot.frames += 1
        t3 = now_ns()
        self.metrics.record("postprocess", t3 - t2)
        for t in batch:  # capture -> decision handed to the sinks
            self.metrics.record("end_to_end", t3 - t.item.base_ns)
            self._interval.record_ns(t3 - t.item.base_ns)
        for r in records:
            self._send(r)
        for t, lane in zip(batch, lanes, strict=True):
            if self._frame_sinks and lane.takes_video and slot.index == self._frame_slot(lane):
                frame, overlay = lane.stream.overlay(t.item, lane)
                if frame is not None and overlay is not None:
                    for s in self._frame_sinks:
                        self._call(s, "on_frame", frame, overlay)
            lane.release(t.item)
        self.metrics.record("sink", now_ns() - t3)

    def _frame_slot(self, lane: Lane) -> int:
        """Annotated frames come from the first video-driven model of a stream."""
        first = next((x for x in lane.stream.lanes if x.takes_video), lane)
        return first.slot.index

    def _infer(self, slot: ModelSlot, n: int, stream_ids: list[Any]) -> dict[str, np.ndarray]:
        try:
            return slot.infer(n, stream_ids)
        except BackendError as e:
            self._send(
                FaultRecord(
                    source=f"backend:{slot.backend.name}",
                    kind="error",
                    message=str(e),
                    recoverable=False,
                    model=slot.name,
                )
            )
            raise

    # ------------------------------------------------------------------ records, stats, end
    def _send(self, record: Record, *, skip: Sink | None = None) -> None:
        if isinstance(record, Event):
            self.events += 1
        for s in self.sinks:
            if s is not skip:
                self._call(s, "on_record", record)

    def _call(self, sink: Sink, hook: str, *args: Any) -> None:
        """Call a sink hook; a sink that raises is dropped and reported (see the module)."""
        if id(sink) in self._dead:
            return
        try:
            getattr(sink, hook)(*args)
        except Exception as e:  # noqa: BLE001 - every sink failure becomes a fault record
            self._sink_failed(sink, e)

    def _sink_failed(self, sink: Sink, e: BaseException) -> None:
        self._dead.add(id(sink))
        if sink.to_stdout and _is_epipe(e):
            self.stdout_closed = True
            self.stop_token.request("stdout_closed")
            message, kind = "the reader of stdout went away", "stdout_closed"
        else:
            self.metrics.count("sink_errors")
            failure = SinkFailure(sink=sink, error=e)
            self.sink_failures.append(failure)
            message, kind = f"cannot write: {failure.message}; its records are lost", "error"
            if sink.durable and not any(s.durable and id(s) not in self._dead for s in self.sinks):
                self.stop_token.request("sinks_failed")
        self._send(
            FaultRecord(source=f"sink:{sink.name}", kind=kind, message=message, recoverable=False),
            skip=sink,
        )

    def _emit_records(self) -> None:
        while self._records:
            self._send(self._records.pop(0))
        for st in self.streams:
            for r in st.drain_records():
                self._send(r)

    def _stats(self, fps: float) -> None:
        stats = Stats(
            fps=round(fps, 2),
            frames=self.frames,
            events=self.events,
            latency_p50_ms=round(self._interval.percentile(50), 3),
            latency_p99_ms=round(self._interval.percentile(99), 3),
            drops=sum(self.metrics.drops.values()),
            streams=len(self.streams),
            labels={
                st.name if len(st.lanes) == 1 else f"{st.name}/{lane.slot.name}": (
                    lane.post.current_label
                )
                for st in self.streams
                for lane in st.lanes
            },
        )
        self._interval.reset()
        for s in self.sinks:
            self._call(s, "on_stats", stats)

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
                        self._send(r)
            for fusion in self._late:
                for r in fusion.post.push(None):
                    self._send(r)
            self.summary = self._summary()
            self._send(self.summary)
        finally:
            for s in self.sinks:
                if id(s) in self._dead:
                    continue
                try:
                    s.close()
                except Exception as e:  # noqa: BLE001 - one sink must not stop the others
                    self._dead.add(id(s))
                    if s.to_stdout and _is_epipe(e):
                        self.stdout_closed = True
                    else:
                        self.sink_failures.append(SinkFailure(sink=s, error=e))

    def _summary(self) -> Summary:
        cap = self.metrics.hist["capture_to_ring"]
        cap.reset()
        for st in self.streams:
            cap.merge(st.ingest.capture_to_ring)
        drops = dict(self.metrics.drops)
        for st in self.streams:
            for k, v in st.drops().items():
                if v:
                    drops[k] = drops.get(k, 0) + v
        m = self.metrics.as_dict()
        t0 = getattr(self, "_t_begin", now_ns())
        return Summary(
            frames=self.frames,
            events=self.events,
            drops=drops,
            sink_errors=self.metrics.counters.get("sink_errors", 0),
            latency_ms=m["latency_ms"],
            wall_s=round((now_ns() - t0) / 1e9, 3),
            batches=sum(slot.batches for slot in self.slots),
            wakeups=self.wakeups,
            streams=tuple(st.summary() for st in self.streams),
            models=tuple(
                {"name": slot.name, "frames": slot.frames, "batches": slot.batches}
                for slot in self.slots
            ),
            stopped_by=self.stopped_by,
            model="+".join(slot.name for slot in self.slots),
        )

    def table(self) -> str:
        """The latency table (for printing at exit)."""
        return self.metrics.table()


__all__ = ["ModelOptions", "Pipeline", "PipelineConfig", "SinkFailure"]
