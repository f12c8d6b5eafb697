"""One AV-digits camera frame: scene, camera degradations, and the model-size resize.

The scene is drawn at 192x256 (4:3, like a camera), degraded the way cheap cameras and
rooms degrade it (lighting, colour cast, gamma, blur, sensor noise, occlusion, JPEG) and
then area-resized to 48x64, exactly what the runtime does to a 4:3 camera frame.
"""

from __future__ import annotations

import cv2
import numpy as np

from avfuse.data.config import DataConfig
from avfuse.data.scene import compose_frame, make_background, render_card

__all__ = ["FRAME_SIZE", "MODEL_SIZE", "render_frame"]

FRAME_SIZE = (192, 256)  # (height, width) of the drawn scene
MODEL_SIZE = (48, 64)  # (height, width) the model sees
_SCALE = FRAME_SIZE[0] // MODEL_SIZE[0]
_SKIN = np.array(
    [[80, 110, 160], [60, 90, 140], [110, 150, 200], [40, 60, 90], [140, 170, 220]],
    dtype=np.float32,
)


def _occlude(img: np.ndarray, rng: np.random.Generator, cx: float, cy: float, size: float) -> None:
    """Cover part of the card (or a random spot) with a hand-like blob or an object."""
    h, w = img.shape[:2]
    ang = rng.uniform(0, 2 * np.pi)
    dist = rng.uniform(0.35, 0.7) * size
    ox, oy = cx * w + np.cos(ang) * dist, cy * h + np.sin(ang) * dist
    colour = _SKIN[rng.integers(len(_SKIN))] if rng.random() < 0.6 else rng.uniform(0, 255, 3)
    colour = tuple(float(c) for c in colour + rng.normal(0, 10, 3))
    axes = (max(2, int(rng.uniform(0.25, 0.5) * size)), max(2, int(rng.uniform(0.15, 0.35) * size)))
    cv2.ellipse(
        img, (int(ox), int(oy)), axes, float(np.rad2deg(ang)), 0, 360, colour, -1, cv2.LINE_AA
    )
    if rng.random() < 0.5:  # a finger or a pen reaching in from the blob
        end = (
            int(ox + np.cos(ang + np.pi) * size * 0.5),
            int(oy + np.sin(ang + np.pi) * size * 0.5),
        )
        cv2.line(img, (int(ox), int(oy)), end, colour, max(2, int(size * 0.08)), cv2.LINE_AA)


def _camera(img: np.ndarray, rng: np.random.Generator, config: DataConfig) -> np.ndarray:
    """Lighting, colour cast, gamma, blur, sensor noise and JPEG, in camera order."""
    h, w = img.shape[:2]
    x = img.astype(np.float32)
    light = cv2.resize(
        rng.uniform(0.5, 1.25, (3, 4)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC
    )
    x *= light[..., None] * np.exp(rng.normal(0, 0.1, 3)).astype(np.float32)
    gamma = float(np.exp(rng.uniform(np.log(0.6), np.log(1.6))))
    lut = np.round(255.0 * (np.arange(256) / 255.0) ** gamma).astype(np.uint8)
    x = cv2.LUT(np.clip(x, 0, 255).astype(np.uint8), lut).astype(np.float32)
    sigma = rng.uniform(*config.blur_range) * _SCALE
    if rng.random() < 0.15:  # motion blur
        k = int(rng.integers(3, 13))
        kernel = np.zeros((k, k), np.float32)
        kernel[k // 2] = 1.0 / k
        rot = cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), float(rng.uniform(0, 180)), 1)
        kernel = cv2.warpAffine(kernel, rot, (k, k))
        x = cv2.filter2D(x, -1, kernel / max(float(kernel.sum()), 1e-6))
    elif sigma > 0.3:
        x = cv2.GaussianBlur(x, (0, 0), sigma)
    # Sensor noise on 2x2 blocks (demosaicing correlates neighbours): after the 4x area
    # resize its standard deviation is the configured one, in model-input pixels.
    noise_sd = rng.uniform(*config.image_noise_range) * 2.0
    noise = rng.normal(0, noise_sd, (h // 2, w // 2, 3)).astype(np.float32)
    x += np.repeat(np.repeat(noise, 2, axis=0), 2, axis=1)
    out = np.clip(x, 0, 255).astype(np.uint8)
    if rng.random() < config.jpeg_prob:
        q = int(rng.integers(config.jpeg_quality_range[0], config.jpeg_quality_range[1] + 1))
        _, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, q])
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return out


def render_frame(
    digit: int | None, source: str, rng: np.random.Generator, config: DataConfig
) -> np.ndarray:
    """Draw one frame as the model sees it.

    Args:
        digit: the card's digit, or None for a background-only ("none") frame.
        source: image source of the card (see avfuse.data.scene).
        rng: per-sample generator; the frame depends on nothing else.
        config: difficulty knobs.

    Returns:
        (48, 64, 3) uint8 BGR.
    """
    fh, fw = FRAME_SIZE
    img = make_background(rng, fh, fw)
    hf = rng.uniform(*config.card_height_range)
    cx, cy = rng.uniform(0.15, 0.85), rng.uniform(0.2, 0.8)
    if digit is not None:
        card = render_card(digit, rng, source=source, height=max(8, int(round(hf * fh))))
        wf = card.shape[1] / fw
        cx = float(np.clip(cx, wf * 0.35, 1 - wf * 0.35))  # at most ~15% of the card cut off
        cy = float(np.clip(cy, hf * 0.35, 1 - hf * 0.35))
        angle = float(np.clip(rng.normal(0, 10), -30, 30))
        compose_frame(img, card, center=(cx, cy), height_frac=hf, angle=angle, out=img)
    if rng.random() < config.occlusion_prob:  # also on "none" frames: occluders are no cue
        _occlude(img, rng, cx, cy, hf * fh)
    out = _camera(img, rng, config)
    return cv2.resize(out, (MODEL_SIZE[1], MODEL_SIZE[0]), interpolation=cv2.INTER_AREA)
