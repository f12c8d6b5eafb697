"""Features of the content sync model, in numpy: the same code for training and at run time.

Video: each frame becomes a small grey image (`FRAME_SIZE` square, area-averaged), and the
model sees a stack of `STACK` consecutive ones, standardised together (brightness and
contrast do not matter, motion does). Audio: a log-mel column every 10 ms (25 ms window,
`N_MELS` bands, dB against full scale, clipped at -80 dB and scaled to about unit range),
and the model sees `AUDIO_COLS` columns centred on the instant it is asked about.

A column c is centred at c * hop (s) from the first sample pushed; a frame stack centred at
frame i is centred at that frame's time. Pairing stack i with the audio window centred at
t_i + lag is what the model scores.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

FRAME_SIZE = 32
STACK = 5
N_MELS = 40
AUDIO_COLS = 20
HOP_S = 0.010
WIN_S = 0.025


def gray_small(image: np.ndarray, out: np.ndarray) -> np.ndarray:
    """An image (H, W, 3) BGR uint8, (C, H, W) or (H, W) float, area-averaged to `out`."""
    if image.ndim == 3 and image.shape[-1] == 3 and image.dtype == np.uint8:
        g = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32) * (1 / 255)
    elif image.ndim == 3:
        g = image.mean(axis=0, dtype=np.float32)
    else:
        g = image.astype(np.float32, copy=False)
    cv2.resize(g, (FRAME_SIZE, FRAME_SIZE), dst=out, interpolation=cv2.INTER_AREA)
    return out


def standardise_stacks(stacks: np.ndarray) -> np.ndarray:
    """(n, STACK, S, S) stacks, each standardised over all its pixels, in place."""
    flat = stacks.reshape(stacks.shape[0], -1)
    flat -= flat.mean(axis=1, keepdims=True)
    flat /= flat.std(axis=1, keepdims=True) + 1e-3
    return stacks


class LogMel:
    """Log-mel columns of a mono signal at `sample_rate`, one every 10 ms.

    Args:
        sample_rate: audio rate (the filters are built for it; 8 kHz and up).
    """

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.hop = int(round(sample_rate * HOP_S))
        self.win = int(round(sample_rate * WIN_S))
        self.n_fft = 1 << math.ceil(math.log2(self.win))
        self.window = np.hanning(self.win).astype(np.float32)
        self.filters = _mel_filters(sample_rate, self.n_fft, N_MELS)

    def columns(self, x: np.ndarray) -> np.ndarray:
        """(N_MELS, n) columns of `x`; column k covers x[k*hop : k*hop + win]."""
        n = 0 if len(x) < self.win else 1 + (len(x) - self.win) // self.hop
        if n == 0:
            return np.zeros((N_MELS, 0), np.float32)
        idx = np.arange(self.win)[None, :] + self.hop * np.arange(n)[:, None]
        frames = x[idx] * self.window
        spec = np.abs(np.fft.rfft(frames, self.n_fft, axis=1)) ** 2
        mel = spec.astype(np.float32) @ self.filters.T  # (n, N_MELS)
        db = 10 * np.log10(mel * (4.0 / self.win**2) + 1e-8)
        return ((np.maximum(db, -80.0) + 40.0) / 20.0).T.astype(np.float32)


def _mel_filters(rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Triangular mel filters (n_mels, n_fft // 2 + 1), 60 Hz to min(7600, rate / 2)."""

    def mel(f: np.ndarray) -> np.ndarray:
        return 2595 * np.log10(1 + f / 700)

    def hz(m: np.ndarray) -> np.ndarray:
        return 700 * (10 ** (m / 2595) - 1)

    edges = hz(np.linspace(mel(np.array(60.0)), mel(np.array(min(7600.0, rate / 2))), n_mels + 2))
    freqs = np.linspace(0, rate / 2, n_fft // 2 + 1)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None, :] - lo) / (mid - lo)
    down = (hi - freqs[None, :]) / (hi - mid)
    return np.maximum(0, np.minimum(up, down)).astype(np.float32)


def audio_windows(cols: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """(n, N_MELS, AUDIO_COLS) windows of `cols` centred on column indices `centres`
    (columns outside `cols` read as silence)."""
    half = AUDIO_COLS // 2
    idx = centres[:, None] + np.arange(-half, AUDIO_COLS - half)[None, :]
    pad = np.full((N_MELS, cols.shape[1] + 2 * AUDIO_COLS), -2.0, np.float32)
    pad[:, AUDIO_COLS : AUDIO_COLS + cols.shape[1]] = cols
    return np.ascontiguousarray(
        pad[:, np.clip(idx + AUDIO_COLS, 0, pad.shape[1] - 1)].transpose(1, 0, 2)
    )


__all__ = [
    "AUDIO_COLS",
    "FRAME_SIZE",
    "HOP_S",
    "N_MELS",
    "STACK",
    "LogMel",
    "audio_windows",
    "gray_small",
    "standardise_stacks",
]
