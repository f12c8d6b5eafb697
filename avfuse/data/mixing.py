"""One AV-digits audio window: a spoken digit, degraded and mixed with noise at a chosen SNR.

Speech is warped (vocal-tract length and tempo, by resampling), equalised, reverberated
in a synthetic room and placed at a random onset inside the 1 s window (the word always
fits). Noise is coloured (1/f^a, a in [0, 2]: white to brown), babble, hum or a mixture,
sometimes modulated, with non-speech events (beeps, clicks, knocks) in speech and "none"
samples alike, so an event is no cue. The SNR is speech power over the word's span against
noise power over the window. Every sample is scaled to a random RMS level, so loudness is
no cue either.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import fftconvolve, resample_poly

from avfuse.data.config import DataConfig
from avfuse.data.speech import SAMPLE_RATE, UtterancePool

__all__ = ["WINDOW", "AudioParts", "render_audio"]

WINDOW = SAMPLE_RATE  # 1.0 s


@dataclass(frozen=True)
class AudioParts:
    """A rendered window and its parts (float32, before int16 conversion).

    Attributes:
        mixture: int16 window, what the sample stores.
        speech: the speech part at its final scale (zeros for "none").
        noise: the noise part at its final scale.
        span: (start, stop) samples of the dry word inside the window ((0, 0) for "none").
        snr_db: the SNR the mixture was built at (nan for "none").
    """

    mixture: np.ndarray
    speech: np.ndarray
    noise: np.ndarray
    span: tuple[int, int]
    snr_db: float


def _eq(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random smooth EQ over log-frequency, sometimes a telephone band."""
    n = 1 << int(np.ceil(np.log2(len(x) + 1)))
    spec = np.fft.rfft(x, n)
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    points = np.log(np.geomspace(50, SAMPLE_RATE / 2, 7))
    gain_db = np.interp(np.log(np.maximum(freqs, 50)), points, rng.normal(0, 6, 7))
    if rng.random() < 0.15:
        lo, hi = rng.uniform(150, 400), rng.uniform(3000, 4500)
        gain_db -= 30 * ((freqs < lo) | (freqs > hi))
    return np.fft.irfft(spec * 10 ** (gain_db / 20), n)[: len(x)].astype(np.float32)


def _reverb(x: np.ndarray, rng: np.random.Generator, config: DataConfig) -> np.ndarray:
    """Convolve with an exponential-decay room impulse response."""
    rt60 = rng.uniform(*config.rt60_range)
    n = int(min(rt60, 0.6) * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    tail = rng.normal(0, 1, n) * np.exp(-6.9 * t / rt60)
    tail[: int(rng.uniform(0.002, 0.012) * SAMPLE_RATE)] = 0.0
    drr_db = rng.uniform(-3, 12)  # direct-to-reverberant ratio
    tail *= 10 ** (-drr_db / 20) / max(float(np.sqrt((tail**2).sum())), 1e-9)
    tail[0] = 1.0
    return fftconvolve(x, tail)[: len(x) + n].astype(np.float32)


def _coloured(rng: np.random.Generator, n: int) -> np.ndarray:
    alpha = rng.uniform(0, 2)
    spec = np.fft.rfft(rng.normal(0, 1, n))
    f = np.maximum(np.fft.rfftfreq(n, 1 / SAMPLE_RATE), 20.0)
    return np.fft.irfft(spec / f ** (alpha / 2), n).astype(np.float32)


def _babble(rng: np.random.Generator, pool: UtterancePool) -> np.ndarray:
    out = np.zeros(WINDOW, np.float32)
    for _ in range(int(rng.integers(3, 8))):
        if rng.random() < 0.5:
            x = pool.fillers[int(rng.integers(len(pool.fillers)))]
        else:  # a reversed digit is speech-like but no digit
            row = pool.digits[int(rng.integers(len(pool.digits)))]
            x = row[int(rng.integers(10))][::-1]
        x = x.astype(np.float32) / 32768.0
        start = int(rng.integers(-len(x) // 2, WINDOW))
        a, b = max(0, start), min(WINDOW, start + len(x))
        if b > a:
            out[a:b] += x[a - start : b - start] * rng.uniform(0.3, 1.0)
    return out


def _hum(rng: np.random.Generator) -> np.ndarray:
    t = np.arange(WINDOW) / SAMPLE_RATE
    f0 = rng.choice([50.0, 60.0, rng.uniform(80, 400)])
    harm = rng.uniform(0, 1, 6) / np.arange(1, 7)
    return sum(
        h * np.sin(2 * np.pi * f0 * (k + 1) * t + rng.uniform(0, 6.3)) for k, h in enumerate(harm)
    ).astype(np.float32)


def _event(rng: np.random.Generator) -> np.ndarray:
    """A non-speech sound: a beep, a click train or a knock."""
    out = np.zeros(WINDOW, np.float32)
    n = int(rng.uniform(0.03, 0.3) * SAMPLE_RATE)
    start = int(rng.integers(0, WINDOW - n))
    t = np.arange(n) / SAMPLE_RATE
    kind = rng.integers(0, 3)
    if kind == 0:
        sig = np.sin(2 * np.pi * rng.uniform(300, 3000) * t)
    elif kind == 1:
        sig = np.zeros(n)
        sig[:: max(1, int(rng.uniform(0.005, 0.04) * SAMPLE_RATE))] = 1.0
    else:
        sig = rng.normal(0, 1, n) * np.exp(-t / rng.uniform(0.005, 0.05))
    out[start : start + n] = sig
    return out


def _noise(rng: np.random.Generator, pool: UtterancePool) -> np.ndarray:
    kind = rng.choice(5, p=[0.15, 0.35, 0.25, 0.1, 0.15])
    if kind == 0:
        x = rng.normal(0, 1, WINDOW).astype(np.float32)
    elif kind == 1:
        x = _coloured(rng, WINDOW)
    elif kind == 2:
        x = _babble(rng, pool)
    elif kind == 3:
        x = _hum(rng) + 0.1 * _coloured(rng, WINDOW)
    else:
        c, b = _coloured(rng, WINDOW), _babble(rng, pool)
        x = c / _rms(c) + b / _rms(b) * rng.uniform(0.3, 1.5)
    if rng.random() < 0.3:  # non-stationary: a smooth level envelope
        env = np.interp(np.arange(WINDOW), np.linspace(0, WINDOW, 6), rng.uniform(0.2, 1.5, 6))
        x = x * env.astype(np.float32)
    x = x / _rms(x)
    if rng.random() < 0.25:
        e = _event(rng)
        x = x + e / _rms(e) * rng.uniform(0.3, 2.0)
    return (x / _rms(x)).astype(np.float32)  # unit RMS, so the SNR is exact


def _rms(x: np.ndarray) -> float:
    return max(float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))), 1e-9)


def _speech(
    utt: np.ndarray, rng: np.random.Generator, config: DataConfig
) -> tuple[np.ndarray, tuple[int, int]]:
    """Warp, fit, equalise, reverberate and place a word; return it and its dry span."""
    x = utt.astype(np.float32) / 32768.0
    warp = rng.uniform(*config.warp_range)
    x = resample_poly(x, 40, int(round(40 * warp))).astype(np.float32)
    limit = int(0.95 * WINDOW)
    if len(x) > limit:  # the word must fit the window: speed it up to fit
        down = int(np.ceil(40 * len(x) / limit))  # small ratio: a short polyphase filter
        x = resample_poly(x, 40, down).astype(np.float32)[:limit]
    if rng.random() < config.eq_prob:
        x = _eq(x, rng)
    dry_len = len(x)
    if rng.random() < config.reverb_prob:
        x = _reverb(x, rng, config)
    onset = int(rng.integers(0, WINDOW - dry_len + 1))
    out = np.zeros(WINDOW, np.float32)
    seg = x[: WINDOW - onset]
    out[onset : onset + len(seg)] = seg
    return out, (onset, onset + dry_len)


def render_audio(
    utterance: np.ndarray | None,
    rng: np.random.Generator,
    config: DataConfig,
    pool: UtterancePool,
    *,
    snr_db: float | None = None,
) -> AudioParts:
    """Render one window. ``utterance`` None makes a "none" (noise-only) window.

    ``snr_db`` overrides the drawn SNR without changing any other random draw, so the
    test_low_snr split has exactly the test split's speech and noise.
    """
    drawn_snr = rng.uniform(*config.snr_db_range)
    snr = drawn_snr if snr_db is None else snr_db
    level_db = rng.uniform(*config.level_dbfs_range)
    noise = _noise(rng, pool)
    if utterance is None:
        speech, span, snr = np.zeros(WINDOW, np.float32), (0, 0), float("nan")
    else:
        speech, span = _speech(utterance, rng, config)
        p_s = np.mean(np.square(speech[span[0] : span[1]], dtype=np.float64))
        speech = speech / np.float32(np.sqrt(p_s))  # unit power over the word
        noise = noise * np.float32(10 ** (-snr / 20))
    total = speech + noise
    gain = np.float32(10 ** (level_db / 20) / _rms(total))
    speech, noise = speech * gain, noise * gain
    pcm = np.clip(np.round((speech + noise) * 32767), -32768, 32767).astype(np.int16)
    return AudioParts(mixture=pcm, speech=speech, noise=noise, span=span, snr_db=float(snr))
