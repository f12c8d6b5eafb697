"""Log-mel of a few frames at a time in numba: the path for streaming hops.

The block path (numba_fft.py) puts one frame in each SIMD lane, so it needs many frames
to fill the lanes; a live stream adds only ~3 new frames per video frame. Here the
m = n_fft/2 point complex FFT of each frame is split four-step style, m = n1 * n2:

    1. n2 interleaved FFTs of n1 points (z[n2 * r + c] over r), lanes = (frame, c)
    2. twiddle by W_m^(c * k1) in place, then transpose to rows c
    3. n1 FFTs of n2 points over c, lanes = (frame, k1)

so even one frame fills n2 (or n1) lanes, and both FFT passes run the vectorised
stage code of numba_stages.py. X[k1 + n1 * k2] then sits at row pos(k2), lane
(frame, pos(k1)); the real split reads Z[k] and Z[m - k] through precomputed positions
once for both X[k] and X[m - k], each mel filter is a register sum over its own bins,
and the log (libm log2) runs over all values of the block in one loop.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from avfuse.kernels import numba_stages as st

__all__ = ["FRAME_PATH_BELOW", "make_tables", "scratch_size", "small_block"]

#: runs of fewer frames than this take this path
FRAME_PATH_BELOW = 8

# Index with unsigned integers in the hot loops: numba wraps negative signed indices,
# and that select makes LLVM treat a contiguous run as a gather (2-3x slower loops).
U = np.uint64


def _split(m: int) -> tuple[int, int]:
    bits = m.bit_length() - 1
    n1 = 1 << (bits // 2)
    return n1, m // n1


def _order(size: int, fft_tabs: tuple[np.ndarray, ...]) -> np.ndarray:
    """Frequency held by each output row of the in-place `st.fft` of `size` points."""
    re = np.zeros((size, 1), np.float32)
    im = np.zeros((size, 1), np.float32)
    re[1 % size, 0] = 1.0
    if size > 1:
        st.fft(re, im, *fft_tabs)
    ang = np.angle(re[:, 0].astype(np.float64) + 1j * im[:, 0])
    return np.round(-ang * size / (2 * np.pi)).astype(np.int64) % size


def make_tables(m: int, fft_tabs: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(float32 twiddles, int64 positions) of the four-step split of an m-point FFT."""
    n1, n2 = _split(m)
    ord1, ord2 = _order(n1, fft_tabs), _order(n2, fft_tabs)
    tw = np.exp(-2j * np.pi * np.arange(n2)[None, :] * ord1[:, None] / m)  # (n1, n2)
    pos1 = np.argsort(ord1)  # lane of frequency k1
    pos2 = np.argsort(ord2)  # row of frequency k2
    k = np.arange(m + 1) % m  # X[k], k = k1 + n1 k2, sits at row pos2[k2], lane pos1[k1]
    si = np.concatenate([[n1, n2], pos2[k // n1], pos1[k % n1]]).astype(np.int64)
    return np.concatenate([tw.real.ravel(), tw.imag.ravel()]).astype(np.float32), si


def scratch_size(m: int, n_mels: int, frames: int) -> int:
    """float32 values of scratch `small_block` needs for `frames` frames."""
    return (4 * m + n_mels) * frames


@nb.njit(cache=True, boundscheck=False)
def small_block(x, start, count, hop, t, sf, si, consts, scratch, out, col):  # pragma: no cover
    """Frames start..start+count-1 of x into out[:, col:col+count]; t: numba_fft.unpack."""
    win = t[0]
    post_re = t[9]
    post_im = t[10]
    mel_w = t[11]
    mel_lo = t[13]
    mel_len = t[14]
    n1 = si[0]
    n2 = si[1]
    m = n1 * n2
    s1 = si[2 : 3 + m]
    r1 = si[3 + m : 4 + 2 * m]
    twr = sf[: n1 * n2].reshape((n1, n2))
    twi = sf[n1 * n2 :].reshape((n1, n2))
    n_mels = out.shape[0]
    size = m * count
    a_re = scratch[:size].reshape((n1, n2 * count))
    a_im = scratch[size : 2 * size].reshape((n1, n2 * count))
    b_re = scratch[2 * size : 3 * size].reshape((n2, n1 * count))
    b_im = scratch[3 * size : 4 * size].reshape((n2, n1 * count))
    mel = scratch[4 * size : 4 * size + n_mels * count]
    for r in range(n1):  # 1. load z[n2 * r + c] of every frame into row r
        for f in range(count):
            base = (start + f) * hop + 2 * n2 * r
            wb = 2 * n2 * r
            o = f * n2
            for c in range(n2):
                a_re[r, U(o + c)] = x[U(base + 2 * c)] * win[U(wb + 2 * c)]
                a_im[r, U(o + c)] = x[U(base + 2 * c + 1)] * win[U(wb + 2 * c + 1)]
    st.fft(a_re, a_im, t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8])
    for r in range(n1):  # 2a. twiddle in place (contiguous, vectorised)
        for f in range(count):
            o = f * n2
            for c in range(n2):
                ar = a_re[r, U(o + c)]
                ai = a_im[r, U(o + c)]
                wr = twr[r, c]
                wi = twi[r, c]
                a_re[r, U(o + c)] = ar * wr - ai * wi
                a_im[r, U(o + c)] = ar * wi + ai * wr
    for c in range(n2):  # 2b. transpose: b[c, (f, r)] = a[r, (f, c)]
        for f in range(count):
            fo = f * n1
            src = f * n2 + c
            for r in range(n1):
                b_re[c, U(fo + r)] = a_re[r, U(src)]
                b_im[c, U(fo + r)] = a_im[r, U(src)]
    st.fft(b_re, b_im, t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8])  # 3.
    pw = scratch[: (m + 1) * count]  # power in natural bin order, frame after frame
    lanes = n1 * count
    b_rf = b_re.reshape(size)
    b_if = b_im.reshape(size)
    for f in range(count):  # real split, X[k] and X[m - k] from the same Z[k], Z[m - k]
        fo = f * n1
        po = f * (m + 1)
        for k in range(m // 2 + 1):
            ia = U(s1[k] * lanes + r1[k] + fo)
            ib = U(s1[m - k] * lanes + r1[m - k] + fo)
            zr = b_rf[ia]
            zi = b_if[ia]
            yr = b_rf[ib]
            yi = -b_if[ib]
            er = st.HALF * (zr + yr)
            ei = st.HALF * (zi + yi)
            dr = st.HALF * (zr - yr)
            di = st.HALF * (zi - yi)
            cr = post_re[k]
            ci = post_im[k]
            pr = dr * cr - di * ci  # P = c_k D_k; X[k] = E - iP, X[m-k] = conj(E) - i conj(P)
            pi_ = dr * ci + di * cr
            xr = er + pi_
            xi = ei - pr
            pw[U(po + k)] = xr * xr + xi * xi
            xr = er - pi_
            xi = ei + pr
            pw[U(po + m - k)] = xr * xr + xi * xi
    floor = consts[0]
    for f in range(count):  # mel: independent register sums per filter
        po = f * (m + 1)
        for q in range(n_mels):
            lo = po + mel_lo[q]
            acc = st.F0
            for j in range(mel_len[q]):
                acc += mel_w[q, j] * pw[U(lo + j)]
            mel[q * count + f] = max(acc, floor)
    total = n_mels * count
    scale = consts[1]
    offset = consts[2]
    for i in range(total):  # log over all values at once
        mel[i] = math.log2(mel[i]) * scale - offset
    for q in range(n_mels):
        for f in range(count):
            out[q, U(col + f)] = mel[U(q * count + f)]
