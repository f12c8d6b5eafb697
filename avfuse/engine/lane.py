"""A lane: one model running on one stream.

The stream takes frames from its ring once and offers each to its video-driven lanes;
audio-driven lanes step through the stream's audio ring on their own. A lane decides
which items its model runs on (its cadence: every N-th frame, every audio hop or every
X ms), waits for each item's audio window (its own window length and offset), fills a
row of its model's feeds (`LaneInputs`, engine/lane_inputs.py), and turns the model's
outputs into onsets, events and values for this stream. Several lanes on one stream
share the rings: a frame or an audio sample is released only when every lane is done
with it.

A fused lane whose stream's video stops while the audio goes on makes audio-driven
items at the frame rate (`Stream` decides that the video is gone and says so once).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np

from avfuse.engine.agreement import agreement_for
from avfuse.engine.align import Aligner, AudioStepper
from avfuse.engine.content_hook import ContentSyncMonitor
from avfuse.engine.lane_inputs import LaneInputs
from avfuse.engine.lane_item import Item
from avfuse.engine.lane_sync import SyncFeed
from avfuse.engine.late_audio import LateAudioWatch
from avfuse.engine.postprocess import MultiLabelPostProcessor, PostProcessor
from avfuse.engine.records import Record
from avfuse.engine.sync import SyncMonitor
from avfuse.kernels.reference import AudioParams

if TYPE_CHECKING:
    from avfuse.engine.model_slot import ModelSlot
    from avfuse.engine.pipeline import PipelineConfig
    from avfuse.engine.streams import Stream

_NEVER = 1 << 62  # an audio index no stream reaches


class Lane:
    """One model on one stream (see the module docstring)."""

    def __init__(
        self, *, stream: Stream, slot: ModelSlot, mode: str, config: PipelineConfig
    ) -> None:
        self.stream = stream
        self.slot = slot
        self.index = len(slot.lanes)
        self.mode = mode
        ing = stream.ingest
        m = slot.manifest
        self.paced = stream.paced
        self.audio_input = slot.audio_spec.name if slot.audio_spec is not None else None
        self.video_input = slot.video_spec.name if slot.video_spec is not None else None
        self._max_latency_ns = (
            int(config.max_latency_ms * 1e6) if config.max_latency_ms is not None else None
        )
        self._deadline_ns = int(config.audio_deadline_ms * 1e6)
        self._nonlive_wait_ns = int(config.nonlive_audio_wait_s * 1e9)
        self._av_offset_ns = int(config.av_offset_ms * 1e6)
        d = slot.decision
        kind = slot.reader.kind
        labels = slot.reader.labels or m.labels
        self.labels: tuple[str, ...] = tuple(labels)
        #: the latest decision's probabilities per label (for fusions and gates)
        self.latest = np.zeros(max(1, len(labels)), np.float64)
        self.latest_ns: int | None = None
        self.latest_modalities: tuple[str, ...] = ()
        self.latest_degraded = False
        #: a gate this lane runs behind, and the late fusions it is a member of
        self.gate: Any = None
        self.fusions: list[Any] = []
        #: its recent decisions by time, kept when a gate or a fusion reads this lane
        self.log: Any = None
        self._gate_hold: deque[Item] = deque()  # items waiting for the gate's decision
        self._gate_wait_ns = int(config.audio_deadline_ms * 1e6) + 100_000_000
        if kind == "sigmoid":
            self.post: Any = MultiLabelPostProcessor(
                labels=labels, config=d, stream=stream.name, model=slot.name
            )
        else:
            self.post = PostProcessor(
                labels=labels, config=d, stream=stream.name, model=slot.name, kind=kind
            )
        #: conflicts between the model's per-modality heads (None: it has none)
        self.agreement = (
            agreement_for(m, background=d.none_label, stream=stream.name, model=slot.name)
            if mode == "fused"
            else None
        )
        self.aligner: Aligner | None = None
        self.stepper: AudioStepper | None = None
        #: pre-processing: the item's feeds, its buffers and their losses
        self.inputs = LaneInputs(self, config)
        self._rate = self.inputs.rate
        a = m.audio
        if self.inputs.audio_buf is not None:
            assert a is not None and ing.audio_ring is not None and ing.audio_clock is not None
            if mode == "fused":
                self.aligner = Aligner(
                    params=a,
                    ring=ing.audio_ring,
                    clock=ing.audio_clock,
                    av_offset_ms=config.av_offset_ms,
                    deadline_ms=config.audio_deadline_ms,
                    min_coverage=config.min_audio_coverage,
                )
            elif mode == "audio":
                every = slot.options.every_ms or m.cadence.every_ms
                step = every / 1e3 if every else (None if not isinstance(a, AudioParams)
                                                  else config.step_ms / 1e3)  # fmt: skip
                self.stepper = AudioStepper(params=a, ring=ing.audio_ring, step_s=step)
        #: live windows decided before all their audio had come (None: not a live fused lane)
        self.late_audio = (
            LateAudioWatch(
                stream=stream.name, model=slot.name, deadline_ms=config.audio_deadline_ms
            )
            if self.aligner is not None and self.paced
            else None
        )
        #: what this lane feeds the stream's A/V sync monitor (None: another lane or none)
        self.sync_feed: SyncFeed | None = None
        self.sync_feed = SyncFeed.for_lane(self, config)
        #: chained input name -> (ring, frames, init) (filled by the pipeline)
        self.histories: dict[str, tuple[Any, int, float]] = {}
        #: produced output name -> (ring, consumer lanes) (filled by the pipeline)
        self.history_out: dict[str, tuple[Any, list[Lane]]] = {}
        self.reads_audio = self.audio_buf is not None and mode not in ("video", "chain")
        self.takes_video = mode in ("fused", "video")
        self._every = max(1, slot.options.every_frames or m.cadence.every_frames or 1)
        self._offered = 0
        fr = ing.frame_ring
        self._max_waiting = max(2, fr.slots - 2) if fr is not None else 2
        self._waiting: deque[Item] = deque()
        self._held: set[int] = set()
        self._next_seq = 0  # every frame below this was offered
        self.audio_floor = 0
        self.frames = 0
        self.late_frames = 0
        self.gated = 0
        self._records: list[Record] = []
        self._last_item_ns: int | None = None
        self._audio_only_until: int | None = None
        self._reset_next = False

    # ------------------------------------------------------------------ frames
    def set_cadence(self, opts: Any) -> None:
        """Take a new cadence (a reload): every N-th frame, or a new audio step."""
        m = self.slot.manifest
        self._every = max(1, opts.every_frames or m.cadence.every_frames or 1)
        every = opts.every_ms or m.cadence.every_ms
        if self.stepper is not None and every:
            hop = self.stepper.hop
            self.stepper.step = max(hop, int(round(every / 1e3 * self._rate / hop)) * hop)

    def has_room(self) -> bool:
        """Whether a file's frame may be taken for this lane now (back-pressure)."""
        return self.paced or len(self._waiting) + len(self._gate_hold) < self._max_waiting

    def offer_frame(self, seq: int, t: int, base: int, now: int, *, reset: bool) -> None:
        """A new frame of the stream: queue it if the cadence says this lane runs on it."""
        self._next_seq = seq + 1
        if reset:
            self._reset_next = True
        if self._audio_only_until is not None:
            if t <= self._audio_only_until:
                self.late_frames += 1  # decisions for this time were made without video
                return
            self._audio_only_until = None
            self._reset_next = True
        k = self._offered
        self._offered += 1
        feed = self.sync_feed
        if feed is not None and feed.at_pull:
            feed.pulled_frame(self, seq, t)
        if k % self._every:
            return
        self._held.add(seq)
        self._waiting.append(
            Item(
                lane=self.index,
                seq=seq,
                time_ns=t,
                base_ns=base,
                first_seen_ns=now,
                reset=self._take_reset(),
            )
        )
        self._last_item_ns = t

    @property
    def sync(self) -> SyncMonitor | ContentSyncMonitor | None:
        """The stream's A/V sync monitor, when this lane feeds it."""
        return self.sync_feed.monitor if self.sync_feed is not None else None

    def on_history(self, src: Item, end: int, now: int) -> None:
        """A chained lane: its source model made output `end` (an item at its cadence)."""
        k = self._offered
        self._offered += 1
        if k % self._every:
            return
        it = Item(
            lane=self.index,
            seq=-1,
            time_ns=src.time_ns,
            base_ns=src.base_ns,
            first_seen_ns=now,
            ready_ns=now,
            modalities=src.modalities,
            degraded=src.degraded,
            reset=src.reset,
            hist=end,
        )
        self._last_item_ns = src.time_ns
        self._push(it, now)

    def oldest_frame_held(self) -> int:
        """Frames below this sequence number are no longer needed by this lane."""
        return min(self._held) if self._held else self._next_seq

    def _take_reset(self) -> bool:
        reset, self._reset_next = self._reset_next, False
        return reset

    # ------------------------------------------------------------------ items
    def pull(self, now: int, *, took_frames: int) -> int:
        """Queue this lane's ready items in its model's scheduler; returns items made."""
        sched = self.slot.scheduler
        assert sched is not None  # made before the run
        n = 0
        if self._gate_hold:
            self.release_gated(now, force=self.gate_input_done())
        if self.mode == "chain":
            return 0  # items come from the source model's outputs (on_history)
        if self.mode == "audio":
            n = self._pull_audio(now)
        else:
            if self.mode == "fused" and not took_frames and not self._waiting:
                n = self._audio_only(now)
            waiting = self._waiting
            while waiting and (self.paced or sched.space(self.index) > 0):
                it = waiting[0]
                if not self.ready(it, now):
                    break
                waiting.popleft()
                self._push(it, now)
        return n

    def keep_log(self) -> None:
        """Keep this lane's recent decisions by time (a gate or a fusion reads them)."""
        if self.log is None:
            from avfuse.engine.output_log import OutputLog

            self.log = OutputLog(len(self.latest))

    def _push(self, it: Item, now: int) -> None:
        if self.gate is not None or self._gate_hold:
            self._gate_hold.append(it)  # decided once the gating model has seen its moment
            self.release_gated(now)
            return
        self._queue(it, now)

    def release_gated(self, now: int, *, force: bool = False) -> None:
        """Queue or skip the held items the gate can decide on now (in order).

        `force` (the gating model is done): decide the rest on its last decision.
        """
        hold, gate = self._gate_hold, self.gate
        sched = self.slot.scheduler
        while hold and (self.paced or sched.space(self.index) > 0):  # type: ignore[union-attr]
            it = hold[0]
            open_ = True if gate is None else gate.decide(it.time_ns)
            if open_ is None:
                late = self.paced and now - it.first_seen_ns > self._gate_wait_ns
                if not (force or late):
                    break
                open_ = gate.open()
            hold.popleft()
            if open_:
                self._queue(it, now)
            else:
                self.gated += 1  # the gating model says there is nothing for this one
                self.release(it)

    def gate_input_done(self) -> bool:
        """The gating lane will decide nothing more (its stream ended and it is idle)."""
        by = self.gate.by if self.gate is not None else None
        if by is None:
            return True
        sched = by.slot.scheduler
        return (
            self.stream.finished()
            and not by.waiting
            and (sched is None or not sched.pending(by.index))
        )

    def _queue(self, it: Item, now: int) -> None:
        ml = self._max_latency_ns
        deadline = it.base_ns + ml if self.paced and ml else None
        self.slot.scheduler.push(self.index, it, now_ns=now, deadline_ns=deadline)  # type: ignore[union-attr]

    def _pull_audio(self, now: int) -> int:
        """Audio-driven lane: one window every step."""
        ing = self.stream.ingest
        stepper, clock = self.stepper, ing.audio_clock
        sched = self.slot.scheduler
        if stepper is None or clock is None or sched is None:
            return 0
        n = 0
        while self.paced or sched.space(self.index) > 0:
            w = stepper.poll()
            if w is None:
                break
            t = clock.index_to_host(w.end_index)
            w.target_ns = t
            fr = ing.frame_ring
            it = Item(
                lane=self.index,
                seq=fr.latest() if fr is not None and self.video_input else -1,
                time_ns=t,
                base_ns=t if ing.live else now,
                first_seen_ns=now,
                window=w,
                ready_ns=now,
                reset=self._take_reset(),
            )
            self._push(it, now)
            n += 1
        return n

    def _audio_only(self, now: int) -> int:
        """Audio-driven items at the frame rate while the stream's video is gone."""
        st, al = self.stream, self.aligner
        sched = self.slot.scheduler
        if al is None or sched is None or not st.video_absent:
            return 0
        fit = al.clock.fit
        ring = st.ingest.audio_ring
        if fit is None or ring is None:
            return 0
        period = st.period_ns
        t = self._last_item_ns
        if t is None:
            t = al.clock.index_to_host(al.window_samples, fit) - self._av_offset_ns
        elif self.paced:  # live: do not replay what is already late, join the present
            head_t = al.clock.index_to_host(ring.head, fit) - self._av_offset_ns
            behind = (head_t - t) // period - 1
            if behind > 0:
                t += behind * period
        if self._audio_only_until is None:
            self._reset_next = True
        n = 0
        while self.paced or sched.space(self.index) > 0:
            t_next = t + period
            w = al.window_for(t_next)
            if w is None or not al.complete(w):
                break
            it = Item(
                lane=self.index,
                seq=-1,
                time_ns=t_next,
                base_ns=t_next if st.ingest.live else now,
                first_seen_ns=now,
                window=w,
                ready_ns=now,
                reset=self._take_reset(),
            )
            self._push(it, now)
            t = t_next
            self._last_item_ns = self._audio_only_until = t
            n += 1
        return n

    def wake_seq(self) -> int:
        """The first frame sequence number this lane will queue (a lower bound: frames
        lost to overwrite only move it later), given its cadence."""
        if self._audio_only_until is not None or self._gate_hold:
            return self._next_seq  # these look at every frame
        return self._next_seq + (-self._offered) % self._every

    def cadence_frames(self) -> int:
        """Every how many frames this lane queues one (1 while it looks at every frame)."""
        if self._audio_only_until is not None or self._gate_hold:
            return 1
        return self._every

    def wake_index(self) -> int:
        """The audio index worth waking the pipeline for, for this lane."""
        ing, al = self.stream.ingest, self.aligner
        if self.mode == "audio" and self.stepper is not None:
            return self.stepper.next_end
        if al is None or ing.audio_ring is None:
            return _NEVER
        if self._waiting:
            w = self._waiting[0].window
            return w.end_index if w is not None else 0
        fit = al.clock.fit
        if fit is None:
            return 0
        if self.stream.video_absent:
            w = al.window_for((self._last_item_ns or 0) + self.stream.period_ns)
            return w.end_index if w is not None else 0
        last = self._last_item_ns
        if last is None or not self.paced:
            return _NEVER  # files: frames and blocked writes ring anyway
        due = last + self.stream.video_timeout_ns + self._av_offset_ns + 1
        return int(al.clock.host_to_index(due, fit)) + 1

    @property
    def burst_allowance(self) -> int:
        """Queue places beyond the configured depth: the items that may wait on audio.

        A live item waits for its audio up to the audio deadline; items keep coming at the
        lane's cadence meanwhile. A network stream's audio comes in bursts (an MPEG-TS
        muxer packs a few hundred ms of audio into one packet), and one burst completes
        every window waiting on it at once. Those items are on time by the deadline's
        contract, so the queue holds them instead of dropping all but the newest as if
        the pipeline had fallen behind; a backlog stays bounded by the deadline's worth.
        """
        if not self.paced or self.aligner is None:
            return 0
        period = self.stream.period_ns * self._every
        return -(-self._deadline_ns // period) if period > 0 else 0

    @property
    def waiting(self) -> int:
        """Items taken and still waiting for their audio or their gate."""
        return len(self._waiting) + len(self._gate_hold)

    def next_due(self) -> int | None:
        """Host ns at which the oldest waiting item becomes ready by deadline, or None."""
        if not self._waiting:
            if self._gate_hold and self.paced:
                return self._gate_hold[0].first_seen_ns + self._gate_wait_ns
            return None
        it = self._waiting[0]
        if self.paced:
            due = it.window.target_ns if it.window else it.time_ns + self._av_offset_ns
            return due + self._deadline_ns
        return it.first_seen_ns + self._nonlive_wait_ns

    def ready(self, it: Item, now: int) -> bool:
        """Whether an item can be processed now (its audio is complete or will not come)."""
        if it.ready_ns:
            return True
        al, st = self.aligner, self.stream
        ing = st.ingest
        if al is not None and it.window is None:
            it.window = al.window_for(it.time_ns)
        ok = al is None or not ing.audio_up
        if not ok:
            if it.window is not None and al.complete(it.window):
                ok = True
            elif self.paced:
                due = it.window.target_ns if it.window else it.time_ns + self._av_offset_ns
                ok = now >= due + self._deadline_ns
            else:
                ok = st.finished() or now - it.first_seen_ns > self._nonlive_wait_ns
                if not ok and ing.blocked_on is not None:
                    ok = True  # the reader waits for us: this audio is not (yet) in the file
                    if ing.blocked_on == "video":
                        st.audio_gone(it.time_ns)
        if ok:
            it.ready_ns = now
        return ok

    # ------------------------------------------------------------------ pre-processing
    @property
    def audio_buf(self) -> np.ndarray | None:
        """The audio window of the item last prepared (None: the lane reads no audio)."""
        return self.inputs.audio_buf

    def prepare(self, it: Item, row: int) -> None:
        """Pre-process an item into batch row `row` of the model's feeds and its mask row."""
        self.inputs.write(self, it, row)

    def add_record(self, record: Record) -> None:
        """A record made while preparing an item (a sync or late-audio warning)."""
        self._records.append(record)

    # ------------------------------------------------------------------ done
    def release(self, it: Item) -> None:
        """The item is done (processed or dropped): its frame and audio may be overwritten."""
        if it.seq >= 0 and self.mode != "audio":
            self._held.discard(it.seq)
        if not self.paced and it.window is not None:
            step = self.stepper.step if self.stepper is not None else 0
            floor = it.window.start_index + step
            if floor > self.audio_floor:
                self.audio_floor = floor
        self.stream.released()

    def note_output(self, scores: np.ndarray, it: Item) -> None:
        """Remember this decision's probabilities (for the fusions and gates that read it)."""
        from avfuse.engine.fusion import probabilities

        probabilities(self.slot.reader.kind, scores, self.latest)
        self.latest_ns = it.time_ns
        self.latest_modalities = it.modalities
        self.latest_degraded = it.degraded
        if self.log is not None:
            self.log.push(it.time_ns, self.latest, it.modalities, it.degraded)

    def drain_records(self) -> list[Record]:
        """Records this lane made since the last call (sync warnings)."""
        out, self._records = self._records, []
        return out

    def summary(self) -> dict[str, Any]:
        """This lane's part of its stream's summary."""
        d: dict[str, Any] = {"model": self.slot.name, "mode": self.mode, "frames": self.frames}
        smel = self.inputs.smel
        if smel is not None:
            d["mel_frames_computed"] = smel.computed_frames
            d["mel_frames_reused"] = smel.reused_frames
        if self.sync is not None:
            d["av_sync"] = self.sync.summary()
        if self.late_audio is not None:
            d.update(self.late_audio.summary())
        return d

    def drops(self) -> dict[str, int]:
        """Losses counted by the lane, by reason."""
        d = {"frame_overwritten": self.inputs.torn, "video_late": self.late_frames}
        if self.stepper is not None:
            d["audio_windows_skipped"] = self.stepper.skipped
        if self.gated:
            d["gated"] = self.gated
        return d


__all__ = ["Item", "Lane"]
