"""Playing a file out in real time: decode ahead in bursts, deliver each frame on time.

A file played with `realtime=True` must hand every frame to the pipeline at its host
time, never before. Decoding each frame just before it is due costs the reader a wake-up
per frame (30 video frames and ~47 audio frames a second for a 48 kHz AAC track), and
each wake-up finds the decoder's caches cold: measured on a 30 fps 320x240 H.264 + AAC
file into a sink that does nothing, 5.5 % of a core, against 1.4 % for the same frames
decoded back to back. `PlayoutBuffer` keeps the delivery times and changes when the
decoding happens: the reader decodes until the buffer holds `high_s` of media beyond
the present, then the buffer plays its frames out at their times until less than
`low_s` is left, and the reader decodes the next burst. The same source then costs
3.5 % of a core, and 2.4 % with the audio delivered with the frames (below).
Delivery times, order and stamps of frames are those of frame-by-frame pacing; they
are only decoded up to `high_s` earlier.

A burst is cold at its start (the decoder's and the interpreter's working set was
evicted while the reader slept), so the longer the burst, the less each frame costs:
measured through the whole CLI on that file, alternating old and new code, bursts of
120 ms cost 7.28 % of a core for the whole run and bursts of 1 s 5.57 %. A burst also
ends once the queued frames hold `max_bytes` (32 MB: 1 s of 320x240, 0.4 s of 720p,
about 5 frames of 1080p) so that large frames do not cost memory in proportion.

Delivery follows what a capture card does: audio comes with each video frame. When a
frame is due, the audio captured up to that moment is delivered with it (a block is
split at that moment when it straddles it), as one block where it is continuous, so a
file with video wakes the reader once per frame and the sink takes one audio call per
frame, not once per frame and once per audio block (30 + 47 a second for 48 kHz
AAC at 30 fps: 52 wake-ups after merging those within the slack, against 30). No sample
arrives before it was captured, and none waits longer than one frame interval (or the
frames of one group, below). Audio waits for a frame only when one is due within
`AUDIO_HOLD_NS` of it; otherwise (no video, a video track that ended, a frame rate
under 14 fps) an audio block arrives once its last sample is captured, as a microphone
delivers it. An item due within
`WAKE_SLACK_NS` after another shares that one's wake-up (it arrives up to 8 ms late,
never early).

Frames no consumer waits for need no wake-up of their own: a model on every 3rd frame
has the pipeline wake for those only (`Ingest.wake_video_seq`), and the sink says how
many of the next frames are not awaited (`not_awaited`, the ingest's
`frames_not_awaited`). They go out with the next awaited frame (at most `GROUP_NS`
later than their time, never earlier) with the audio captured by then, so the reader
wakes once per decision: measured on the same file through the whole CLI, 25 -> 14
waits a second. A lane on the audio's own cadence, or one that looks at every frame,
makes every frame awaited again.

Status messages queue in the same order as the frames around them, so a warning about
a frame never reaches the pipeline before the frames that came before it.

Handed over (`hand_over`, what a pipeline's stream does): the consumer's own thread
delivers. It asks `next_due()` when to wake, sleeps until then with its own work, and
calls `deliver_due(now)`; the frames then reach the rings in the wake-up that processes
them, so one thread wakes per decision instead of two, and the frames it reads are
still in its core's cache. The reader only decodes its bursts and sleeps in between (one
wake-up a second); it rings the consumer when it queues an item due before the
consumer's planned wake-up. What the consumer leaves `STALL_NS` past its time (a stalled
or stopped consumer) the reader delivers itself, so the queue stays bounded and nothing
is lost. Measured through the whole CLI on the same file, alternating old and new code,
six pairs: 5.71 -> 5.20 % of a core (the reader's thread about 2.8 -> 1.8 %).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

import numpy as np

from avfuse.engine.sources.base import WAKE_SLACK_NS, FrameSink, SourceStatus
from avfuse.engine.sources.playout_audio import AudioGather
from avfuse.engine.sources.playout_audio import QueuedItem as _Item

#: decode ahead until this much media (seconds past the present) waits for delivery
HIGH_S = 1.0
#: or until the queued frames hold this many bytes (a burst then ends once `LOW_S` is
#: queued): 30 frames of 320x240 bgr24 are 6.9 MB, 1 s of 1080p would be 187 MB
MAX_QUEUED_BYTES = 32 << 20
#: then play out until this little is left before decoding the next burst
LOW_S = 0.04
#: audio captured this long before the next video frame waits for it (one wake-up for
#: both); a frame further off (under 14 fps, or none queued) lets audio wake alone
AUDIO_HOLD_NS = 70_000_000
#: frames no consumer waits for go out with the next one it does, within this span
#: (3 frames at 30 fps; 2 at 25 fps): a model on every 3rd frame wakes the reader once
#: per decision, and no frame waits longer than this
GROUP_NS = 70_000_000
#: audio decoded this far ahead of the latest frame leads the water marks (`_lead`)
MAX_SKEW_NS = 500_000_000


#: handed over to a consumer's thread (`hand_over`), the reader still delivers what is
#: this late itself: a stalled consumer does not make the queue grow without bound
STALL_NS = 250_000_000
#: and at the end of the file it looks again this long after the last item's time
END_MARGIN_NS = 20_000_000


class StopWait(Protocol):
    """A stop flag to sleep on (threading.Event): `wait` returns True once stopped."""

    def wait(self, timeout: float | None = None) -> bool: ...

    def is_set(self) -> bool: ...


class PlayoutBuffer:
    """A FrameSink in front of another that delivers each frame at its `host_ns`.

    The reader calls `audio`/`video`/`status` as it decodes (they only queue), then
    `pump()` after each packet, and `finish()` at the end of the file. `sample_rate`
    is the delivered audio's, to know when a block's last sample was captured.
    `not_awaited` (the sink's `frames_not_awaited`): how many of the next frames no
    consumer wakes up for; they go out with the frame after them, in one wake-up.
    `max_bytes` bounds the frames a burst queues (`queued_bytes`), whatever `high_s`.
    `before_wait` is called when a burst ends, before the reader sleeps (the reader
    queues what it holds back, e.g. audio it resamples several frames at a time).
    """

    def __init__(
        self,
        sink: FrameSink,
        stopping: StopWait,
        *,
        sample_rate: int,
        high_s: float = HIGH_S,
        low_s: float = LOW_S,
        max_bytes: int = MAX_QUEUED_BYTES,
        clock: Callable[[], int] = time.monotonic_ns,
        not_awaited: Callable[[], int] | None = None,
        before_wait: Callable[[], None] | None = None,
    ) -> None:
        if not 0.0 <= low_s < high_s:
            raise ValueError(f"need 0 <= low_s < high_s, got low_s={low_s} high_s={high_s}")
        if max_bytes < 1:
            raise ValueError(f"need max_bytes >= 1, got {max_bytes}")
        self.sink = sink
        self.stopping = stopping
        self.high_ns = round(high_s * 1e9)
        self.low_ns = round(low_s * 1e9)
        self.max_bytes = max_bytes
        #: bytes of the video frames queued now (the burst's memory bound)
        self.queued_bytes = 0
        self.clock = clock
        self.not_awaited = not_awaited
        self.before_wait = before_wait
        self.sample_rate = sample_rate
        # statuses are due with the item before them (due_ns None)
        self._queue: deque[_Item] = deque()
        # latest capture (host) time queued per modality: the lead that the water marks
        # measure (`_lead`)
        self._last_video: int | None = None
        self._last_audio: int | None = None
        # scratch lists reused by every delivery (no allocation per item)
        self._kept: list[_Item] = []
        self._waiting: set[str] = set()
        # the audio of one wake-up, gathered into one block for the sink
        self._audio = AudioGather(sink, sample_rate)
        #: bursts played out so far (the reader decoded in between): for tests and benchmarks
        self.bursts = 0
        # handed over (`hand_over`): the consumer's thread delivers, the reader only
        # queues; the queue is then shared under this lock
        self._lock = threading.Lock()
        self._wake_consumer: Callable[[], None] | None = None
        self._planned: int | None = None  # the consumer's next wake-up, as last told

    # ------------------------------------------------------------ handed over
    def hand_over(self, wake: Callable[[], None]) -> None:
        """Let the consumer's thread deliver: it calls `next_due` to learn when to wake
        and `deliver_due` then; `wake()` rings it when an item due before that is queued.

        Called by the reader before it queues anything. The reader then only decodes:
        it sleeps between bursts, and delivers itself only what the consumer left
        `STALL_NS` past its time (a consumer that stopped looking).
        """
        self._wake_consumer = wake

    @property
    def handed_over(self) -> bool:
        """Whether the consumer's thread delivers (`hand_over`)."""
        return self._wake_consumer is not None

    def next_due(self) -> int | None:
        """When the consumer should call `deliver_due` next (None: nothing queued)."""
        with self._lock:
            target = self._wake_at()[0] if self._queue else None
            if target is None and self._queue:
                target = 0  # a status heads the queue: it goes out now
            self._planned = target
            return target

    def deliver_due(self, now: int) -> None:
        """On the consumer's thread: deliver what is due by `now`, as a wake-up of the
        reader would have (a video frame's wake-up takes the audio captured by then)."""
        planned = self._planned  # lowered by the reader (`_told`) for anything due earlier
        if planned is not None and planned > now:
            return  # nothing due yet (the loop's pass after its work)
        queue = self._queue
        with self._lock:
            target: int | None = None
            while queue:
                target, with_video, _ = self._wake_at()
                if target is not None and target > now:
                    break
                n, head = len(queue), queue[0]
                self._deliver_due(now, split=with_video)
                if len(queue) == n and queue and queue[0] is head:
                    break  # nothing went out (an item not due yet heads the queue)
            if not queue:
                self._last_video = self._last_audio = None
                target = None
            # until `next_due` plans again (which the consumer does before it sleeps):
            # never later than the next item, so nothing waits for a skipped pass
            self._planned = target if target is not None and target > now else None

    def _await_low(self) -> bool:
        """Handed over: sleep until less than `low_s` is queued ahead of the present,
        delivering only what the consumer left `STALL_NS` late."""
        while True:
            with self._lock:
                now = self.clock()
                self._deliver_due(now - STALL_NS)
                lead = self._lead(now)
                if lead is None or lead <= self.low_ns:
                    if not self._queue:
                        self._last_video = self._last_audio = None
                    return not self.stopping.is_set()
            if self.stopping.wait((lead - self.low_ns) / 1e9 + 1e-4):
                return False

    def _await_empty(self) -> bool:
        """Handed over, at the end of the file: sleep until the consumer delivered all.

        The reader sleeps to the last item's time (and `END_MARGIN_NS`); what is left
        then, the consumer is late with, and the reader delivers it once `STALL_NS` late.
        """
        first = True
        while True:
            with self._lock:
                now = self.clock()
                self._deliver_due(now - STALL_NS)
                dues = [item[0] for item in self._queue if item[0] is not None]
                if not self._queue:
                    self._last_video = self._last_audio = None
                    return not self.stopping.is_set()
                if first:
                    until = max(dues, default=now) + END_MARGIN_NS
                else:
                    until = min(dues, default=now) + STALL_NS
            first = False
            if until > now and self.stopping.wait((until - now) / 1e9 + 1e-4):
                return False
            if self.stopping.is_set():
                return False

    # ------------------------------------------------------------ FrameSink (queueing)
    def audio(
        self,
        samples: np.ndarray,
        *,
        device_time_s: float | None,
        host_ns: int,
        due_ns: int | None = None,
    ) -> None:
        """Queue an audio block for delivery once its last sample is captured: `due_ns`,
        or `host_ns` plus its duration at `sample_rate` (a source whose clock drifts
        knows better, and says so)."""
        due = (
            host_ns + len(samples) * 1_000_000_000 // self.sample_rate if due_ns is None else due_ns
        )
        self._put(due, "audio", samples, device_time_s, host_ns)

    def video(self, frame: np.ndarray, *, device_time_s: float | None, host_ns: int) -> None:
        """Queue a video frame for delivery at `host_ns`."""
        self._put(host_ns, "video", frame, device_time_s, host_ns)

    def status(self, status: SourceStatus) -> None:
        """Queue a status, delivered right after the frames queued before it."""
        with self._lock:
            self._queue.append((None, "status", status, None, 0))
            self._told(0)

    def _put(self, due: int, kind: str, data: np.ndarray, dev: float | None, host: int) -> None:
        with self._lock:
            self._queue.append((due, kind, data, dev, host))
            if kind == "video":
                self.queued_bytes += data.nbytes
                if self._last_video is None or host > self._last_video:
                    self._last_video = host
            elif self._last_audio is None or host > self._last_audio:
                self._last_audio = host
            self._told(due)

    def _told(self, due: int) -> None:
        """Handed over: ring the consumer when this item is due before its planned
        wake-up (or it has none), once until it plans again."""
        wake = self._wake_consumer
        if wake is not None and (self._planned is None or due < self._planned):
            self._planned = due
            wake()

    def _lead(self, now: int) -> int | None:
        """How far past `now` the queued media reaches (None: nothing queued).

        With video, the latest frame's capture time: a burst then ends only once the
        frame after the queued audio is decoded, so that audio waits for it instead of
        waking the reader alone. A file's audio is often demuxed ahead of its video (100
        ms in an FFmpeg MP4); audio more than `MAX_SKEW_NS` ahead of the latest frame (a
        video track that ended or stalls) leads instead, less that skew, so the buffer
        stays bounded.
        """
        v, a = self._last_video, self._last_audio
        if v is None:
            return None if a is None else a - now
        if a is not None and a - v > MAX_SKEW_NS:
            return a - MAX_SKEW_NS - now
        return v - now

    # ------------------------------------------------------------ delivery
    def pump(self) -> bool:
        """Deliver what is due; once `high_s` is buffered, play out down to `low_s`.

        Returns False when the stop flag was set while waiting (the rest is dropped,
        as frame-by-frame pacing would not have delivered it either).
        """
        now = self.clock()
        handed = self._wake_consumer is not None
        with self._lock:  # uncontended unless handed over
            lead, queued = self._lead(now), self.queued_bytes
        if lead is None or (
            lead < self.high_ns and (queued < self.max_bytes or lead <= self.low_ns)
        ):
            if not handed:
                self._deliver_due(now)
            return True
        if self.before_wait is not None:
            self.before_wait()  # what the reader still holds goes into the queue first
        self.bursts += 1
        if handed:
            return self._await_low()
        return self._play_out(lambda: (self._lead(self.clock()) or 0) > self.low_ns)

    def finish(self) -> bool:
        """Play out everything still queued (end of file, or before raising a read error)."""
        if self._wake_consumer is not None:
            return self._await_empty()
        return self._play_out(lambda: True, finishing=True)

    def _deliver_due(self, now: int, *, split: bool = False) -> None:
        """Deliver every item due by `now`, each modality in its order, a status once
        everything queued before it is out. An audio block is due after the frame that
        follows its first sample (once its last sample is captured), so the queue is not
        in due order across modalities, only within each. With `split` (a video frame's
        wake-up), the part of an audio block captured by `now` goes out too, and the
        rest stays queued; the audio of one wake-up goes out as one block where it is
        continuous."""
        queue = self._queue
        kept = self._kept
        kept.clear()
        waiting = self._waiting  # modalities with an item not yet due ahead in the queue
        waiting.clear()
        while queue:
            item = queue.popleft()
            due, kind = item[0], item[1]
            if kind == "status" and kept:
                kept.append(item)  # and everything after it waits for it
                break
            if kind != "status" and (kind in waiting or due is None or due > now):
                if split and kind == "audio" and kind not in waiting:
                    item = self._audio.split(item, now)
                waiting.add(kind)
                kept.append(item)
                if len(waiting) == 2:
                    break  # both modalities wait: nothing behind can go out (each in order)
                continue
            if split and kind == "audio":
                self._audio.add(item[2], item[3], item[4])  # type: ignore[arg-type]
                continue
            if kind == "status":
                self._audio.flush()  # the audio before a status goes out before it
            self._deliver(*item[1:])
        self._audio.flush()
        queue.extendleft(reversed(kept))
        kept.clear()

    def _wake_at(self) -> tuple[int | None, bool, bool]:
        """When to wake next, whether audio goes out with a video frame then, and whether
        the frame that wake-up is for is still to be decoded (`short`).

        The earliest video frame sets the time when one is due within `AUDIO_HOLD_NS`
        of the earliest audio block (or no audio is queued); otherwise that block does.
        Frames no consumer waits for (`not_awaited`) put the wake-up off to the frame
        after them, at most `GROUP_NS` after the first; when that frame is not queued
        yet, `short` says so (decode on first). The wake-up is then put off to the last
        item of that modality due within the slack, so that one wake-up serves them all
        (None: only statuses are queued).
        """
        first_a = first_v = None
        for due, kind, *_ in self._queue:
            if kind == "status":
                break  # what follows a status waits for what comes before it
            if kind == "video":
                if first_v is None or due < first_v:  # type: ignore[operator]
                    first_v = due
            elif first_a is None or due < first_a:  # type: ignore[operator]
                first_a = due
            if first_v is not None and first_a is not None:
                break  # each modality is queued in its order: the rest come later
        with_video = first_v is not None and (first_a is None or first_v <= first_a + AUDIO_HOLD_NS)
        first = first_v if with_video else first_a
        if first is None:
            return None, False, False
        kind_set = "video" if with_video else "audio"
        last = first
        short = False
        skip = self.not_awaited() if with_video and self.not_awaited is not None else 0
        if skip > 0:  # wake for the first frame a consumer waits for
            short = True
            for due, kind, *_ in self._queue:
                if kind == "status":
                    short = False  # a status comes first: the frames before it go out
                    break
                if kind != "video":
                    continue
                if due > first + GROUP_NS:  # type: ignore[operator]
                    short = False
                    break
                last = due  # type: ignore[assignment]
                skip -= 1
                if skip < 0:
                    short = False
                    break
        target = last
        for due, kind, *_ in self._queue:
            if kind == "status":
                break
            if kind != kind_set:
                continue
            if due > target + WAKE_SLACK_NS:  # type: ignore[operator]
                break  # and so are the rest of this modality
            if due > last:  # type: ignore[operator]
                last = due  # type: ignore[assignment]
        return last, with_video, short

    def _play_out(self, more: Callable[[], bool], *, finishing: bool = False) -> bool:
        queue = self._queue
        while queue and more():
            target, with_video, short = self._wake_at()
            if short and not finishing:
                break  # the frame this wake-up is for is not decoded yet: decode on
            if target is not None:
                # sleep to the items' time, never earlier (a wait may return a little early)
                while (left := target - self.clock()) > 0:
                    if self.stopping.wait(left / 1e9 + 1e-4):
                        return False
            self._deliver_due(self.clock(), split=with_video)
        if not queue:
            self._last_video = self._last_audio = None
        return not self.stopping.is_set()

    def _deliver(self, kind: str, data: object, dev: float | None, host_ns: int) -> None:
        if kind == "status":
            self.sink.status(data)  # type: ignore[arg-type]
        elif kind == "audio":
            self.sink.audio(data, device_time_s=dev, host_ns=host_ns)  # type: ignore[arg-type]
        else:
            self.queued_bytes -= data.nbytes  # type: ignore[attr-defined]
            self.sink.video(data, device_time_s=dev, host_ns=host_ns)  # type: ignore[arg-type]
