"""Rings of the content sync monitor: small frames and log-mel columns with their embeddings.

Both keep what arrived in preallocated arrays indexed by an ever-growing count (slot =
count % capacity), with each item's stream time, so the monitor can ask for the items
not yet embedded and for every embedded item of a recent window. Column times come from
the pushes' own timestamps (the pipeline's audio clock), not from a nominal rate: a
drifting device stays on the stream's time line.
"""

from __future__ import annotations

import math

import numpy as np

from avfuse.engine.content_features import AUDIO_COLS, FRAME_SIZE, N_MELS, LogMel

EMBED = 32
#: log-mel value (scaled) of a column quieter than about -65 dBFS in every band
_SILENT = -1.25


class FrameRing:
    """The last `capacity` small grey frames, their times and embeddings."""

    def __init__(self, *, capacity: int) -> None:
        self.capacity = capacity
        self.frames = np.zeros((capacity, FRAME_SIZE, FRAME_SIZE), np.float32)
        self.times = np.zeros(capacity)
        self.emb = np.zeros((capacity, EMBED), np.float32)
        self.n = 0
        self.next_embed = 0
        self.out_of_order = 0

    def push(self, t: float, small: np.ndarray) -> None:
        """Copy a frame taken at `t`; one not later than the last is counted and skipped."""
        if self.n and t <= self.times[(self.n - 1) % self.capacity]:
            self.out_of_order += 1
            return
        k = self.n % self.capacity
        np.copyto(self.frames[k], small)
        self.times[k] = t
        self.n += 1

    def pending(self, half: int) -> np.ndarray:
        """Frames whose stack (half either side) has arrived and that have no embedding."""
        lo = max(self.next_embed, self.n - self.capacity + half, half)
        return np.arange(lo, max(lo, self.n - half))

    def stacks(self, idx: np.ndarray, stack: int) -> np.ndarray:
        """(len(idx), stack, S, S) frames centred on `idx` (a copy)."""
        offs = np.arange(stack) - stack // 2
        return self.frames[(idx[:, None] + offs[None, :]) % self.capacity]

    def set_embeddings(self, idx: np.ndarray, v: np.ndarray) -> None:
        self.emb[idx % self.capacity] = v
        self.next_embed = int(idx[-1]) + 1

    def _embedded_idx(self) -> np.ndarray:
        return np.arange(max(0, self.n - self.capacity + 2), self.next_embed)

    def embedded(self, window_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Times and embeddings of the embedded frames of the last `window_s`."""
        idx = self._embedded_idx()
        if idx.size == 0:
            return np.zeros(0), np.zeros((0, EMBED), np.float32)
        t = self.times[idx % self.capacity]
        idx = idx[t >= t[-1] - window_s]
        return self.times[idx % self.capacity], self.emb[idx % self.capacity]

    def rate(self) -> float:
        """Frames per second over the ring (0 before two frames)."""
        m = min(self.n, self.capacity)
        if m < 2:
            return 0.0
        t1 = self.times[(self.n - 1) % self.capacity]
        t0 = self.times[(self.n - m) % self.capacity]
        return (m - 1) / (t1 - t0) if t1 > t0 else 0.0

    def motion(self, t_from: float) -> float:
        """How much the picture moves since `t_from`: the 99th percentile over pixels of
        their standard deviation in time, over the frames' mean spatial spread."""
        idx = np.arange(max(0, self.n - self.capacity), self.n)
        idx = idx[self.times[idx % self.capacity] >= t_from]
        if idx.size < 2:
            return 0.0
        f = self.frames[idx % self.capacity]
        spread = float(f.reshape(idx.size, -1).std(axis=1).mean())
        return float(np.percentile(f.std(axis=0), 99)) / (spread + 1e-3)


class AudioColumns:
    """Audio pushed in (overlapping) blocks, turned into log-mel columns with times.

    Args:
        mel: the column maker.
        capacity_cols: columns kept.
        max_push_s: longest block pushed at once.
    """

    def __init__(self, mel: LogMel, *, capacity_cols: int, max_push_s: float) -> None:
        self.mel = mel
        self.rate = mel.sample_rate
        self.capacity = capacity_cols
        self.cols = np.zeros((capacity_cols, N_MELS), np.float32)
        self.times = np.zeros(capacity_cols)
        self.emb = np.zeros((capacity_cols, EMBED), np.float32)
        self.n = 0
        self.next_embed = 0
        self._buf = np.zeros(int(max_push_s * self.rate) + 2 * mel.win, np.float32)
        self._fill = 0  # samples in _buf not yet consumed by a column
        self._t_last = -math.inf  # time of the newest sample pushed
        self.resets = 0

    def push(self, t_end: float, samples: np.ndarray) -> None:
        """Samples whose last one is at `t_end`; those already seen are skipped."""
        n = samples.shape[0]
        new = n if self._t_last == -math.inf else int(round((t_end - self._t_last) * self.rate))
        if new <= 0:
            return
        if new > n:  # samples never arrived: the columns restart after the gap
            self.resets += 1
            self._fill = 0
            new = n
        new = min(new, self._buf.size - self.mel.win)
        if self._fill + new > self._buf.size:
            self.update()
        self._buf[self._fill : self._fill + new] = samples[n - new :]
        self._fill += new
        self._t_last = t_end

    def update(self) -> None:
        """Turn every complete column in the buffer into a column of the ring."""
        mel = self.mel
        cols = mel.columns(self._buf[: self._fill])
        k = cols.shape[1]
        if k == 0:
            return
        # column j covers buf[j*hop : j*hop + win]; its centre is that many samples
        # before the newest sample
        centres = np.arange(k) * mel.hop + mel.win / 2
        t = self._t_last - (self._fill - 1 - centres) / self.rate
        slots = np.arange(self.n, self.n + k) % self.capacity
        self.cols[slots] = cols.T
        self.times[slots] = t
        self.n += k
        used = k * mel.hop
        rest = self._fill - used
        self._buf[:rest] = self._buf[used : self._fill].copy()
        self._fill = rest

    def pending(self, half: int) -> np.ndarray:
        """Columns with `half` columns after them that have no embedding."""
        lo = max(self.next_embed, self.n - self.capacity + half)
        return np.arange(lo, max(lo, self.n - half))

    def windows(self, idx: np.ndarray) -> np.ndarray:
        """(len(idx), N_MELS, AUDIO_COLS) windows centred on columns `idx` (silence before
        the first column)."""
        half = AUDIO_COLS // 2
        j = idx[:, None] + np.arange(-half, AUDIO_COLS - half)[None, :]
        w = self.cols[j % self.capacity]
        w[j < 0] = -2.0
        return np.ascontiguousarray(w.transpose(0, 2, 1))

    def set_embeddings(self, idx: np.ndarray, a: np.ndarray) -> None:
        self.emb[idx % self.capacity] = a
        self.next_embed = int(idx[-1]) + 1

    def embedded(self) -> tuple[np.ndarray, np.ndarray]:
        """Times and embeddings of every embedded column still held."""
        idx = np.arange(max(0, self.n - self.capacity + AUDIO_COLS), self.next_embed)
        return self.times[idx % self.capacity], self.emb[idx % self.capacity]

    def has_sound(self, t0: float, t1: float) -> bool:
        """Whether any column between `t0` and `t1` is louder than about -65 dBFS."""
        idx = np.arange(max(0, self.n - self.capacity), self.n)
        t = self.times[idx % self.capacity]
        sel = idx[(t >= t0) & (t <= t1)]
        return bool(sel.size) and float(self.cols[sel % self.capacity].max()) > _SILENT


__all__ = ["EMBED", "AudioColumns", "FrameRing"]
