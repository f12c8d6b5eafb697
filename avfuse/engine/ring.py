"""Preallocated timestamped ring buffers between capture threads and the pipeline.

Both rings are single-producer/single-consumer and allocate nothing after
construction: writes copy into the storage made by the constructor, and the
producer publishes its progress by assigning one integer (`head`), which is
atomic under the GIL, so neither side ever takes a lock. A reader that raced
with the writer detects it by re-reading `head` after its copy (a sequence-lock
check) and reports the overwritten part as missing instead of returning torn data.

`SampleRing` holds audio addressed by absolute sample index (index 0 is the first
sample of the stream). A write that starts beyond the head leaves a hole: those
samples read back as zeros and are reported missing, never invented.
`FrameRing` holds video frames in fixed slots with their host time and a sequence
number; the oldest frame is overwritten when the consumer falls behind and the
loss is counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class ReadResult:
    """What a `SampleRing.read` found.

    Attributes:
        valid_samples: samples of the request that were captured and still held.
        first_valid: absolute index of the first valid sample, -1 when none.
        last_valid: absolute index of the last valid sample, -1 when none.
        requested: samples asked for.
    """

    valid_samples: int
    first_valid: int
    last_valid: int
    requested: int

    @property
    def missing(self) -> int:
        """Samples read back as zeros: holes, not yet captured, or already overwritten."""
        return self.requested - self.valid_samples

    @property
    def coverage(self) -> float:
        """Fraction of the request that is valid, in [0, 1]."""
        return self.valid_samples / self.requested if self.requested else 0.0


class SampleRing:
    """Audio samples addressed by absolute index, with holes and overwrite-oldest.

    Args:
        capacity: samples held (older ones are overwritten).
        dtype: sample type (float32 mono by the Source contract).
    """

    def __init__(self, *, capacity: int, dtype: np.dtype | type = np.float32) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.capacity = int(capacity)
        self._buf = np.zeros(self.capacity, dtype=dtype)
        self._valid = np.zeros(self.capacity, dtype=np.bool_)
        #: one past the newest written index; published last by the writer
        self.head = 0
        self._reserved = 0  # the head being written (published first: the seqlock's counter)
        #: samples lost to writes larger than the ring or never read before overwrite
        self.overruns = 0
        #: reads that asked for samples already overwritten
        self.late_reads = 0
        #: samples of holes written (gaps in capture)
        self.gap_samples = 0

    @property
    def tail(self) -> int:
        """Oldest index still held."""
        return max(0, self.head - self.capacity)

    def _fill(self, start: int, stop: int, src: np.ndarray | None) -> None:
        """Write src (or a hole when None) to absolute [start, stop); stop - start <= capacity."""
        cap = self.capacity
        i0 = start % cap
        n = stop - start
        first = min(n, cap - i0)
        if src is None:
            self._buf[i0 : i0 + first] = 0
            self._valid[i0 : i0 + first] = False
            if n > first:
                self._buf[: n - first] = 0
                self._valid[: n - first] = False
            return
        self._buf[i0 : i0 + first] = src[:first]
        self._valid[i0 : i0 + first] = True
        if n > first:
            self._buf[: n - first] = src[first:n]
            self._valid[: n - first] = True

    def write(self, samples: np.ndarray, start_index: int) -> None:
        """Copy `samples` to [start_index, start_index + len); a start past `head` leaves a hole.

        Raises:
            ValueError: `start_index` is before `head` (a write never rewrites the past).
        """
        head = self.head
        if start_index < head:
            raise ValueError(f"write at {start_index} is before the ring head {head}")
        n = samples.shape[0]
        cap = self.capacity
        self._reserved = start_index + n
        gap = start_index - head
        if gap:
            self.gap_samples += gap
            hole_start = max(head, start_index + n - cap)
            if hole_start < start_index:
                self._fill(hole_start, start_index, None)
        if n > cap:
            self.overruns += n - cap
            samples = samples[n - cap :]
            start_index += n - cap
            n = cap
        self._fill(start_index, start_index + n, samples)
        self.head = start_index + n

    def read(self, start_index: int, out: np.ndarray) -> ReadResult:
        """Copy [start_index, start_index + len(out)) into `out`; what is missing reads 0."""
        n = out.shape[0]
        stop = start_index + n
        head = self.head
        lo = max(start_index, head - self.capacity, 0)
        hi = min(stop, head)
        if lo >= hi:
            out[:] = 0
            if start_index < head - self.capacity:
                self.late_reads += 1
            return ReadResult(valid_samples=0, first_valid=-1, last_valid=-1, requested=n)
        if lo > start_index:
            out[: lo - start_index] = 0
        if hi < stop:
            out[hi - start_index :] = 0
        cap = self.capacity
        i0 = lo % cap
        m = hi - lo
        first = min(m, cap - i0)
        o = lo - start_index
        out[o : o + first] = self._buf[i0 : i0 + first]
        valid = int(np.count_nonzero(self._valid[i0 : i0 + first]))
        if m > first:
            out[o + first : o + m] = self._buf[: m - first]
            valid += int(np.count_nonzero(self._valid[: m - first]))
        # sequence-lock check: did the writer overwrite the start of what we copied?
        new_tail = self._reserved - self.capacity
        if new_tail > lo:
            torn = min(new_tail, hi) - lo
            out[o : o + torn] = 0
            valid = max(0, valid - torn)
            lo = min(new_tail, hi)
            self.late_reads += 1
        elif start_index < head - self.capacity:
            self.late_reads += 1
        if valid == 0:
            return ReadResult(valid_samples=0, first_valid=-1, last_valid=-1, requested=n)
        first_valid = self._scan(lo, hi, forward=True)
        last_valid = self._scan(lo, hi, forward=False)
        return ReadResult(
            valid_samples=valid, first_valid=first_valid, last_valid=last_valid, requested=n
        )

    def _scan(self, lo: int, hi: int, *, forward: bool) -> int:
        """First (or last) valid absolute index in [lo, hi), -1 when none."""
        cap = self.capacity
        i0 = lo % cap
        m = hi - lo
        first = min(m, cap - i0)
        parts = ((lo, self._valid[i0 : i0 + first]), (lo + first, self._valid[: m - first]))
        if not forward:
            parts = parts[::-1]
        for base, seg in parts:
            if seg.shape[0] == 0:
                continue
            if forward:
                k = int(seg.argmax())
                if seg[k]:
                    return base + k
            else:
                k = int(seg[::-1].argmax())
                if seg[seg.shape[0] - 1 - k]:
                    return base + seg.shape[0] - 1 - k
        return -1

    def level_dbfs(self, start_index: int, stop_index: int) -> float:
        """RMS level of held samples in [start, stop) in dBFS (-120 when silent or absent)."""
        head = self.head
        lo, hi = max(start_index, head - self.capacity, 0), min(stop_index, head)
        if lo >= hi:
            return -120.0
        cap = self.capacity
        i0 = lo % cap
        m = hi - lo
        first = min(m, cap - i0)
        a = self._buf[i0 : i0 + first]
        acc = float(np.dot(a, a))
        if m > first:
            b = self._buf[: m - first]
            acc += float(np.dot(b, b))
        ms = acc / m
        return -120.0 if ms <= 1e-12 else max(-120.0, 10.0 * float(np.log10(ms)))


class FrameRing:
    """Video frames in preallocated slots with host time and a sequence number.

    The producer writes frame `seq = head` into slot `seq % slots` and then bumps
    `head`. The consumer takes frames in order with `take()`; frames it never
    took before they were overwritten are counted in `overruns`.

    Args:
        slots: frames held.
        shape: shape of every frame (the source's declared format).
        dtype: pixel type.
    """

    def __init__(
        self, *, slots: int, shape: tuple[int, ...], dtype: np.dtype | type = np.uint8
    ) -> None:
        if slots < 2:
            raise ValueError("a frame ring needs at least 2 slots")
        self.slots = int(slots)
        self.shape = tuple(shape)
        self._data = np.zeros((self.slots, *self.shape), dtype=dtype)
        self._host = np.zeros(self.slots, np.int64)  # stream-clock host ns (fitted)
        self._base = np.zeros(self.slots, np.int64)  # latency origin ns (capture or arrival)
        self._seq = np.full(self.slots, -1, np.int64)
        #: sequence number of the next frame to be written
        self.head = 0
        #: next sequence number the consumer will take
        self.next_seq = 0
        #: every frame with seq < released may be overwritten (non-live back-pressure)
        self.released = 0
        #: frames overwritten before the consumer took them
        self.overruns = 0

    def write(self, frame: np.ndarray, *, host_ns: int, base_ns: int) -> int:
        """Copy `frame` into the next slot; returns its sequence number.

        Raises:
            ValueError: the frame's shape differs from the ring's.
        """
        if frame.shape != self.shape:
            raise ValueError(f"frame shape {frame.shape} differs from the stream's {self.shape}")
        seq = self.head
        slot = seq % self.slots
        self._seq[slot] = -1  # mark torn while copying
        np.copyto(self._data[slot], frame)
        self._host[slot] = host_ns
        self._base[slot] = base_ns
        self._seq[slot] = seq
        self.head = seq + 1
        return seq

    @property
    def unreleased(self) -> int:
        """Frames written but not yet released by the consumer."""
        return self.head - self.released

    def take(self) -> int:
        """Sequence number of the next unread frame (oldest first), or -1 when none.

        Frames lost to overwrite since the last call are added to `overruns`.
        """
        head = self.head
        oldest = head - self.slots + 1  # the slot of `head - slots` may be mid-write
        if self.next_seq < oldest:
            self.overruns += oldest - self.next_seq
            self.next_seq = oldest
        if self.next_seq >= head:
            return -1
        seq = self.next_seq
        self.next_seq = seq + 1
        return seq

    def latest(self) -> int:
        """Sequence number of the newest frame, or -1 when none."""
        return self.head - 1

    def nearest(self, host_ns: int) -> int:
        """Sequence number of the held frame whose host time is nearest `host_ns`, or -1."""
        best, best_d = -1, None
        for slot in range(self.slots):
            s = int(self._seq[slot])
            if s < 0:
                continue
            d = abs(int(self._host[slot]) - host_ns)
            if best_d is None or d < best_d:
                best, best_d = s, d
        return best

    def valid(self, seq: int) -> bool:
        """True while frame `seq` is still held intact (call after reading a view)."""
        return seq >= 0 and int(self._seq[seq % self.slots]) == seq

    def view(self, seq: int) -> np.ndarray:
        """The slot holding `seq` (no copy); check `valid(seq)` after using it."""
        return self._data[seq % self.slots]

    def host_ns(self, seq: int) -> int:
        """Stream-clock host time of frame `seq`."""
        return int(self._host[seq % self.slots])

    def base_ns(self, seq: int) -> int:
        """Latency origin of frame `seq` (capture time for live sources, arrival for files)."""
        return int(self._base[seq % self.slots])

    def read(self, seq: int, out: np.ndarray) -> bool:
        """Copy frame `seq` into `out`; False (and `out` undefined) when it was overwritten."""
        if not self.valid(seq):
            return False
        np.copyto(out, self._data[seq % self.slots])
        return self.valid(seq)

    def release(self, seq: int) -> None:
        """Frames up to and including `seq` are no longer needed by the consumer."""
        if seq + 1 > self.released:
            self.released = seq + 1


__all__ = ["FrameRing", "ReadResult", "SampleRing"]
