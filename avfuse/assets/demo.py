"""Pre-rendered demo material: digit cards, spoken digits and backgrounds.

The demo draws its synthetic scene from these files, so it needs neither espeak-ng nor
scikit-learn nor a network. Cards come only from the AV-digits TEST image sources and
utterances only from TEST voices, so the demo shows the model things it never trained on.
``python -m avfuse.data.make_demo_assets`` regenerates the files deterministically.

Layout of ``avfuse/assets/demo/``::

    cards/<digit>_<k>.png          BGR card images
    utterances/<digit>_<k>.wav     16 kHz mono int16, leading/trailing silence trimmed
    backgrounds/<k>.png            240x320 BGR backgrounds
    sources.json                   which source and voice made each file
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from avfuse.errors import DataError

__all__ = ["DemoAssets", "demo_dir", "load_demo_assets", "read_wav", "write_wav"]


@dataclass(frozen=True)
class DemoAssets:
    """The loaded demo material.

    Attributes:
        cards: digit -> list of (h, w, 3) uint8 BGR card images.
        utterances: digit -> list of float32 mono waveforms in [-1, 1].
        backgrounds: (240, 320, 3) uint8 BGR images.
        sample_rate: sample rate of the utterances (16000).
    """

    cards: dict[int, list[np.ndarray]]
    utterances: dict[int, list[np.ndarray]]
    backgrounds: list[np.ndarray]
    sample_rate: int


def demo_dir() -> Path:
    """Folder holding the demo files."""
    return Path(__file__).resolve().parent / "demo"


def write_wav(path: Path, samples: np.ndarray, sample_rate: int) -> None:
    """Write mono int16 samples as a WAV file."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(np.ascontiguousarray(samples, dtype="<i2").tobytes())


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Read a mono 16-bit WAV file as float32 in [-1, 1] and its sample rate."""
    with wave.open(str(path), "rb") as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise DataError(
                f"{path} is not mono 16-bit PCM; regenerate the demo assets with "
                "python -m avfuse.data.make_demo_assets"
            )
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return pcm.astype(np.float32) / 32768.0, rate


def _read_png(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DataError(
            f"cannot read {path}; regenerate the demo assets with "
            "python -m avfuse.data.make_demo_assets"
        )
    return img


def load_demo_assets(root: Path | None = None) -> DemoAssets:
    """Load every card, utterance and background from ``root`` (default: the bundled ones).

    Raises:
        DataError: the folder or a digit's files are missing.
    """
    root = demo_dir() if root is None else Path(root)
    cards: dict[int, list[np.ndarray]] = {}
    utterances: dict[int, list[np.ndarray]] = {}
    rates: set[int] = set()
    for d in range(10):
        cards[d] = [_read_png(p) for p in sorted((root / "cards").glob(f"{d}_*.png"))]
        utterances[d] = []
        for p in sorted((root / "utterances").glob(f"{d}_*.wav")):
            x, rate = read_wav(p)
            utterances[d].append(x)
            rates.add(rate)
        if not cards[d] or not utterances[d]:
            raise DataError(
                f"demo assets for digit {d} are missing under {root}; regenerate "
                "them with python -m avfuse.data.make_demo_assets"
            )
    backgrounds = [_read_png(p) for p in sorted((root / "backgrounds").glob("*.png"))]
    if not backgrounds or len(rates) != 1:
        raise DataError(
            f"demo backgrounds missing or mixed sample rates under {root}; "
            "regenerate them with python -m avfuse.data.make_demo_assets"
        )
    return DemoAssets(
        cards=cards, utterances=utterances, backgrounds=backgrounds, sample_rate=rates.pop()
    )
