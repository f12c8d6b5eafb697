"""Shared inputs for the kernel tests: random, synthetic and real (espeak-ng) audio, frames."""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def speech(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """Two seconds of real synthesised speech (espeak-ng) as float32, or skip without it."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    path = Path(tmp_path_factory.mktemp("speech")) / "speech.wav"
    subprocess.run(
        ["espeak-ng", "-v", "en+m3", "-s", "160", "-w", str(path), "seven three nine"],
        check=True,
        capture_output=True,
    )
    with wave.open(str(path)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    x = pcm.astype(np.float32) / 32768.0
    return np.resize(x, 32000)  # loop to a fixed 2 s


def noise(n: int, seed: int = 0, scale: float = 0.3) -> np.ndarray:
    """White noise, float32."""
    return (scale * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def chirp(n: int, sample_rate: int = 16000) -> np.ndarray:
    """A 100 Hz -> 7 kHz sweep with a little noise: every mel band sees energy."""
    t = np.arange(n) / sample_rate
    dur = n / sample_rate
    x = 0.5 * np.sin(2 * np.pi * (100 * t + (7000 - 100) * t**2 / (2 * dur)))
    return (x + 0.01 * np.random.default_rng(5).standard_normal(n)).astype(np.float32)


def frame_of(pixel_format: str, height: int, width: int, seed: int = 0) -> np.ndarray:
    """A random frame buffer of a pixel format (the layouts reference.to_rgb reads)."""
    rng = np.random.default_rng(seed)
    shapes = {
        "bgr24": (height, width, 3),
        "rgb24": (height, width, 3),
        "gray": (height, width),
        "nv12": (height * 3 // 2, width),
        "i420": (height * 3 // 2, width),
    }
    return rng.integers(0, 256, shapes[pixel_format], dtype=np.uint8)
