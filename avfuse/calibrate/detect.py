"""Finding the pattern's flashes in the picture and its beeps in the sound.

Flashes. A frame's mean brightness jumps from the dark level to the bright one and
falls back within `MAX_FLASH_S`; the onset is the first frame at least half-way up,
timed by that frame's timestamp (a flash cannot be timed inside a frame). The levels
are the recording's own (its median and its brightest frames), so a camera filming a
monitor, whose white is grey, works too, provided the contrast is `MIN_CONTRAST` of
full scale. A frame that follows a hole in the frame times is not an onset: the flash
may have begun in a frame that never arrived.

Beeps. The sound is shifted down by the tone frequency and averaged over `CYCLES` of
the tone (a boxcar that removes the shifted-up image exactly when the rate is a
multiple of the tone): the result's magnitude is the tone's amplitude, rising linearly
over the boxcar at an onset. A beep is a rise to a plateau at least `MIN_SNR_DB` over
the floor, `MIN_TONALITY` of whose power is in the tone (speech or music near 1 kHz is
not a beep), lasting `MIN_BEEP_S`..`MAX_BEEP_S`. Its onset is where the magnitude
crosses half-way from the floor before it to its plateau, interpolated between
samples, less half the boxcar and half the pattern's 1 ms rise (`RAMP_S`): the time the
tone began, to a fraction of a sample on clean audio.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: the beep's rise and fall (s): a raised cosine, so the onset is sharp without a click
RAMP_S = 0.001
#: least difference of bright and dark frame brightness (fraction of full scale)
MIN_CONTRAST = 0.25
#: a bright spell longer than this is not a flash (a scene change, a card shown)
MAX_FLASH_S = 0.4
#: least time between two flashes or two beeps (the code's shortest gap is 0.6 s)
REFRACTORY_S = 0.3
#: tone periods the demodulated signal is averaged over
CYCLES = 4
#: least plateau over floor for a beep (dB), and least plateau level (dBFS)
MIN_SNR_DB = 20.0
MIN_LEVEL_DBFS = -50.0
#: least share of the plateau's power that is in the tone
MIN_TONALITY = 0.6
#: beep lengths accepted (s)
MIN_BEEP_S = 0.03
MAX_BEEP_S = 0.45


@dataclass(frozen=True, kw_only=True)
class Flashes:
    """Flash onsets found in a frame sequence.

    Attributes:
        onset_ns: host time of each flash's first bright frame.
        onset_frame: that frame's index in the sequence given.
        dark, bright: the brightness levels seen (0..1).
        frames: frames looked at.
    """

    onset_ns: np.ndarray
    onset_frame: np.ndarray
    dark: float
    bright: float
    frames: int


@dataclass(frozen=True, kw_only=True)
class Beeps:
    """Beep onsets found in a sample sequence.

    Attributes:
        onset_index: fractional sample index of each onset (in the samples given).
        level_dbfs: the plateau level of the loudest beeps (-120 when none).
        floor_dbfs: the tone-band level between beeps.
        candidates: rises seen before the tonality and length checks.
    """

    onset_index: np.ndarray
    level_dbfs: float
    floor_dbfs: float
    candidates: int


def find_flashes(frame_ns: np.ndarray, luma: np.ndarray, *, fps: float) -> Flashes:
    """Flash onsets in frames at host times `frame_ns` (ns) of brightness `luma` (0..1)."""
    n = luma.shape[0]
    none = np.zeros(0, np.int64)
    if n < 3:
        return Flashes(onset_ns=none, onset_frame=none, dark=0.0, bright=0.0, frames=n)
    dark = float(np.median(luma))
    bright = float(np.percentile(luma, 99.5))
    if bright - dark < MIN_CONTRAST:
        return Flashes(onset_ns=none, onset_frame=none, dark=dark, bright=bright, frames=n)
    half = dark + 0.5 * (bright - dark)
    period_ns = 1e9 / fps if fps > 0 else float(np.median(np.diff(frame_ns)))
    onsets: list[int] = []
    frames: list[int] = []
    above = luma >= half
    i = 1
    while i < n:
        if not above[i] or above[i - 1]:
            i += 1
            continue
        end = i
        while end < n and above[end]:
            end += 1
        long = (frame_ns[end - 1] - frame_ns[i]) / 1e9 > MAX_FLASH_S
        whole = end < n  # it fell back before the recording ended
        hole = frame_ns[i] - frame_ns[i - 1] > 1.5 * period_ns
        late = onsets and (frame_ns[i] - onsets[-1]) / 1e9 < REFRACTORY_S
        if whole and not long and not hole and not late:
            onsets.append(int(frame_ns[i]))
            frames.append(i)
        i = end
    return Flashes(
        onset_ns=np.asarray(onsets, np.int64),
        onset_frame=np.asarray(frames, np.int64),
        dark=dark,
        bright=bright,
        frames=n,
    )


def _envelope(x: np.ndarray, rate: int, tone_hz: float) -> tuple[np.ndarray, np.ndarray, int]:
    """(tone magnitude, mean power, boxcar length) at every sample (causal boxcar)."""
    w = max(2, int(round(CYCLES * rate / tone_hz)))
    n = np.arange(x.shape[0])
    z = x.astype(np.float64) * np.exp(-2j * np.pi * tone_hz / rate * n)
    cz = np.concatenate(([0], np.cumsum(z)))
    cp = np.concatenate(([0.0], np.cumsum(x.astype(np.float64) ** 2)))
    mag = np.zeros(x.shape[0])
    power = np.zeros(x.shape[0])
    mag[w - 1 :] = 2.0 * np.abs(cz[w:] - cz[:-w]) / w
    power[w - 1 :] = (cp[w:] - cp[:-w]) / w
    return mag, power, w


def _db(x: float) -> float:
    return float(20.0 * np.log10(max(x, 1e-6)))


def find_beeps(
    samples: np.ndarray, *, rate: int, tone_hz: float = 1000.0, valid: np.ndarray | None = None
) -> Beeps:
    """Beep onsets in mono `samples` at `rate` (see the module docstring).

    Args:
        samples: float mono audio.
        rate: its sample rate.
        tone_hz: the beep's frequency.
        valid: False where a sample is missing; no onset is taken near one.
    """
    none = np.zeros(0)
    if samples.shape[0] < rate // 10:
        return Beeps(onset_index=none, level_dbfs=-120.0, floor_dbfs=-120.0, candidates=0)
    mag, power, w = _envelope(samples, rate, tone_hz)
    floor = float(np.median(mag))
    peak = float(np.percentile(mag, 99.5))
    level, floor_db = _db(peak), _db(floor)
    if level < MIN_LEVEL_DBFS or level - floor_db < MIN_SNR_DB:
        return Beeps(onset_index=none, level_dbfs=level, floor_dbfs=floor_db, candidates=0)
    gate = floor + 0.25 * (peak - floor)
    hot = mag >= gate
    rises = np.flatnonzero(hot[1:] & ~hot[:-1]) + 1
    ramp = RAMP_S * rate
    plateau_n = max(w, int(0.02 * rate))
    before = int(0.05 * rate)
    onsets: list[float] = []
    last_end = -(10**12)
    for c in rises:
        if c < last_end:
            continue
        end = c
        while end < mag.shape[0] and hot[end]:
            end += 1
        last_end = end
        length = (end - c) / rate
        p0, p1 = c + w, c + w + plateau_n
        f0 = max(0, c - before)
        if not MIN_BEEP_S <= length <= MAX_BEEP_S or p1 > mag.shape[0] or c - f0 < w:
            continue
        if valid is not None and not valid[f0 : min(valid.shape[0], end + w)].all():
            continue
        top = float(np.median(mag[p0:p1]))
        if (top**2 / 2.0) < MIN_TONALITY * float(np.median(power[p0:p1])):
            continue  # not a pure tone: most of the power is elsewhere
        base = float(np.median(mag[f0 : c - w // 2]))
        if _db(top) - _db(base) < MIN_SNR_DB:
            continue
        half = base + 0.5 * (top - base)
        k = c - w
        while k < p0 and mag[k] < half:
            k += 1
        if k <= c - w or k >= p0:
            continue
        frac = (half - mag[k - 1]) / (mag[k] - mag[k - 1])
        onset = (k - 1 + frac) - w / 2.0 + 0.5 - ramp / 2.0
        if onsets and (onset - onsets[-1]) / rate < REFRACTORY_S:
            continue
        onsets.append(onset)
    return Beeps(
        onset_index=np.asarray(onsets),
        level_dbfs=level,
        floor_dbfs=floor_db,
        candidates=len(rises),
    )


__all__ = [
    "MAX_FLASH_S",
    "MIN_CONTRAST",
    "RAMP_S",
    "Beeps",
    "Flashes",
    "find_beeps",
    "find_flashes",
]
