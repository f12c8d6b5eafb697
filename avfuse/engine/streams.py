"""One stream of the pipeline: its sources, its ingest and the lanes of the models on it.

A stream is one scene seen by a camera and heard by a microphone: one Source that
delivers both, or several Sources combined (the first with audio gives the audio,
the first with video the video). The stream takes each new frame from its ring once
and offers it to its video-driven lanes (`avfuse.engine.lane`), keeps the rings'
release points at what every lane is done with, and reports what happens to the
stream as a whole: source statuses, audio gaps, clock jumps, a track that ends.

A track that stops: when the video stops while the audio goes on (a file whose video
track is shorter, a camera that stalls or is unplugged), the stream says so once
(`track_ended`) and its fused lanes go on with audio-driven items at the frame rate,
marked degraded, until frames come back (`track_resumed`). The mirror case, audio
gone while video goes on, runs the frames with the audio masked missing. For files
the decision that a track is gone is exact: the reader is blocked writing the other
track's ring while this one has nothing queued. For live streams it is a timeout in
stream time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from avfuse.engine.align import Window
from avfuse.engine.ingest import Ingest, status_record
from avfuse.engine.ingest_port import IngestPort
from avfuse.engine.records import Record, WarningRecord
from avfuse.engine.sinks import FrameOverlay
from avfuse.engine.sources.base import Source

if TYPE_CHECKING:
    from avfuse.engine.lane import Item, Lane
    from avfuse.engine.pipeline import PipelineConfig

_NEVER = 1 << 62


class Stream:
    """Per-stream state and steps; built by `build_stream`, lanes added by the pipeline."""

    def __init__(
        self,
        *,
        index: int,
        sources: list[Source],
        ports: list[IngestPort],
        ingest: Ingest,
        config: PipelineConfig,
    ) -> None:
        self.index = index
        self.name = "+".join(s.name for s in sources)
        self.sources = sources
        self._ports = ports
        self.ingest = ingest
        self.paced = ingest.live or config.realtime
        self.video_format = ingest.video_format
        self.lanes: list[Lane] = []
        #: (model, output) -> the ring of that model's recent outputs (chained models)
        self.histories: dict[tuple[str, str], Any] = {}
        fr = ingest.frame_ring
        self.frame_buf = np.zeros(fr.shape, np.uint8) if fr is not None else None
        fps = self.video_format.fps if self.video_format is not None else 30.0
        self.period_ns = int(round(1e9 / fps)) if fps > 0 else 33_333_333
        # longer than a file reader may hold frames back (MediaConfig.video_drain_after_s)
        self.video_timeout_ns = max(1_500_000_000, 10 * self.period_ns)
        self._records: list[Record] = []
        self._seen_gaps = 0
        self._seen_jumps = 0
        self._last_frame_ns: int | None = None
        self._video_epoch = 0
        #: the video has stopped while the audio goes on (fused lanes go audio-only)
        self.video_absent = False
        self._audio_absent_head: int | None = None
        self._gap_seen: dict[int, int] = {}  # lane id -> gaps of ingest.audio_gaps it passed

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start every source delivering into this stream's ingest."""
        ing = self.ingest
        if not any(lane.reads_audio for lane in self.lanes):
            ing.audio_floor = None  # nobody reads the audio: never wait for it
            ing.wake_audio_index = _NEVER
        for s, p in zip(self.sources, self._ports, strict=True):
            s.start(p)

    def stop(self) -> int:
        """Stop the sources (bounded), unblock back-pressured writes; returns items abandoned."""
        self.ingest.close()
        for s in self.sources:
            s.stop()
        return sum(lane.waiting for lane in self.lanes)

    def finished(self) -> bool:
        """True when every source has ended (by itself, by error or by stop)."""
        return all(s.finished.is_set() for s in self.sources)

    @property
    def waiting(self) -> int:
        """Items taken and still waiting for their audio, over all lanes."""
        return sum(lane.waiting for lane in self.lanes)

    # ------------------------------------------------------------------ work
    def pull(self, now: int) -> int:
        """Take new frames and offer them to the lanes; lanes queue their ready items.

        A file's frame is taken only when every video-driven lane has room for it
        (back-pressure), so nothing of a file is lost. Returns frames taken plus items made.
        """
        ing = self.ingest
        ring = ing.frame_ring
        video_lanes = [lane for lane in self.lanes if lane.takes_video]
        took = 0
        if ring is not None and video_lanes:
            while self.paced or all(lane.has_room() for lane in video_lanes):
                seq = ring.take()
                if seq < 0:
                    break
                t = ring.host_ns(seq)
                reset = self._new_frame(t)
                base = ring.base_ns(seq)
                for lane in video_lanes:
                    lane.offer_frame(seq, t, base, now, reset=reset)
                took += 1
        if not took and not self.video_absent and ring is not None and self._video_gone():
            self._video_stopped()
        n = took
        for lane in self.lanes:
            n += lane.pull(now, took_frames=took)
        self._release_frames()
        self._set_wake()
        return n

    def _new_frame(self, t: int) -> bool:
        """Bookkeeping for a new frame; True when it follows a gap (state must reset)."""
        ing = self.ingest
        reset = False
        if self.video_absent:
            self.video_absent = False
            reset = True
            self._warn(
                "track_resumed", "video frames are back; decisions use both modalities again",
                t, modality="video",
            )  # fmt: skip
        gap = self._last_frame_ns is not None and t - self._last_frame_ns > 3 * self.period_ns
        if gap or ing.video_epoch != self._video_epoch:
            self._video_epoch = ing.video_epoch
            reset = True  # recurrent state must not span a video gap
        self._last_frame_ns = t
        return reset

    def _video_gone(self) -> bool:
        """Whether the video has stopped while audio goes on (see the module docstring)."""
        ing = self.ingest
        fused = [lane for lane in self.lanes if lane.mode == "fused" and lane.aligner is not None]
        if not fused or ing.audio_ring is None or (ing.audio_ended and not ing.audio_up):
            return False
        if any(lane.waiting for lane in fused):
            return False
        if ing.video_ended or not ing.video_up:
            return True
        if not self.paced:
            return ing.blocked_on == "audio"
        al = fused[0].aligner
        assert al is not None
        fit = al.clock.fit
        if fit is None:
            return False
        # the aligner's offset: the one in force (--auto-offset moves it during the run)
        head_t = al.clock.index_to_host(ing.audio_ring.head, fit) - al.av_offset_ns
        last = self._last_frame_ns
        if last is None:
            last = al.clock.index_to_host(al.window_samples, fit) - al.av_offset_ns
        return head_t - last > self.video_timeout_ns

    def _video_stopped(self) -> None:
        self.video_absent = True
        since = self._last_frame_ns
        ing = self.ingest
        self._warn(
            "track_ended",
            "the video stopped"
            + (f" after {ing.stream_time_s(since):.2f} s" if since is not None else "")
            + " while the audio goes on: decisions go on from the audio alone (degraded) "
            "until frames come back",
            since if since is not None else ing.last_ns,
            modality="video",
        )

    def audio_gone(self, t_ns: int) -> None:
        """A lane found the audio missing while the file's reader waits on the video."""
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
                t_ns,
                modality="audio",
            )

    def _audio_end_s(self) -> float:
        ing = self.ingest
        clock, ring = ing.audio_clock, ing.audio_ring
        if clock is None or ring is None or clock.fit is None:
            return 0.0
        return ing.stream_time_s(clock.index_to_host(ring.head, clock.fit))

    def crosses_audio_gap(self, lane: Lane, w: Window) -> bool:
        """True once per audio gap and lane: for the lane's first window that ends past it."""
        ing = self.ingest
        seen = self._gap_seen.get(id(lane), 0)
        seen = max(seen, ing.gaps_total - 64)  # older gaps were passed long ago
        crossed = False
        while True:
            end = ing.gap_end(seen)
            if end is None or end > w.end_index:
                break
            seen += 1
            crossed = True
        self._gap_seen[id(lane)] = seen
        return crossed

    def _release_frames(self) -> None:
        ring = self.ingest.frame_ring
        if ring is None:
            return
        video_lanes = [lane for lane in self.lanes if lane.takes_video]
        if not video_lanes:
            ring.release(ring.next_seq - 1)
        else:
            upto = min(lane.oldest_frame_held() for lane in video_lanes) - 1
            if upto >= 0:
                ring.release(upto)

    def released(self) -> None:
        """A lane finished an item: move the rings' release points, wake a blocked reader."""
        ing = self.ingest
        self._release_frames()
        if not self.paced and ing.audio_floor is not None:
            floors = [lane.audio_floor for lane in self.lanes if lane.reads_audio]
            if floors:
                floor = min(floors)
                if floor > ing.audio_floor:
                    ing.audio_floor = floor
        ing.released()

    def _set_wake(self) -> None:
        ing = self.ingest
        if ing.frame_ring is not None:
            # a paced stream's frames are taken whenever the loop runs, so frames no lane
            # will take need no wake-up; a file's back-pressure needs every one
            seqs = [lane.wake_seq() for lane in self.lanes if lane.takes_video]
            if seqs and self.paced:
                ing.video_paces_audio = not any(lane.mode == "audio" for lane in self.lanes)
                ing.video_cadence = min(
                    lane.cadence_frames() for lane in self.lanes if lane.takes_video
                )
                wake = ing.wake_video_seq = min(seqs)
                if ing.frame_ring.head > wake:  # written while the wake-up was higher
                    ing.bell.ring()
            else:
                ing.wake_video_seq = 0
        if ing.audio_ring is None:
            return
        wanted = [lane.wake_index() for lane in self.lanes if lane.reads_audio]
        ing.wake_audio_index = min(wanted) if wanted else _NEVER

    def next_deadline(self) -> int | None:
        """The earliest deadline of the lanes' waiting items (audio that is late), or None."""
        due: int | None = None
        for lane in self.lanes:
            d = lane.next_due()
            if d is not None and (due is None or d < due):
                due = d
        return due

    def next_playout(self) -> int | None:
        """When the earliest of this stream's played-out items is due, or None."""
        due: int | None = None
        for port in self._ports:
            if port.playout is not None:
                d = port.playout.next_due()
                if d is not None and (due is None or d < due):
                    due = d
        return due

    def play_out(self, now: int) -> None:
        """Deliver the frames of a file played in real time that are due by `now`, on
        this (the consumer's) thread: the reader only decodes ahead, and the frames reach
        the rings in the wake-up that processes them (one thread woken, caches warm)."""
        for port in self._ports:
            if port.playout is not None:
                port.playout.deliver_due(now)

    def overlay(self, it: Item, lane: Lane) -> tuple[np.ndarray | None, FrameOverlay | None]:
        """A copy of the item's frame and what to draw on it (None when no frame)."""
        fr, buf = self.ingest.frame_ring, self.frame_buf
        if fr is None or buf is None:
            return None, None
        seq = it.seq if it.seq >= 0 else fr.latest()
        if seq < 0 or not fr.read(seq, buf):
            return None, None
        return buf, FrameOverlay(
            stream_time_s=self.ingest.stream_time_s(it.time_ns),
            label=lane.post.current_label,
            score=lane.post.top_score,
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
                if other_up and not (s.modality == "video" and self.video_absent):
                    out.append(self._record("track_ended", f"the {s.modality} track ended; "
                               "decisions go on from the other modality (degraded)", t,
                               modality=s.modality))  # fmt: skip
                continue
            rec = status_record(s, stream=self.name, model=None, stream_time=t)
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
        for lane in self.lanes:
            out.extend(lane.drain_records())
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
            stream_time=round(t, 3),
        )

    def drops(self) -> dict[str, int]:
        """Losses counted outside the schedulers, by reason (all lanes)."""
        d: dict[str, int] = {}
        ing = self.ingest
        if ing.frame_ring is not None and any(lane.takes_video for lane in self.lanes):
            d["ring_overrun"] = ing.frame_ring.overruns
        for lane in self.lanes:
            for k, v in lane.drops().items():
                d[k] = d.get(k, 0) + v
        return d

    def summary(self) -> dict[str, Any]:
        """Per-stream part of the summary record."""
        frames = sum(lane.frames for lane in self.lanes)
        d: dict[str, Any] = {"name": self.name, "frames": frames}
        if len(self.lanes) == 1:
            d.update(self.lanes[0].summary())
            d["mode"] = self.lanes[0].mode
        else:
            d["lanes"] = [lane.summary() for lane in self.lanes]
        return {**d, **self.ingest.stats()}


__all__ = ["Stream"]
