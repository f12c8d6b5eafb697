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
3.5 % of a core. Delivery times, order and stamps are those of frame-by-frame pacing;
the frames are only decoded up to `high_s` earlier.

Delivery follows what a live capture would do, as the synthetic scene's does: an audio
block arrives once its last sample is captured (its host time plus its duration), and
an item due within `WAKE_SLACK_NS` after another shares that one's wake-up (it arrives
up to 8 ms late, never early).

Status messages queue in the same order as the frames around them, so a warning about
a frame never reaches the pipeline before the frames that came before it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

import numpy as np

from avfuse.engine.sources.base import WAKE_SLACK_NS, FrameSink, SourceStatus

#: decode ahead until this much media (seconds past the present) waits for delivery
HIGH_S = 0.12
#: then play out until this little is left before decoding the next burst
LOW_S = 0.04


class StopWait(Protocol):
    """A stop flag to sleep on (threading.Event): `wait` returns True once stopped."""

    def wait(self, timeout: float | None = None) -> bool: ...

    def is_set(self) -> bool: ...


class PlayoutBuffer:
    """A FrameSink in front of another that delivers each frame at its `host_ns`.

    The reader calls `audio`/`video`/`status` as it decodes (they only queue), then
    `pump()` after each packet, and `finish()` at the end of the file. `sample_rate`
    is the delivered audio's, to know when a block's last sample was captured.
    """

    def __init__(
        self,
        sink: FrameSink,
        stopping: StopWait,
        *,
        sample_rate: int,
        high_s: float = HIGH_S,
        low_s: float = LOW_S,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        if not 0.0 <= low_s < high_s:
            raise ValueError(f"need 0 <= low_s < high_s, got low_s={low_s} high_s={high_s}")
        self.sink = sink
        self.stopping = stopping
        self.high_ns = round(high_s * 1e9)
        self.low_ns = round(low_s * 1e9)
        self.clock = clock
        self.sample_rate = sample_rate
        # (due_ns, kind, payload, device_time_s, host_ns); statuses are due with the item
        # before them (due_ns None)
        self._queue: deque[tuple[int | None, str, object, float | None, int]] = deque()
        self._last_ns: int | None = None  # latest due time queued
        # scratch lists reused by every delivery (no allocation per item)
        self._kept: list[tuple[int | None, str, object, float | None, int]] = []
        self._dues: list[int] = []
        self._waiting: set[str] = set()
        #: bursts played out so far (the reader decoded in between): for tests and benchmarks
        self.bursts = 0

    # ------------------------------------------------------------ FrameSink (queueing)
    def audio(self, samples: np.ndarray, *, device_time_s: float | None, host_ns: int) -> None:
        """Queue an audio block for delivery at `host_ns`."""
        due = host_ns + len(samples) * 1_000_000_000 // self.sample_rate
        self._put(due, "audio", samples, device_time_s, host_ns)

    def video(self, frame: np.ndarray, *, device_time_s: float | None, host_ns: int) -> None:
        """Queue a video frame for delivery at `host_ns`."""
        self._put(host_ns, "video", frame, device_time_s, host_ns)

    def status(self, status: SourceStatus) -> None:
        """Queue a status, delivered right after the frames queued before it."""
        self._queue.append((None, "status", status, None, 0))

    def _put(self, due: int, kind: str, data: np.ndarray, dev: float | None, host: int) -> None:
        self._queue.append((due, kind, data, dev, host))
        if self._last_ns is None or due > self._last_ns:
            self._last_ns = due

    # ------------------------------------------------------------ delivery
    def pump(self) -> bool:
        """Deliver what is due; once `high_s` is buffered, play out down to `low_s`.

        Returns False when the stop flag was set while waiting (the rest is dropped,
        as frame-by-frame pacing would not have delivered it either).
        """
        now = self.clock()
        if self._last_ns is None or self._last_ns - now < self.high_ns:
            self._deliver_due(now)
            return True
        self.bursts += 1
        return self._play_out(lambda: self._last_ns - self.clock() > self.low_ns)

    def finish(self) -> bool:
        """Play out everything still queued (end of file, or before raising a read error)."""
        return self._play_out(lambda: True)

    def _deliver_due(self, now: int) -> None:
        """Deliver every item due by `now`, each modality in its order, a status once
        everything queued before it is out. An audio block is due after the frame that
        follows its first sample (once its last sample is captured), so the queue is not
        in due order across modalities, only within each."""
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
                waiting.add(kind)
                kept.append(item)
                continue
            self._deliver(*item[1:])
        queue.extendleft(reversed(kept))
        kept.clear()

    def _wake_at(self) -> int | None:
        """When to wake next: when the earliest item is due, or when the last of the items
        due within the slack after it is, so that one wake-up serves them all (None: only
        statuses are queued)."""
        dues = self._dues
        dues.clear()
        for due, kind, *_ in self._queue:
            if kind == "status":
                break  # what follows a status waits for what comes before it
            dues.append(due)
        if not dues:
            return None
        first = min(dues)
        return max(d for d in dues if d - first <= WAKE_SLACK_NS)

    def _play_out(self, more: Callable[[], bool]) -> bool:
        queue = self._queue
        while queue and more():
            target = self._wake_at()
            if target is not None:
                # sleep to the items' time, never earlier (a wait may return a little early)
                while (left := target - self.clock()) > 0:
                    if self.stopping.wait(left / 1e9 + 1e-4):
                        return False
            self._deliver_due(self.clock())
        if not queue:
            self._last_ns = None
        return not self.stopping.is_set()

    def _deliver(self, kind: str, data: object, dev: float | None, host_ns: int) -> None:
        if kind == "status":
            self.sink.status(data)  # type: ignore[arg-type]
        elif kind == "audio":
            self.sink.audio(data, device_time_s=dev, host_ns=host_ns)  # type: ignore[arg-type]
        else:
            self.sink.video(data, device_time_s=dev, host_ns=host_ns)  # type: ignore[arg-type]
