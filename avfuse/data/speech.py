"""Spoken digits from espeak-ng: voice discovery, synthesis and a split's utterance pool.

Synthesis runs espeak-ng once per word (it writes 22.05 kHz WAV to stdout), resamples to
16 kHz and trims leading/trailing silence. A split's pool is every digit spoken by each of
a seeded set of voice configurations (base+variant, speed, pitch) drawn from that split's
voices only, plus a few non-digit words for babble noise; samples then mix from the pool.
"""

from __future__ import annotations

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.signal import resample_poly

from avfuse.data.config import (
    DataConfig,
    check_trainable,
    split_index,
    split_of_variant,
    voice_bases_for,
)
from avfuse.errors import DataError

__all__ = [
    "DIGIT_WORDS",
    "FILLER_WORDS",
    "SAMPLE_RATE",
    "UtterancePool",
    "VoiceConfig",
    "build_pool",
    "espeak_version",
    "list_variants",
    "synthesize",
    "trim_silence",
    "voices_for",
]

SAMPLE_RATE = 16000
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
#: Non-digit words for babble; none of them sounds like a digit (no "for", "to", "ate").
FILLER_WORDS = (
    "hello",
    "yes",
    "okay",
    "what",
    "table",
    "window",
    "music",
    "please",
    "thanks",
    "coffee",
    "left",
    "right",
    "maybe",
    "again",
    "water",
    "little",
    "morning",
    "people",
    "open",
    "quiet",
)
_FILLERS_PER_VOICE = 3


def _espeak() -> str:
    path = shutil.which("espeak-ng")
    if path is None:
        raise DataError("espeak-ng is not installed: apt-get install espeak-ng")
    return path


@lru_cache(maxsize=1)
def espeak_version() -> str:
    """espeak-ng's version string (part of the data-set version key)."""
    out = subprocess.run([_espeak(), "--version"], capture_output=True, text=True, check=False)
    return out.stdout.split("Data at")[0].strip() or "unknown"


@lru_cache(maxsize=1)
def list_variants() -> tuple[str, ...]:
    """espeak-ng voice variant names (``espeak-ng --voices=variant``), sorted."""
    out = subprocess.run(
        [_espeak(), "--voices=variant"], capture_output=True, text=True, check=False
    )
    names = [
        ln.split()[4].removeprefix("!v/")
        for ln in out.stdout.splitlines()[1:]
        if len(ln.split()) >= 5
    ]
    return tuple(sorted(set(names)))


@dataclass(frozen=True)
class VoiceConfig:
    """One espeak-ng voice setting: base voice, variant ("" for none), speed and pitch."""

    base: str
    variant: str
    speed: int
    pitch: int

    @property
    def name(self) -> str:
        """The ``-v`` argument, e.g. ``en-029+Storm``; also the sample's voice label."""
        return f"{self.base}+{self.variant}" if self.variant else self.base


def voices_for(split: str) -> tuple[tuple[str, str], ...]:
    """(base, variant) pairs of a split: its own bases with its own variants."""
    base_split = "test" if split == "test_low_snr" else split
    variants = [v for v in ("", *list_variants()) if split_of_variant(v) == base_split]
    return tuple((b, v) for b in voice_bases_for(split) for v in variants)


def trim_silence(x: np.ndarray, *, threshold_db: float = -55.0, margin: int = 160) -> np.ndarray:
    """Cut leading/trailing parts quieter than ``threshold_db`` below the loudest 10 ms."""
    frame = 160
    n = len(x) // frame
    if n == 0:
        return x
    energy = (x[: n * frame].reshape(n, frame).astype(np.float64) ** 2).mean(axis=1)
    active = np.flatnonzero(energy > energy.max() * 10 ** (threshold_db / 10))
    if active.size == 0:
        return x[:0]
    start = max(0, active[0] * frame - margin)
    stop = min(len(x), (active[-1] + 1) * frame + margin)
    return x[start:stop]


def synthesize(word: str, voice: VoiceConfig) -> np.ndarray:
    """Speak one word: float32 mono at 16 kHz in [-1, 1], silence trimmed."""
    cmd = [
        _espeak(),
        "-v",
        voice.name,
        "-s",
        str(voice.speed),
        "-p",
        str(voice.pitch),
        "--stdout",
        word,
    ]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    raw = proc.stdout
    pos = raw.find(b"data")
    if proc.returncode != 0 or pos < 0:
        raise DataError(
            f"espeak-ng failed for voice {voice.name!r}: "
            f"{proc.stderr.decode(errors='replace').strip()}; check the voice "
            "with espeak-ng --voices"
        )
    pcm = np.frombuffer(raw[pos + 8 : pos + 8 + (len(raw) - pos - 8) // 2 * 2], dtype="<i2")
    x = resample_poly(pcm.astype(np.float32) / 32768.0, 320, 441).astype(np.float32)
    return trim_silence(x)


@dataclass(frozen=True)
class UtterancePool:
    """A split's synthesized words.

    Attributes:
        digits: per voice configuration, the 10 digit utterances (int16, 16 kHz).
        voices: voice configuration of each row of ``digits``.
        fillers: non-digit words (int16, 16 kHz) from the same voices, for babble noise.
    """

    digits: list[list[np.ndarray]]
    voices: list[VoiceConfig]
    fillers: list[np.ndarray]


def _draw_voices(split: str, n: int, config: DataConfig) -> list[VoiceConfig]:
    pairs = voices_for(split)
    rng = np.random.default_rng([config.seed, split_index(split), 7001])
    weights = dict(config.train_base_weights) if split == "train" else {}
    if weights:  # a base's share of the pool, spread evenly over its variants
        per_base = {b: sum(1 for pb, _ in pairs if pb == b) for b, _ in pairs}
        w = np.array([weights.get(b, 1.0) / per_base[b] for b, _ in pairs])
        order = rng.choice(len(pairs), size=n, p=w / w.sum())
    else:
        order = np.concatenate([rng.permutation(len(pairs)) for _ in range(n // len(pairs) + 1)])
    out = []
    for k in order[:n]:
        base, variant = pairs[int(k)]
        speed = int(rng.uniform(*config.speed_range))
        pitch = int(rng.uniform(*config.pitch_range))
        out.append(VoiceConfig(base, variant, speed, pitch))
    return out


def _to_int16(x: np.ndarray) -> np.ndarray:
    peak = float(np.abs(x).max()) if x.size else 0.0
    scale = 0.9 / peak if peak > 0 else 1.0
    return np.round(x * scale * 32767).astype(np.int16)


def build_pool(split: str, config: DataConfig, *, progress: bool = False) -> UtterancePool:
    """Synthesize a split's utterance pool (in ``config.workers`` parallel espeak-ng runs)."""
    check_trainable(config)
    voices = _draw_voices(split, config.voices_of(split), config)
    rng = np.random.default_rng([config.seed, split_index(split), 7002])
    jobs: list[tuple[str, VoiceConfig]] = []
    for v in voices:
        zero = "zero" if rng.random() < 0.85 else "oh"
        jobs += [(zero if d == 0 else DIGIT_WORDS[d], v) for d in range(10)]
        picks = rng.choice(len(FILLER_WORDS), _FILLERS_PER_VOICE, replace=False)
        jobs += [(FILLER_WORDS[int(k)], v) for k in picks]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc=f"espeak-ng {split}", unit="word", leave=False)
    results: list[np.ndarray] = []
    with ThreadPoolExecutor(max_workers=max(1, config.workers)) as ex:
        for x in ex.map(lambda j: _to_int16(synthesize(*j)), jobs):
            results.append(x)
            if bar is not None:
                bar.update()
    if bar is not None:
        bar.close()
    per = 10 + _FILLERS_PER_VOICE
    digits = [results[i * per : i * per + 10] for i in range(len(voices))]
    fillers = [r for i in range(len(voices)) for r in results[i * per + 10 : (i + 1) * per]]
    return UtterancePool(digits=digits, voices=voices, fillers=fillers)
