"""SIMD-across-frames stages of the numba log-mel: data laid out `z[row, lane]`.

Each stage is its own compiled function and reads its lane count from the array shape
at run time: LLVM vectorises the lane loops of a small function (with run-time alias
checks), while one large fused body, or a constant trip count (fully unrolled, and
numba disables the SLP vectoriser), ends up scalar. numba_fft.py runs these stages with
one lane per frame; numba_frame.py runs the same FFT with one lane per (frame,
sub-sequence) so that even a single frame fills the SIMD lanes.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

__all__ = ["fft", "load", "log", "log2_poly", "mel", "power"]

# float32 constants: a float64 literal would promote the SIMD loops to float64
F0 = np.float32(0.0)
HALF = np.float32(0.5)
ONE = np.float32(1.0)
TWO = np.float32(2.0)
SQRT2 = np.float32(math.sqrt(2.0))
LOG2E = np.float32(1.0 / math.log(2.0))
C3 = np.float32(2.0 / 3.0)
C5 = np.float32(2.0 / 5.0)
C7 = np.float32(2.0 / 7.0)
C9 = np.float32(2.0 / 9.0)


@nb.njit(cache=True, boundscheck=False, inline="always")
def log2_poly(mv, ex):  # pragma: no cover - compiled
    """log2 of mantissa mv in [1, 2) plus exponent ex: 2 atanh(s)/ln 2 with s = (v-1)/(v+1).

    The mantissa is first folded to [sqrt(1/2), sqrt(2)), so |s| < 0.172 and five series
    terms give a relative error below 1e-7.
    """
    big = mv > SQRT2
    mv = mv * HALF if big else mv
    ex = ex + (ONE if big else F0)
    s = (mv - ONE) / (mv + ONE)
    s2 = s * s
    return ex + s * (TWO + s2 * (C3 + s2 * (C5 + s2 * (C7 + s2 * C9)))) * LOG2E


@nb.njit(cache=True, boundscheck=False)
def load(x, start, count, hop, win, re, im):  # pragma: no cover - compiled
    """Frame + window as z[k] = x[2k] + i x[2k+1]; lanes past count repeat the last frame."""
    blk = re.shape[1]
    for k in range(re.shape[0]):
        w0 = win[2 * k]
        w1 = win[2 * k + 1]
        for f in range(blk):
            base = (start + min(f, count - 1)) * hop + 2 * k
            re[k, f] = x[base] * w0
            im[k, f] = x[base + 1] * w1


@nb.njit(cache=True, boundscheck=False)
def fft(re, im, tw_re, tw_im, t1r, t1i, t2r, t2i, t3r, t3i):  # pragma: no cover - compiled
    """In-place complex FFT along rows of every lane (output order: see make_plan's pairs)."""
    m = re.shape[0]
    blk = re.shape[1]
    size = m
    lg = 0
    t = m
    while t > 1:
        t //= 2
        lg += 1
    if lg % 2 == 1:  # one radix-2 stage first
        h = m // 2
        for j in range(h):
            wr = tw_re[h + j]
            wi = tw_im[h + j]
            for f in range(blk):
                ar = re[j, f]
                ai = im[j, f]
                br = re[j + h, f]
                bi = im[j + h, f]
                re[j, f] = ar + br
                im[j, f] = ai + bi
                dr = ar - br
                di = ai - bi
                re[j + h, f] = dr * wr - di * wi
                im[j + h, f] = dr * wi + di * wr
        size = h
    q = size // 4
    while q >= 1:
        for s in range(0, m, 4 * q):
            for j in range(q):
                w1r = t1r[q + j]
                w1i = t1i[q + j]
                w2r = t2r[q + j]
                w2i = t2i[q + j]
                w3r = t3r[q + j]
                w3i = t3i[q + j]
                a0 = s + j
                a1 = a0 + q
                a2 = a1 + q
                a3 = a2 + q
                for f in range(blk):
                    x0r = re[a0, f]
                    x0i = im[a0, f]
                    x1r = re[a1, f]
                    x1i = im[a1, f]
                    x2r = re[a2, f]
                    x2i = im[a2, f]
                    x3r = re[a3, f]
                    x3i = im[a3, f]
                    t0r = x0r + x2r
                    t0i = x0i + x2i
                    u1r = x0r - x2r
                    u1i = x0i - x2i
                    s2r = x1r + x3r
                    s2i = x1i + x3i
                    s3r = x1i - x3i  # -i (x1 - x3)
                    s3i = x3r - x1r
                    re[a0, f] = t0r + s2r
                    im[a0, f] = t0i + s2i
                    yr = u1r + s3r
                    yi = u1i + s3i
                    re[a1, f] = yr * w1r - yi * w1i
                    im[a1, f] = yr * w1i + yi * w1r
                    yr = t0r - s2r
                    yi = t0i - s2i
                    re[a2, f] = yr * w2r - yi * w2i
                    im[a2, f] = yr * w2i + yi * w2r
                    yr = u1r - s3r
                    yi = u1i - s3i
                    re[a3, f] = yr * w3r - yi * w3i
                    im[a3, f] = yr * w3i + yi * w3r
        q //= 4


@nb.njit(cache=True, boundscheck=False)
def power(re, im, pairs, post_re, post_im, pw):  # pragma: no cover - compiled
    """Split the half-size complex FFT into the real FFT's power spectrum pw[k, lane]."""
    m = re.shape[0]
    blk = re.shape[1]
    for k in range(m + 1):
        k1 = pairs[k, 0]
        k2 = pairs[k, 1]
        cr = post_re[k]
        ci = post_im[k]
        for f in range(blk):
            zr = re[k1, f]
            zi = im[k1, f]
            yr = re[k2, f]
            yi = -im[k2, f]
            er = HALF * (zr + yr)
            ei = HALF * (zi + yi)
            dr = HALF * (zr - yr)
            di = HALF * (zi - yi)
            pr = dr * cr - di * ci  # X = E - i c D
            pi_ = dr * ci + di * cr
            xr = er + pi_
            xi = ei - pr
            pw[k, f] = xr * xr + xi * xi


@nb.njit(cache=True, boundscheck=False)
def mel(pw, mel_lo, mel_w, floor, mel):  # pragma: no cover - compiled
    """Sparse triangular filters: mel[q, lane] = max(sum_t w[q, t] pw[lo_q + t, lane], floor)."""
    blk = pw.shape[1]
    for q in range(mel.shape[0]):
        lo = mel_lo[q]
        for f in range(blk):
            mel[q, f] = F0
        for t in range(mel_w.shape[1]):
            wt = mel_w[q, t]
            if wt != F0:
                for f in range(blk):
                    mel[q, f] += wt * pw[lo + t, f]
        for f in range(blk):
            mel[q, f] = max(mel[q, f], floor)


@nb.njit(cache=True, boundscheck=False)
def log(mel, tmp, scale, offset, out, col, count):  # pragma: no cover - compiled
    """out[q, col + lane] = log2(mel) * scale - offset, vectorised (no libm call).

    log2(v) = exponent + log2(mantissa), the mantissa taken to [sqrt(1/2), sqrt(2)) and
    log(mantissa) = 2 atanh(s), s = (v - 1)/(v + 1), |s| < 0.172: five series terms give
    a relative error below 1e-7, under float32 rounding of the dB values.
    """
    blk = mel.shape[1]
    ibits = mel.view(np.int32)
    for q in range(mel.shape[0]):
        for f in range(blk):
            ib = ibits[q, f]
            tmp[q, f] = np.float32(((ib >> 23) & 0xFF) - 127)
            ibits[q, f] = (ib & 0x7FFFFF) | 0x3F800000
        for f in range(blk):
            mv = mel[q, f]
            big = mv > SQRT2
            mv = mv * HALF if big else mv
            ex = tmp[q, f] + (ONE if big else F0)
            s = (mv - ONE) / (mv + ONE)
            s2 = s * s
            series = s * (TWO + s2 * (C3 + s2 * (C5 + s2 * (C7 + s2 * C9))))
            mel[q, f] = (ex + series * LOG2E) * scale - offset
        for f in range(count):
            out[q, col + f] = mel[q, f]
