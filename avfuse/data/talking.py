"""Talking-mouth scenes: a rendered face whose mouth opening follows the speech envelope.

A talking face is the everyday content whose picture and sound are time-locked: the mouth
opens as the voice gets loud. These scenes reproduce that lock with known ground truth, so
a model can learn the correspondence and the content sync monitor can be measured with an
injected offset. Two rendering styles exist so a test can use one that training never saw:

    plain    (training) an elliptic skin-coloured face on a grey background, dark oval
             mouth, dot eyes that blink, a slow head sway.
    cartoon  (held out) a rounded square head on a striped background, a rectangular
             mouth with lips and teeth, big white eyes, eyebrows that bob.

The opening at time t is the speech level (RMS over 20 ms centred at t, dB below the
clip's loudest 10 ms) mapped linearly from -40 dB (closed) to -10 dB (open). Blinks, sway
and eyebrows move at random times: motion that is not time-locked to the sound.

Speech comes from `avfuse.data.speech_sources`: espeak-ng training voices for training,
flite and festival voices (never used in training) for tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from avfuse.errors import UsageError

STYLES = ("plain", "cartoon")
#: the style models train on; the other one is held out for tests
TRAIN_STYLE = "plain"


@dataclass(frozen=True, kw_only=True)
class TalkingClip:
    """A rendered scene in scene time (picture and sound time-locked, no offset).

    Attributes:
        frames: (n, H, W, 3) uint8 BGR frames, frame k shown at k / fps.
        audio: float32 mono scene audio; sample j heard at j / sample_rate.
        fps: frame rate.
        sample_rate: audio rate.
        opening: mouth opening (0..1) drawn in each frame.
    """

    frames: np.ndarray
    audio: np.ndarray
    fps: float
    sample_rate: int
    opening: np.ndarray

    @property
    def duration_s(self) -> float:
        """Length of the picture (s)."""
        return self.frames.shape[0] / self.fps


def mouth_opening(audio: np.ndarray, sample_rate: int, times: np.ndarray) -> np.ndarray:
    """Opening (0..1) at `times` (s): the 20 ms RMS level there, -40 dB closed, -10 dB open."""
    x = audio.astype(np.float64)
    hop = sample_rate // 100
    n = len(x) // hop
    if n == 0:
        return np.zeros(len(times))
    ref = float(np.sqrt((x[: n * hop].reshape(n, hop) ** 2).mean(axis=1)).max())
    if ref <= 1e-6:  # silence: the mouth stays closed
        return np.zeros(len(times))
    half = sample_rate // 100  # 10 ms either side
    c = np.concatenate([[0.0], np.cumsum(x * x)])
    centre = np.round(np.asarray(times) * sample_rate).astype(np.int64)
    lo = np.clip(centre - half, 0, len(x))
    hi = np.clip(centre + half, 0, len(x))
    rms = np.sqrt((c[hi] - c[lo]) / np.maximum(hi - lo, 1))
    db = 20 * np.log10(np.maximum(rms, 1e-9) / ref)
    return np.clip((db + 40.0) / 30.0, 0.0, 1.0)


def _events(
    rng: np.random.Generator, n: int, fps: float, every_s: float, length: int
) -> np.ndarray:
    """A boolean per frame: random events (blinks, bobs) about every `every_s`, `length` long."""
    on = np.zeros(n, bool)
    t = rng.uniform(0.2, every_s)
    while t * fps < n:
        k = int(t * fps)
        on[k : k + length] = True
        t += rng.uniform(0.5 * every_s, 1.5 * every_s)
    return on


def _plain(opening: np.ndarray, rng: np.random.Generator, w: int, h: int, fps: float) -> np.ndarray:
    n = len(opening)
    frames = np.empty((n, h, w, 3), np.uint8)
    bg = rng.uniform(60, 200)
    skin = np.array([rng.uniform(90, 170), rng.uniform(130, 190), rng.uniform(170, 235)])
    cx, cy, s = w * rng.uniform(0.4, 0.6), h * rng.uniform(0.45, 0.55), h * rng.uniform(0.3, 0.4)
    sway = rng.uniform(0.0, 0.04) * h
    period = rng.uniform(2.0, 5.0)
    blink = _events(rng, n, fps, 3.0, 3)
    noise = rng.normal(0, 3, (h, w, 1))
    for k in range(n):
        img = np.full((h, w, 3), bg, np.float64) + noise
        dx = sway * np.sin(2 * np.pi * k / fps / period)
        x, y = cx + dx, cy
        cv2.ellipse(img, (int(x), int(y)), (int(0.75 * s), int(s)), 0, 0, 360, skin.tolist(), -1)
        eye_y, eye_dx = int(y - 0.3 * s), int(0.32 * s)
        for ex in (int(x) - eye_dx, int(x) + eye_dx):
            if blink[k]:
                cv2.line(img, (ex - 3, eye_y), (ex + 3, eye_y), (30, 30, 30), 1)
            else:
                cv2.circle(img, (ex, eye_y), max(1, int(0.08 * s)), (30, 30, 30), -1)
        mw, mh = 0.3 * s, 0.02 * s + 0.25 * s * opening[k]
        centre = (int(round(x * 4)), int(round((y + 0.45 * s) * 4)))
        axes = (int(round(mw * 4)), int(round(mh * 4)))
        cv2.ellipse(img, centre, axes, 0, 0, 360, (40, 20, 60), -1, cv2.LINE_AA, 2)
        frames[k] = np.clip(img, 0, 255).astype(np.uint8)
    return frames


def _cartoon(
    opening: np.ndarray, rng: np.random.Generator, w: int, h: int, fps: float
) -> np.ndarray:
    n = len(opening)
    frames = np.empty((n, h, w, 3), np.uint8)
    stripes = (np.arange(w)[None, :] // max(2, w // 12) % 2) * 40 + rng.uniform(40, 120)
    bg = np.repeat(np.repeat(stripes[..., None], h, 0), 3, 2).astype(np.float64)
    bg[..., 0] += rng.uniform(0, 80)  # tinted
    head = [rng.uniform(60, 200), rng.uniform(150, 230), rng.uniform(40, 120)]
    cx, cy, s = w * rng.uniform(0.35, 0.65), h * rng.uniform(0.45, 0.55), h * rng.uniform(0.3, 0.42)
    bob = _events(rng, n, fps, 2.0, 6)
    blink = _events(rng, n, fps, 4.0, 2)
    for k in range(n):
        img = bg.copy()
        x0, y0, x1, y1 = int(cx - 0.8 * s), int(cy - s), int(cx + 0.8 * s), int(cy + s)
        cv2.rectangle(img, (x0, y0), (x1, y1), head, -1)
        for ex in (int(cx - 0.35 * s), int(cx + 0.35 * s)):
            ey = int(cy - 0.35 * s)
            r = max(2, int(0.16 * s))
            cv2.circle(img, (ex, ey), r, (250, 250, 250), -1)
            if not blink[k]:
                cv2.circle(img, (ex, ey), max(1, r // 2), (0, 0, 0), -1)
            else:
                cv2.circle(img, (ex, ey), r, head, -1)
            by = ey - r - 2 - (2 if bob[k] else 0)
            cv2.line(img, (ex - r, by), (ex + r, by), (20, 20, 20), 1)
        o = float(np.sqrt(opening[k]))  # a different opening curve from the plain style
        mw, mh = 0.45 * s, 0.04 * s + 0.32 * s * o
        my = cy + 0.5 * s
        p0 = (int(round((cx - mw) * 4)), int(round((my - mh) * 4)))
        p1 = (int(round((cx + mw) * 4)), int(round((my + mh) * 4)))
        cv2.rectangle(img, p0, p1, (20, 20, 150), -1, cv2.LINE_AA, 2)
        inner = 0.6 * mh
        q0 = (int(round((cx - 0.8 * mw) * 4)), int(round((my - inner) * 4)))
        q1 = (int(round((cx + 0.8 * mw) * 4)), int(round((my + inner) * 4)))
        cv2.rectangle(img, q0, q1, (10, 10, 10), -1, cv2.LINE_AA, 2)
        if o > 0.3:  # teeth show when open
            t1 = (q1[0], int(round((my - inner + 0.25 * inner) * 4)))
            cv2.rectangle(img, q0, t1, (235, 235, 235), -1, cv2.LINE_AA, 2)
        frames[k] = np.clip(img, 0, 255).astype(np.uint8)
    return frames


def render_talking(
    audio: np.ndarray,
    *,
    sample_rate: int,
    style: str,
    seed: int = 0,
    fps: float = 25.0,
    width: int = 96,
    height: int = 72,
    mouth_lag_s: float = 0.0,
) -> TalkingClip:
    """Render a face saying `audio` (scene time): the mouth follows the speech level.

    Args:
        audio: float32 mono speech (and pauses) at `sample_rate`.
        sample_rate: its rate.
        style: "plain" (training) or "cartoon" (held out).
        seed: face placement, colours, blinks.
        fps: frame rate.
        width, height: frame size.
        mouth_lag_s: the mouth shows the level at t - mouth_lag_s (0: time-locked).
    """
    if style not in STYLES:
        raise UsageError(f"unknown talking-face style {style!r}: use one of {', '.join(STYLES)}")
    if width < 16 or height < 16 or fps <= 0:
        raise UsageError(f"frame size {width}x{height} at {fps} fps: use at least 16x16 and fps>0")
    n = int(len(audio) / sample_rate * fps)
    times = np.arange(n) / fps - mouth_lag_s
    opening = mouth_opening(audio, sample_rate, times)
    rng = np.random.default_rng([seed, STYLES.index(style)])
    draw = _plain if style == "plain" else _cartoon
    frames = draw(opening, rng, width, height, fps)
    return TalkingClip(
        frames=frames,
        audio=np.asarray(audio, np.float32),
        fps=fps,
        sample_rate=sample_rate,
        opening=opening,
    )


def device_audio(
    audio: np.ndarray, sample_rate: int, *, offset_s: float, drift_ppm: float = 0.0
) -> np.ndarray:
    """The audio as a late (offset_s > 0) and drifting device delivers it, at nominal rate.

    Sample j of the result, taken as j / sample_rate on the stream's clock, holds what was
    heard at scene time j / (sample_rate * (1 + drift)) - offset_s: the offset grows by
    drift_ppm microseconds a second.
    """
    ratio = 1.0 + drift_ppm * 1e-6
    n = int(len(audio) * ratio)
    pos = np.arange(n) / ratio - offset_s * sample_rate
    out = np.interp(pos, np.arange(len(audio)), audio, left=0.0, right=0.0)
    return out.astype(np.float32)


__all__ = [
    "STYLES",
    "TRAIN_STYLE",
    "TalkingClip",
    "device_audio",
    "mouth_opening",
    "render_talking",
]
