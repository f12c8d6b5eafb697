"""Speech for talking-mouth scenes: phrases from espeak-ng, flite or festival.

Training speaks with espeak-ng's training voices (`avfuse.data.speech.voices_for`); the
held-out test speaks with flite and festival voices, which no model here trains on, so a
figure measured on them says how the correspondence generalises to a voice it never heard.
A scene is phrases of a few words separated by pauses (the mouth rests, as a speaker's does).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from avfuse.data.speech import DIGIT_WORDS, FILLER_WORDS, VoiceConfig, synthesize, voices_for
from avfuse.errors import DataError

SAMPLE_RATE = 16000
#: flite voices and festival (its default voice) make the held-out test voices
TEST_VOICES = ("flite:slt", "flite:awb", "flite:rms", "flite:kal16", "festival:default")
_WORDS = DIGIT_WORDS + FILLER_WORDS


def train_voices(n: int, seed: int = 0) -> list[VoiceConfig]:
    """`n` espeak-ng voice configurations drawn from the training split's voices."""
    pairs = voices_for("train")
    rng = np.random.default_rng([seed, 505])
    out = []
    for k in rng.integers(0, len(pairs), n):
        base, variant = pairs[int(k)]
        out.append(VoiceConfig(base, variant, int(rng.uniform(130, 200)), int(rng.uniform(30, 70))))
    return out


def _read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        rate, raw = w.getframerate(), w.readframes(w.getnframes())
    x = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    if rate != SAMPLE_RATE:
        g = np.gcd(rate, SAMPLE_RATE)
        x = resample_poly(x, SAMPLE_RATE // g, rate // g).astype(np.float32)
    return x


def speak(text: str, voice: str | VoiceConfig) -> np.ndarray:
    """`text` spoken by `voice` (an espeak-ng VoiceConfig, "flite:NAME" or "festival:default"),
    float32 mono at 16 kHz."""
    if isinstance(voice, VoiceConfig):
        return synthesize(text, voice)
    engine, _, name = voice.partition(":")
    tool = {"flite": "flite", "festival": "text2wave"}.get(engine)
    if tool is None or shutil.which(tool) is None:
        raise DataError(f"speech voice {voice!r} needs {tool or engine}: apt-get install {engine}")
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "s.wav"
        if engine == "flite":
            cmd = [tool, "-voice", name, "-t", text, "-o", str(out)]
            proc = subprocess.run(cmd, capture_output=True, check=False)
        else:
            cmd = [tool, "-o", str(out)]
            proc = subprocess.run(cmd, input=text.encode(), capture_output=True, check=False)
        if proc.returncode != 0 or not out.exists():
            raise DataError(f"{tool} failed for {voice!r}: {proc.stderr.decode()[:200]}")
        return _read_wav(out)


def phrase_text(rng: np.random.Generator) -> str:
    """Three to six random words."""
    return " ".join(_WORDS[int(k)] for k in rng.integers(0, len(_WORDS), rng.integers(3, 7)))


def speech_scene(
    phrases: list[np.ndarray],
    duration_s: float,
    *,
    seed: int = 0,
    pause_s: tuple[float, float] = (0.3, 1.2),
    level_db: tuple[float, float] = (-12.0, -3.0),
    noise_dbfs: float = -60.0,
) -> np.ndarray:
    """`duration_s` of speech at 16 kHz: phrases drawn from `phrases` with pauses between."""
    if not phrases:
        raise DataError("speech_scene needs at least one phrase: synthesize some first")
    rng = np.random.default_rng([seed, 77])
    n = int(duration_s * SAMPLE_RATE)
    out = (rng.standard_normal(n) * 10 ** (noise_dbfs / 20)).astype(np.float32)
    pos = int(rng.uniform(*pause_s) * SAMPLE_RATE)
    while pos < n:
        p = phrases[int(rng.integers(0, len(phrases)))]
        peak = float(np.abs(p).max()) or 1.0
        gain = 10 ** (rng.uniform(*level_db) / 20) / peak
        seg = p[: n - pos] * gain
        out[pos : pos + len(seg)] += seg
        pos += len(seg) + int(rng.uniform(*pause_s) * SAMPLE_RATE)
    return out


__all__ = ["SAMPLE_RATE", "TEST_VOICES", "phrase_text", "speak", "speech_scene", "train_voices"]
