"""One stream of the pipeline: its sources, ingest, aligner and per-stream state.

A stream is one scene seen by a camera and heard by a microphone: one Source that
delivers both, or several Sources combined (the first with audio gives the audio,
the first with video the video). `Stream` holds everything the pipeline keeps per
stream: the `Ingest` (rings and clock fits), the `Aligner` or `AudioStepper`, the
streaming log-mel cache, the `PostProcessor`, and preallocated scratch buffers.
The pipeline's worker calls it; nothing here runs on a capture thread except the
ingest behind its `IngestPort`s.

Work items. A fused stream is video-driven: one item per frame, with the audio
window that belongs to it. When the video stops while the audio goes on (a file
whose video track is shorter, a camera that stalls or is unplugged), the stream
goes on with audio-driven items at the frame rate, marked degraded, and says so
once with a `track_ended` warning; when frames come back it returns to them
(`track_resumed`). The mirror case, audio gone while video goes on, runs the
frames with the audio masked missing. For files the decision that a track is gone
is exact: the reader is blocked writing the other track's ring while this one has
nothing queued. For live streams it is a timeout in stream time.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from avfuse.engine.align import Aligner, AudioStepper, Window
from avfuse.engine.ingest import Ingest, IngestPort, status_record
from avfuse.engine.postprocess import PostProcessor
from avfuse.engine.records import Record, WarningRecord
from avfuse.engine.sinks import FrameOverlay
from avfuse.engine.sources.base import Source
from avfuse.engine.sync import SyncConfig, SyncMonitor
from avfuse.manifest import Manifest

if TYPE_CHECKING:
    from avfuse.engine.pipeline import PipelineConfig
    from avfuse.engine.schedule import Scheduler
    from avfuse.kernels import ImageKernel, LogMelKernel

_NEVER = 1 << 62  # an audio index no stream reaches


@dataclass(slots=True)
class Item:
    """One unit of work: a video frame, or an audio window (audio-driven or video gone).

    Attributes:
        stream: stream index.
        seq: video frame sequence number in the frame ring, -1 when none.
        time_ns: host time the decision is about (frame time or window end).
        base_ns: latency origin (capture time for live streams, arrival for files).
        first_seen_ns: when the pipeline took it from the ring.
        window: its audio window, once the audio clock can place it.
        ready_ns: when it became ready (0: not yet).
        modalities: modalities present after pre-processing.
        degraded: a modality the model takes was missing.
        level_dbfs: audio level of the window's last 100 ms.
        reset: the stream's recurrent state must start afresh at this item (it follows a
            gap, a reconnect or a change between video- and audio-driven items).
    """

    stream: int
    seq: int
    time_ns: int
    base_ns: int
    first_seen_ns: int
    window: Window | None = None
    ready_ns: int = 0
    modalities: tuple[str, ...] = ()
    degraded: bool = False
    level_dbfs: float = -120.0
    reset: bool = False


class Stream:
    """Per-stream state and steps; built by `build_stream`."""

    def __init__(
        self,
        *,
        index: int,
        sources: list[Source],
        ports: list[IngestPort],
        ingest: Ingest,
        mode: str,
        manifest: Manifest,
        config: PipelineConfig,
        mel_kernel: LogMelKernel | None,
    ) -> None:
        self.index = index
        self.name = "+".join(s.name for s in sources)
        self.sources = sources
        self._ports = ports
        self.ingest = ingest
        self.mode = mode
        self.paced = ingest.live or config.realtime
        self.video_format = ingest.video_format
        m = manifest
        self.model = m.name
        self._model_mods = m.modalities
        self.audio_input = next((s.name for s in m.inputs if s.modality == "audio"), None)
        self.video_input = next((s.name for s in m.inputs if s.modality == "video"), "")
        self.mask_input = next((s.name for s in m.inputs if s.modality == "mask"), None)
        self._mask_order = m.mask_order
        self._min_cov = config.min_audio_coverage
        self._max_latency_ns = (
            int(config.max_latency_ms * 1e6) if config.max_latency_ms is not None else None
        )
        self._deadline_ns = int(config.audio_deadline_ms * 1e6)
        self._nonlive_wait_ns = int(config.nonlive_audio_wait_s * 1e9)
        self._av_offset_ns = int(config.av_offset_ms * 1e6)
        self.post = PostProcessor(
            labels=m.labels, config=config.postprocess, stream=self.name, model=self.model
        )
        self.aligner: Aligner | None = None
        self.stepper: AudioStepper | None = None
        self._mel = mel_kernel
        self._smel: Any = None
        self._epoch = 0
        self._reset_next = False  # the next item made starts the recurrent state afresh
        self.audio_buf: np.ndarray | None = None
        self._rate: int | None = None
        if m.audio is not None and ingest.audio_ring is not None and ingest.audio_clock is not None:
            self.audio_buf = np.zeros(m.audio.window_samples, np.float32)
            self._hop = m.audio.hop_length
            self._rate = m.audio.sample_rate
            if mode == "fused":
                self.aligner = Aligner(
                    params=m.audio,
                    ring=ingest.audio_ring,
                    clock=ingest.audio_clock,
                    av_offset_ms=config.av_offset_ms,
                    deadline_ms=config.audio_deadline_ms,
                    min_coverage=config.min_audio_coverage,
                )
            elif mode == "audio":
                self.stepper = AudioStepper(
                    params=m.audio, ring=ingest.audio_ring, step_s=config.step_ms / 1e3
                )
            if mel_kernel is not None and config.streaming_mel:
                from avfuse.kernels.streaming import StreamingLogMel

                self._smel = StreamingLogMel(mel_kernel)
        self.sync: SyncMonitor | None = None
        if (
            config.sync_monitor
            and mode == "fused"
            and m.audio is not None
            and m.video is not None
            and self.audio_buf is not None
        ):
            self.sync = SyncMonitor(
                configured_offset_ms=config.av_offset_ms,
                hop_s=m.audio.hop_length / m.audio.sample_rate,
                image_shape=(m.video.channels, m.video.height, m.video.width),
                config=SyncConfig(tolerance_ms=config.sync_tolerance_ms),
                source=self.name,
                video_scale=float(np.mean(m.video.std)),
            )
            self._energy = np.zeros(m.audio.frames, np.float32)
            self._audio_params = m.audio
        if mode == "video" or self.audio_buf is None:
            ingest.audio_floor = None  # nobody reads the audio: never wait for it
            ingest.wake_audio_index = _NEVER
        fr = ingest.frame_ring
        self.frame_buf = np.zeros(fr.shape, np.uint8) if fr is not None else None
        fps = self.video_format.fps if self.video_format is not None else 30.0
        self._period_ns = int(round(1e9 / fps)) if fps > 0 else 33_333_333
        self._video_timeout_ns = max(500_000_000, 10 * self._period_ns)
        self.frames = 0
        self.torn = 0
        self.late_frames = 0
        self._waiting: deque[Item] = deque()
        self._max_waiting = max(2, fr.slots - 2) if fr is not None else 2
        self._records: list[Record] = []
        self._seen_gaps = 0
        self._seen_jumps = 0
        self._last_item_ns: int | None = None  # time of the newest item made
        self._last_frame_ns: int | None = None  # time of the newest frame item
        self._video_epoch = 0
        self._video_absent = False
        self._audio_only_until: int | None = None  # newest audio-only item while video gone
        self._audio_absent_head: int | None = None  # audio head when audio was found gone

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start every source delivering into this stream's ingest."""
        for s, p in zip(self.sources, self._ports, strict=True):
            s.start(p)

    def stop(self) -> int:
        """Stop the sources (bounded), unblock back-pressured writes; returns items abandoned."""
        self.ingest.close()
        for s in self.sources:
            s.stop()
        n = len(self._waiting)
        self._waiting.clear()
        return n

    def finished(self) -> bool:
        """True when every source has ended (by itself, by error or by stop)."""
        return all(s.finished.is_set() for s in self.sources)

    # ------------------------------------------------------------------ work items
    def pull(self, sched: Scheduler, now: int) -> int:
        """Take new frames / windows from the rings; queue those that are ready.

        Video-driven: new frames first wait here, in order, for their audio (bounded in
        time by the audio deadline); only READY items enter the scheduler, so its
        latest-wins policy drops work that is ready but late, never work whose audio is
        still due. A file is taken only as fast as it is processed (back-pressure).

        Returns:
            Items made.
        """
        if self.mode not in ("fused", "video"):
            return self._pull_audio(sched, now)
        ring = self.ingest.frame_ring
        if ring is None:
            return self._audio_only(sched, now) if self.mode == "fused" else 0
        n = 0
        waiting = self._waiting
        while self.paced or len(waiting) < self._max_waiting:
            seq = ring.take()
            if seq < 0:
                break
            t = ring.host_ns(seq)
            if self._audio_only_until is not None and t <= self._audio_only_until:
                self.late_frames += 1  # decisions for this time were made without video
                ring.release(seq)
                self.ingest.released()
                continue
            self._new_frame(t)
            waiting.append(
                Item(
                    stream=self.index,
                    seq=seq,
                    time_ns=t,
                    base_ns=ring.base_ns(seq),
                    first_seen_ns=now,
                    reset=self._take_reset(),
                )
            )
            n += 1
        if self.mode == "fused" and not n and not waiting:
            n += self._audio_only(sched, now)
        while waiting and (self.paced or sched.space(self.index) > 0):
            it = waiting[0]
            if not self.ready(it, now):
                break
            waiting.popleft()
            self._push(sched, it, now)
        self._set_wake()
        return n

    def _new_frame(self, t: int) -> None:
        """Bookkeeping for a new frame item: resumed video, gaps that reset model state."""
        ing = self.ingest
        if self._video_absent:
            self._video_absent = False
            self._audio_only_until = None
            self._reset_next = True
            self._warn(
                "track_resumed", "video frames are back; decisions use both modalities again",
                t, modality="video",
            )  # fmt: skip
        gap = self._last_frame_ns is not None and t - self._last_frame_ns > 3 * self._period_ns
        if gap or ing.video_epoch != self._video_epoch:
            self._video_epoch = ing.video_epoch
            self._reset_next = True  # recurrent state must not span a video gap
        self._last_frame_ns = t
        self._last_item_ns = t

    def _take_reset(self) -> bool:
        reset, self._reset_next = self._reset_next, False
        return reset

    def _crosses_audio_gap(self, w: Window) -> bool:
        """True once per audio gap: for the first window that ends past it."""
        gaps = self.ingest.audio_gaps
        crossed = False
        while gaps and gaps[0][1] <= w.end_index:
            gaps.popleft()
            crossed = True
        return crossed

    def _video_gone(self) -> bool:
        """Whether the video has stopped while audio goes on (see the module docstring)."""
        ing, al = self.ingest, self.aligner
        if al is None or ing.audio_ring is None or ing.audio_ended and not ing.audio_up:
            return False
        if ing.video_ended or not ing.video_up:
            return True
        if not self.paced:
            return ing.blocked_on == "audio"
        fit = al.clock.fit
        if fit is None:
            return False
        head_t = al.clock.index_to_host(ing.audio_ring.head, fit) - self._av_offset_ns
        last = self._last_item_ns
        if last is None:
            last = al.clock.index_to_host(al.window_samples, fit) - self._av_offset_ns
        return head_t - last > self._video_timeout_ns

    def _audio_only(self, sched: Scheduler, now: int) -> int:
        """Audio-driven items at the frame rate while the video is gone; returns items made."""
        al, ing = self.aligner, self.ingest
        if al is None or not al.clock.ready:
            return 0
        if not self._video_absent:
            if not self._video_gone():
                return 0
            self._video_absent = True
            self._reset_next = True
            since = self._last_item_ns
            self._warn(
                "track_ended",
                "the video stopped"
                + (f" after {ing.stream_time_s(since):.2f} s" if since is not None else "")
                + " while the audio goes on: decisions go on from the audio alone (degraded) "
                "until frames come back",
                since if since is not None else ing.last_ns,
                modality="video",
            )
        fit = al.clock.fit
        if fit is None:
            return 0
        t = self._last_item_ns
        if t is None:
            t = al.clock.index_to_host(al.window_samples, fit) - self._av_offset_ns
        elif self.paced:  # live: do not replay what is already late, join the present
            head_t = al.clock.index_to_host(ing.audio_ring.head, fit) - self._av_offset_ns
            behind = (head_t - t) // self._period_ns - 1
            if behind > 0:
                t += behind * self._period_ns
        n = 0
        while self.paced or sched.space(self.index) > 0:
            t_next = t + self._period_ns
            w = al.window_for(t_next)
            if w is None or not al.complete(w):
                if w is not None:
                    ing.wake_audio_index = w.end_index
                break
            it = Item(
                stream=self.index,
                seq=-1,
                time_ns=t_next,
                base_ns=t_next if ing.live else now,
                first_seen_ns=now,
                window=w,
                ready_ns=now,
                reset=self._take_reset(),
            )
            self._push(sched, it, now)
            t = t_next
            self._last_item_ns = self._audio_only_until = t
            n += 1
        return n

    def _pull_audio(self, sched: Scheduler, now: int) -> int:
        """Audio-driven stream: one window every step."""
        ing = self.ingest
        stepper, clock = self.stepper, ing.audio_clock
        if stepper is None or clock is None:
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
                stream=self.index,
                seq=fr.latest() if fr is not None else -1,
                time_ns=t,
                base_ns=t if ing.live else now,
                first_seen_ns=now,
                window=w,
                ready_ns=now,
            )
            self._push(sched, it, now)
            n += 1
        ing.wake_audio_index = stepper.next_end
        return n

    def _set_wake(self) -> None:
        """Tell the ingest which audio index is worth waking the pipeline for."""
        ing, al = self.ingest, self.aligner
        if al is None or ing.audio_ring is None or self._video_absent:
            return
        if self._waiting:
            w = self._waiting[0].window
            ing.wake_audio_index = w.end_index if w is not None else 0
            return
        fit = al.clock.fit
        last = self._last_item_ns
        if fit is None or last is None or not self.paced:
            # files: frames and blocked writes ring anyway; before any fit: any block
            ing.wake_audio_index = 0 if fit is None else _NEVER
            return
        due = last + self._video_timeout_ns + self._av_offset_ns + 1
        ing.wake_audio_index = int(al.clock.host_to_index(due, fit)) + 1

    def _push(self, sched: Scheduler, it: Item, now: int) -> None:
        ml = self._max_latency_ns
        sched.push(
            self.index, it, now_ns=now, deadline_ns=it.base_ns + ml if self.paced and ml else None
        )

    @property
    def waiting(self) -> int:
        """Items taken from the ring and still waiting for their audio."""
        return len(self._waiting)

    def next_due(self) -> int | None:
        """Host ns at which the oldest waiting item becomes ready by deadline, or None."""
        if not self._waiting:
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
        al, ing = self.aligner, self.ingest
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
                ok = self.finished() or now - it.first_seen_ns > self._nonlive_wait_ns
                if not ok and ing.blocked_on is not None:
                    ok = True  # the reader waits for us: this audio is not (yet) in the file
                    if ing.blocked_on == "video":
                        self._audio_gone(it)
        if ok:
            it.ready_ns = now
        return ok

    def _audio_gone(self, it: Item) -> None:
        ring = self.ingest.audio_ring
        if ring is None or self._audio_absent_head == ring.head:
            return
        first = self._audio_absent_head is None
        self._audio_absent_head = ring.head
        if first:
            self._warn(
                "track_ended",
                f"the audio stopped at {self._audio_end_s():.2f} s while the video goes on: "
                "decisions go on from the video alone (degraded)",
                it.time_ns,
                modality="audio",
            )

    def _audio_end_s(self) -> float:
        ing = self.ingest
        clock, ring = ing.audio_clock, ing.audio_ring
        if clock is None or ring is None or clock.fit is None:
            return 0.0
        return ing.stream_time_s(clock.index_to_host(ring.head, clock.fit))

    def prepare(
        self, it: Item, row: int, feeds: dict[str, np.ndarray], img: ImageKernel | None
    ) -> None:
        """Pre-process an item into batch row `row` of the feeds and fill its mask row."""
        has_audio = has_video = False
        ing = self.ingest
        if self.audio_input is not None:
            dst = feeds[self.audio_input][row]
            if self.aligner is not None and it.window is None:
                it.window = self.aligner.window_for(it.time_ns)
            w = it.window
            if w is not None and self._crosses_audio_gap(w):
                it.reset = True  # recurrent state must not span an audio gap
            if w is not None and self.audio_buf is not None and ing.audio_ring is not None:
                res = ing.audio_ring.read(w.start_index, self.audio_buf)
                has_audio = res.coverage >= self._min_cov
                if has_audio:
                    self._mel_into(dst, w, complete=res.missing == 0)
                    if self.sync is not None:
                        self._sync_audio(it, w, dst)
                    tenth = (
                        self.audio_buf.shape[0] // 10 if self._rate is None else self._rate // 10
                    )
                    it.level_dbfs = ing.audio_ring.level_dbfs(w.end_index - tenth, w.end_index)
            if not has_audio:
                dst[...] = 0.0
        if self.video_input and img is not None:
            dst = feeds[self.video_input][row]
            fr = ing.frame_ring
            if it.seq >= 0 and fr is not None and self.mode != "audio":
                if fr.valid(it.seq):
                    fmt = self.video_format.pixel_format if self.video_format else "bgr24"
                    img(fr.view(it.seq), fmt, dst)
                    has_video = fr.valid(it.seq)  # not overwritten while we read it
                    if has_video and self.sync is not None:
                        self.sync.push_video(ing.stream_time_s(it.time_ns), dst)
                if not has_video:
                    self.torn += 1
            if not has_video:
                dst[...] = 0.0
        it.modalities = ("audio",) * has_audio + ("video",) * has_video
        it.degraded = any(m not in it.modalities for m in self._model_mods)
        if self.mask_input is not None:
            mask = feeds[self.mask_input][row]
            for j, m in enumerate(self._mask_order):
                mask[j] = 1.0 if m in it.modalities else 0.0

    def _sync_audio(self, it: Item, w: Window, mel: np.ndarray) -> None:
        """Frame energies (dB) of the window's mel columns, timed in video time."""
        assert self.sync is not None  # caller checks
        a = self._audio_params
        np.mean(mel, axis=0, out=self._energy)
        self._energy *= a.std
        self._energy += a.mean
        # the last column is centred n_fft/2 before the window end; the window's exact end
        # is the frame time (the configured offset is already applied by the aligner)
        t_frame = self.ingest.stream_time_s(it.time_ns)
        t_last = t_frame + (w.end_index - a.n_fft / 2 - w.exact_end_index) / a.sample_rate
        self.sync.push_audio(t_last, self._energy)
        for rec in self.sync.poll():
            if isinstance(rec, dict):  # the monitor's older dict records
                data = {k: v for k, v in rec.items() if k not in ("type", "kind", "source",
                        "message")}  # fmt: skip
                rec = WarningRecord(source=self.name, kind=rec["kind"], message=rec["message"],
                                    data=data, stream=self.name, model=self.model,
                                    stream_time=round(t_frame, 3))  # fmt: skip
            self._records.append(rec)

    def _mel_into(self, dst: np.ndarray, w: Window, *, complete: bool) -> None:
        assert self._mel is not None and self.audio_buf is not None  # set together
        epoch = self.ingest.audio_epoch
        if epoch != self._epoch:  # a gap was written: cached mel frames may not span it
            self._epoch = epoch
            if self._smel is not None:
                self._smel.invalidate()
        if self._smel is not None and complete and w.end_index % self._hop == 0:
            self._smel.window(self.audio_buf, w.end_index, dst)
        else:
            if self._smel is not None:
                self._smel.invalidate()  # zeros where samples were missing: do not cache them
            self._mel(self.audio_buf, dst)

    def release(self, it: Item) -> None:
        """The item is done (processed or dropped): its frame and audio may be overwritten."""
        ing = self.ingest
        fr = ing.frame_ring
        if it.seq >= 0 and fr is not None and self.mode != "audio":
            fr.release(it.seq)
        if not self.paced and it.window is not None and ing.audio_floor is not None:
            step = self.stepper.step if self.stepper is not None else 0
            floor = it.window.start_index + step
            if floor > ing.audio_floor:
                ing.audio_floor = floor
        ing.released()

    def overlay(self, it: Item) -> tuple[np.ndarray | None, FrameOverlay | None]:
        """A copy of the item's frame and what to draw on it (None when no frame)."""
        fr, buf = self.ingest.frame_ring, self.frame_buf
        if fr is None or buf is None:
            return None, None
        seq = it.seq if it.seq >= 0 else fr.latest()
        if seq < 0 or not fr.read(seq, buf):
            return None, None
        return buf, FrameOverlay(
            stream_time_s=self.ingest.stream_time_s(it.time_ns),
            label=self.post.current_label,
            score=self.post.top_score,
            audio_level_dbfs=it.level_dbfs,
            modalities=it.modalities,
            degraded=it.degraded,
        )

    # ------------------------------------------------------------------ reporting
    def drain_records(self) -> list[Record]:
        """Warning/fault records: source statuses, audio gaps, clock jumps, sync, tracks."""
        ing = self.ingest
        out: list[Record] = []
        t = ing.stream_time_s(ing.last_ns)
        while ing.statuses:
            s = ing.statuses.popleft()
            if s.kind == "eos" and s.modality is not None and not ing.ended:
                other_up = ing.video_up if s.modality == "audio" else ing.audio_up
                if other_up and not (s.modality == "video" and self._video_absent):
                    out.append(self._record("track_ended", f"the {s.modality} track ended; "
                               "decisions go on from the other modality (degraded)", t,
                               modality=s.modality))  # fmt: skip
                continue
            rec = status_record(s, stream=self.name, model=self.model, stream_time=t)
            if rec is not None:
                out.append(rec)
        gaps = ing.counters["audio_gaps"]
        if gaps > self._seen_gaps:
            out.append(
                self._record(
                    "audio_gap",
                    f"{gaps - self._seen_gaps} audio gap(s); {ing.counters['audio_gap_samples']} "
                    "samples missing so far (marked missing, not filled)",
                    t,
                    modality="audio",
                )
            )
            self._seen_gaps = gaps
        jumps = ing.clock_jumps
        if jumps > self._seen_jumps:
            out.append(
                self._record(
                    "clock_jump", f"{jumps - self._seen_jumps} clock jump(s); clock refitted", t
                )
            )
            self._seen_jumps = jumps
        if self._records:
            out.extend(self._records)
            self._records.clear()
        return out

    def _warn(self, kind: str, message: str, t_ns: int, *, modality: str | None = None) -> None:
        self._records.append(
            self._record(kind, message, self.ingest.stream_time_s(t_ns), modality=modality)
        )

    def _record(
        self, kind: str, message: str, t: float, *, modality: str | None = None
    ) -> WarningRecord:
        return WarningRecord(
            source=self.name,
            kind=kind,
            modality=modality,
            message=message,
            stream=self.name,
            model=self.model,
            stream_time=round(t, 3),
        )

    def drops(self) -> dict[str, int]:
        """Losses counted outside the scheduler, by reason."""
        ing = self.ingest
        d = {"frame_overwritten": self.torn, "video_late": self.late_frames}
        if ing.frame_ring is not None and self.mode != "audio":
            d["ring_overrun"] = ing.frame_ring.overruns
        if self.stepper is not None:
            d["audio_windows_skipped"] = self.stepper.skipped
        return d

    def summary(self) -> dict[str, Any]:
        """Per-stream part of the summary record."""
        d: dict[str, Any] = {"name": self.name, "mode": self.mode, "frames": self.frames}
        if self._smel is not None:
            d["mel_frames_computed"] = self._smel.computed_frames
            d["mel_frames_reused"] = self._smel.reused_frames
        if self.sync is not None:
            d["av_sync"] = self.sync.summary()
        return {**d, **self.ingest.stats()}


__all__ = ["Item", "Stream"]
