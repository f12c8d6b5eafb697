"""Batched real FFT + mel + log in numba: the compute core of the numba log-mel kernel.

Why a hand-written FFT: a DFT as a matrix product does ~25x the arithmetic of an FFT,
and calling numpy/pocketfft per frame pays Python overhead per frame. Here frames are
processed in blocks laid out frame-innermost (`z[bin, lane]`, one lane per frame), so
every butterfly is a SIMD loop over frames (stages in numba_stages.py) and the mel/log
stages write the (n_mels, frames) output layout directly. Runs of fewer than 8 frames
(streaming hops) take the four-step path of numba_frame.py instead.

This module holds the tables (`make_plan`, packed into a few arrays because every array
argument costs dispatch time), the drivers for one signal, a batch, and one streaming
step (`stream_window`: transform new hops into the mel ring, mirror, copy out).

Development note: numba's on-disk cache (cache=True) keys a function on its own source
file only, so after editing numba_stages.py or numba_frame.py delete
avfuse/kernels/__pycache__/*.nbi and *.nbc, or callers here keep the old code.

The real FFT of n_fft points is one complex FFT of n_fft/2 points on
z[m] = x[2m] + i x[2m+1] (radix-4 decimation in frequency, one radix-2 stage first when
log2(n_fft/2) is odd) followed by the standard split step. The log is a vectorisable
log2 (exponent bits + atanh series) instead of a libm call per value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba as nb
import numpy as np

from avfuse.kernels import numba_frame as small
from avfuse.kernels import numba_stages as st
from avfuse.kernels import reference as ref

__all__ = [
    "MAX_LANES",
    "Plan",
    "lanes_for",
    "log_mel_batch",
    "log_mel_into",
    "make_plan",
    "scratch_size",
    "stream_window",
    "unpack",
]

U = small.U  # unsigned indices: no negative-index select in the hot loops

#: most frames per block; 64 lanes of the largest stage array stay within L2
MAX_LANES = 64

_DB_PER_LOG2 = 10.0 * math.log10(2.0)


@dataclass(frozen=True)
class Plan:
    """Precomputed tables for one AudioParams.

    Attributes:
        n_fft, hop, n_mels: the transform's sizes.
        ftab: float32 tables, see `_tables` for the layout.
        itab: int64 tables: rows of the FFT output feeding bin k (m+1, 2), first bin and
            number of bins of each mel filter.
        consts: float32 [log_floor, dB-per-log2 / std, mean / std].
        small_f, small_i: tables of the few-frames path (numba_frame.make_tables).
    """

    n_fft: int
    hop: int
    n_mels: int
    ftab: np.ndarray
    itab: np.ndarray
    consts: np.ndarray
    small_f: np.ndarray
    small_i: np.ndarray


def lanes_for(frames: int) -> int:
    """Frames per block for `frames` frames: balanced blocks of at most MAX_LANES."""
    blocks = -(-frames // MAX_LANES)
    return -(-frames // blocks)


def make_plan(params: ref.AudioParams) -> Plan:
    """Tables for `params`; n_fft must be a power of two >= 8."""
    n = params.n_fft
    if n < 8 or n & (n - 1):
        raise ValueError(f"numba log-mel needs n_fft a power of two >= 8, got {n}")
    m = n // 2
    tw = np.zeros(m, np.complex128)  # radix-2 stage: [h + j] = exp(-2 pi i j / 2h)
    h = 1
    while h < m:
        tw[h : 2 * h] = np.exp(-2j * np.pi * np.arange(h) / (2 * h))
        h *= 2
    t1 = np.zeros(m, np.complex128)  # radix-4 stage with quarter q: [q + j] = w^j, w^2j, w^3j
    t2 = np.zeros(m, np.complex128)
    t3 = np.zeros(m, np.complex128)
    q = 1
    while 2 * q <= m:
        w = np.exp(-2j * np.pi * np.arange(q) / (4 * q))
        t1[q : 2 * q], t2[q : 2 * q], t3[q : 2 * q] = w, w**2, w**3
        q *= 4
    post = np.exp(-2j * np.pi * np.arange(m + 1) / n)
    fb = ref.mel_filterbank(params.sample_rate, n, params.n_mels, params.fmin, params.fmax)
    nz = [np.flatnonzero(row) for row in fb]
    lo = np.array([idx[0] if idx.size else 0 for idx in nz], np.int64)
    width = max(1, max((idx[-1] - idx[0] + 1) if idx.size else 0 for idx in nz))
    mel_w = np.zeros((params.n_mels, width), np.float64)
    for i, idx in enumerate(nz):
        if idx.size:
            seg = fb[i, idx[0] : idx[-1] + 1]
            mel_w[i, : seg.size] = seg
    lengths = np.array([(idx[-1] - idx[0] + 1) if idx.size else 0 for idx in nz], np.int64)
    parts = [ref.hann_window(params.win_length, n)]
    parts += [a for c in (tw, t1, t2, t3) for a in (c.real, c.imag)]
    parts += [post.real, post.imag, mel_w.ravel()]
    ftab = np.concatenate(parts).astype(np.float32)
    # output order of the in-place FFT, read off the transform of a unit impulse at n=1
    re = np.zeros((m, 1), np.float32)
    im = np.zeros((m, 1), np.float32)
    re[1, 0] = 1.0
    itab = np.concatenate([np.zeros(2 * (m + 1), np.int64), lo, lengths])
    st.fft(re, im, *unpack(ftab, itab, n, params.n_mels)[1:9])
    perm = np.empty(m, np.int64)
    perm[np.round(-np.angle(re[:, 0] + 1j * im[:, 0]) * m / (2 * np.pi)).astype(int) % m] = (
        np.arange(m)
    )
    # rows of X[k] and X[m - k] for the real split, k = 0..m (no modulo in the hot loops)
    k = np.arange(m + 1)
    itab[: 2 * (m + 1)] = np.stack([perm[k % m], perm[(m - k) % m]], axis=1).ravel()
    small_f, small_i = small.make_tables(m, unpack(ftab, itab, n, params.n_mels)[1:9])
    consts = np.array(
        [params.log_floor, _DB_PER_LOG2 / params.std, params.mean / params.std], np.float32
    )
    return Plan(
        n_fft=n,
        hop=params.hop_length,
        n_mels=params.n_mels,
        ftab=ftab,
        itab=itab,
        consts=consts,
        small_f=small_f,
        small_i=small_i,
    )


@nb.njit(cache=True)
def unpack(ftab, itab, n, n_mels):  # pragma: no cover - compiled
    """Views of the packed tables, by index: 0 win, 1-8 FFT twiddles (radix-2 re/im, radix-4
    w, w^2, w^3 re/im), 9 post_re, 10 post_im, 11 mel_w (n_mels, width), 12 pairs (m+1, 2),
    13 first bin of each mel filter, 14 number of bins of each mel filter."""
    m = n // 2
    o = n + 8 * m
    w0 = o + 2 * (m + 1)
    width = (ftab.shape[0] - w0) // n_mels
    p = 2 * (m + 1)
    return (
        ftab[:n],
        ftab[n : n + m], ftab[n + m : n + 2 * m],
        ftab[n + 2 * m : n + 3 * m], ftab[n + 3 * m : n + 4 * m],
        ftab[n + 4 * m : n + 5 * m], ftab[n + 5 * m : n + 6 * m],
        ftab[n + 6 * m : n + 7 * m], ftab[n + 7 * m : n + 8 * m],
        ftab[o : o + m + 1], ftab[o + m + 1 : w0],
        ftab[w0:].reshape((n_mels, width)),
        itab[:p].reshape((m + 1, 2)), itab[p : p + n_mels], itab[p + n_mels : p + 2 * n_mels],
    )  # fmt: skip


@nb.njit(cache=True, boundscheck=False)
def log_mel_into(x, n, hop, n_mels, ftab, itab, consts, sf, si, scratch, lanes, out,
                 col):  # fmt: skip  # pragma: no cover - compiled
    """Every whole frame of the 1-D float32 signal x into out[:, col:col + frames] (serial).

    Runs of fewer than numba_frame.FRAME_PATH_BELOW frames take the few-frames path
    (four-step FFT, SIMD across sub-sequences), longer ones the block path (SIMD across
    frames).
    scratch: float32 1-D of `scratch_size` values.
    """
    m = n // 2
    frames = (x.shape[0] - n) // hop + 1
    t = unpack(ftab, itab, n, n_mels)
    win = t[0]
    post_re = t[9]
    post_im = t[10]
    mel_w = t[11]
    pairs = t[12]
    mel_lo = t[13]
    if frames < small.FRAME_PATH_BELOW:
        small.small_block(x, 0, frames, hop, t, sf, si, consts, scratch, out, col)
        return
    rows = max(m + 1, n_mels)
    for b0 in range(0, frames, lanes):
        cnt = min(lanes, frames - b0)
        blk = lanes if cnt == lanes else cnt
        re = scratch[: m * blk].reshape((m, blk))
        im = scratch[m * blk : 2 * m * blk].reshape((m, blk))
        pw = scratch[2 * m * blk : (2 * m + rows) * blk].reshape((rows, blk))
        mel = scratch[(2 * m + rows) * blk : (2 * m + rows + n_mels) * blk].reshape((n_mels, blk))
        st.load(x, b0, cnt, hop, win, re, im)
        st.fft(re, im, t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8])
        st.power(re, im, pairs, post_re, post_im, pw)
        st.mel(pw, mel_lo, mel_w, consts[0], mel)
        st.log(mel, pw, consts[1], consts[2], out, col + b0, cnt)


@nb.njit(cache=True, parallel=True)
def log_mel_batch(x, n, hop, n_mels, ftab, itab, consts, sf, si, scratch, lanes,
                  out):  # fmt: skip  # pragma: no cover - compiled
    """Batch x (B, n) -> out (B, n_mels, frames); rows split over workers in parallel.

    scratch: (workers, size) float32, one `log_mel_into` scratch per worker.
    """
    workers = scratch.shape[0]
    batch = x.shape[0]
    for wk in nb.prange(workers):
        for b in range(wk, batch, workers):
            log_mel_into(x[b], n, hop, n_mels, ftab, itab, consts, sf, si, scratch[wk], lanes,
                         out[b], 0)  # fmt: skip


def scratch_size(plan: Plan, lanes: int) -> int:
    """float32 values of scratch `log_mel_into` needs for blocks of `lanes` frames."""
    m = plan.n_fft // 2
    few = small.scratch_size(m, plan.n_mels, small.FRAME_PATH_BELOW - 1)
    return max((3 * m + 2 + 2 * plan.n_mels) * lanes, few)


@nb.njit(cache=True, boundscheck=False)
def stream_window(samples, j0, count, col, cap, n, hop, n_mels, ftab, itab, consts, sf, si,
                  scratch, ring, out, first):  # fmt: skip  # pragma: no cover - compiled
    """One StreamingLogMel step in a single call: transform window frames j0..j0+count-1
    into the doubled mel ring at column `col`, mirror them, copy ring[:, first:first+F] out.
    """
    if count > 0:
        chunk = samples[j0 * hop : (j0 + count - 1) * hop + n]
        blocks = (count + MAX_LANES - 1) // MAX_LANES
        lanes = (count + blocks - 1) // blocks
        log_mel_into(chunk, n, hop, n_mels, ftab, itab, consts, sf, si, scratch, lanes, ring, col)
        for q in range(n_mels):
            for c in range(col, col + count):
                ring[q, U(c + cap if c < cap else c - cap)] = ring[q, U(c)]
    frames = out.shape[1]
    for q in range(n_mels):  # unsigned index: no negative-index select, so a plain copy
        for f in range(frames):
            out[q, f] = ring[q, U(first + f)]
