"""Drawing the AV-digits camera scene: backgrounds, digit cards, and a card placed in a frame.

The data generator draws every training frame with these functions, and the synthetic
streaming source draws the live demo scene with the same ones, so the model meets at run
time the scene it was trained on. Only numpy and OpenCV are imported here (scikit-learn
is loaded lazily, and only for ``sklearn:`` sources), so the streaming engine can use it.

Image sources (``source`` arguments) are named strings:
    ``font:hershey_<name>`` / ``font:hershey_<name>_italic``   an OpenCV Hershey font
    ``sklearn:writer-block-<k>``   scikit-learn's handwritten 8x8 digits, contiguous block k
                                   of the 1797 images (the file is ordered roughly by writer)
    ``strokes:writer-<k>``         pen strokes in writer k's style (see avfuse.data.strokes)
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from avfuse.data.strokes import STROKE_SOURCES, stroke_glyph

__all__ = [
    "FONT_SOURCES",
    "SKLEARN_BLOCKS",
    "SKLEARN_SOURCES",
    "STROKE_SOURCES",
    "card_from_glyph",
    "compose_frame",
    "make_background",
    "render_card",
    "render_glyph",
]

_FONTS = {
    "hershey_simplex": cv2.FONT_HERSHEY_SIMPLEX,
    "hershey_plain": cv2.FONT_HERSHEY_PLAIN,
    "hershey_duplex": cv2.FONT_HERSHEY_DUPLEX,
    "hershey_complex": cv2.FONT_HERSHEY_COMPLEX,
    "hershey_triplex": cv2.FONT_HERSHEY_TRIPLEX,
    "hershey_complex_small": cv2.FONT_HERSHEY_COMPLEX_SMALL,
    "hershey_script_simplex": cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
    "hershey_script_complex": cv2.FONT_HERSHEY_SCRIPT_COMPLEX,
}
#: Every font source name: each Hershey font upright and italic.
FONT_SOURCES: tuple[str, ...] = tuple(
    f"font:{name}{suffix}" for name in _FONTS for suffix in ("", "_italic")
)
#: Number of contiguous blocks the 1797 scikit-learn digits are cut into (~138 images each).
SKLEARN_BLOCKS = 13
SKLEARN_SOURCES: tuple[str, ...] = tuple(f"sklearn:writer-block-{k}" for k in range(SKLEARN_BLOCKS))

_CARD_COLOURS = np.array(  # BGR, light
    [
        [245, 245, 245],
        [225, 240, 250],
        [200, 235, 250],
        [245, 225, 215],
        [215, 240, 215],
        [230, 220, 245],
        [210, 210, 210],
        [190, 225, 240],
        [250, 250, 235],
        [235, 235, 250],
    ],
    dtype=np.float32,
)
_INK_COLOURS = np.array(  # BGR, dark
    [
        [20, 20, 20],
        [60, 20, 10],
        [10, 10, 90],
        [50, 50, 50],
        [70, 30, 30],
        [0, 0, 0],
        [40, 60, 20],
        [80, 20, 60],
    ],
    dtype=np.float32,
)


def make_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Draw a varied background: a lit gradient, low-frequency texture and clutter shapes.

    A camera never frames a clean page, so the model must learn to find the card among
    gradients, textures and card-like clutter. Clutter never contains digits, nor rings
    that would read as a 0.

    Returns:
        (height, width, 3) uint8 BGR image.
    """
    c0 = rng.uniform(0, 255, 3).astype(np.float32)
    c1 = np.clip(c0 + rng.normal(0, 70, 3), 0, 255).astype(np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    xs = np.arange(width, dtype=np.float32)[None, :]
    ys = np.arange(height, dtype=np.float32)[:, None]
    t = xs / width * np.float32(np.cos(ang)) + ys / height * np.float32(np.sin(ang))
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    img = c0 + (c1 - c0) * t[..., None]
    kind = rng.integers(0, 4)
    if kind == 1:  # blotchy low-frequency texture
        gh, gw = int(rng.integers(3, 10)), int(rng.integers(3, 12))
        blot = cv2.resize(
            rng.normal(0, 1, (gh, gw, 3)).astype(np.float32),
            (width, height),
            interpolation=cv2.INTER_CUBIC,
        )
        img += blot * np.float32(rng.uniform(10, 45))
    elif kind == 2:  # stripes (wood, blinds, shelves)
        period = rng.uniform(6, 40) * height / 192
        phase = xs * np.float32(np.cos(ang + 1.3)) + ys * np.float32(np.sin(ang + 1.3))
        amp = (rng.uniform(8, 35) * rng.uniform(0.5, 1.0, 3)).astype(np.float32)
        img += np.sin(phase * np.float32(2 * np.pi / period))[..., None] * amp
    elif kind == 3:  # fine fabric / carpet grain
        grain = rng.normal(0, 1, (height // 2 + 1, width // 2 + 1)).astype(np.float32)
        grain = cv2.resize(grain, (width, height), interpolation=cv2.INTER_LINEAR)
        img += grain[..., None] * np.float32(rng.uniform(6, 25))
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(0, 9))):
        _draw_clutter(img, rng)
    return img


def _draw_clutter(img: np.ndarray, rng: np.random.Generator) -> None:
    h, w = img.shape[:2]
    colour = tuple(int(v) for v in rng.integers(0, 256, 3))
    thick = int(rng.choice([-1, -1, 1, 2, 3])) * max(1, h // 192)
    x0, y0 = int(rng.integers(-w // 4, w)), int(rng.integers(-h // 4, h))
    size = int(rng.uniform(0.05, 0.45) * h)
    shape = rng.integers(0, 4)
    if shape == 0:
        x1, y1 = x0 + int(size * rng.uniform(0.4, 2.0)), y0 + size
        cv2.rectangle(img, (x0, y0), (x1, y1), colour, thick, cv2.LINE_AA)
    elif shape == 1:  # round shapes are always filled: an outlined ring reads as a 0
        cv2.circle(img, (x0, y0), size // 2, colour, -1, cv2.LINE_AA)
    elif shape == 2:
        axes = (max(1, size // 2), max(1, int(size * rng.uniform(0.2, 0.6))))
        cv2.ellipse(
            img, (x0, y0), axes, float(rng.uniform(0, 180)), 0, 360, colour, -1, cv2.LINE_AA
        )
    else:
        x1, y1 = int(rng.integers(0, w)), int(rng.integers(0, h))
        cv2.line(img, (x0, y0), (x1, y1), colour, max(1, abs(thick)) * 2, cv2.LINE_AA)


@lru_cache(maxsize=1)
def _sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # lazy: only sklearn sources need it

    d = load_digits()
    return d.images.astype(np.float32) / 16.0, d.target.astype(np.int64)


def _sklearn_glyph(digit: int, rng: np.random.Generator, block: int) -> np.ndarray:
    images, target = _sklearn_digits()
    bounds = np.linspace(0, len(target), SKLEARN_BLOCKS + 1).astype(int)
    idx = np.flatnonzero(target[bounds[block] : bounds[block + 1]] == digit) + bounds[block]
    if idx.size == 0:
        idx = np.flatnonzero(target == digit)
    img = images[int(rng.choice(idx))]
    size = 48
    big = cv2.resize(np.pad(img, 1), (size, size), interpolation=cv2.INTER_CUBIC)
    big = cv2.GaussianBlur(big, (0, 0), rng.uniform(1.2, 2.2))
    # threshold at a quantile, so the ink covers 14-26% of the box: thick 8x8 strokes
    # keep their holes (a 6 or an 8 does not fill in) and thin ones do not vanish
    thr = max(float(np.quantile(big, 1 - rng.uniform(0.14, 0.26))), 0.05)
    soft = rng.uniform(0.02, 0.06)
    return np.clip((big - thr) / soft + 0.5, 0, 1).astype(np.float32)


def _font_glyph(digit: int, rng: np.random.Generator, name: str) -> np.ndarray:
    italic = name.endswith("_italic")
    face = _FONTS[name.removesuffix("_italic")] | (cv2.FONT_ITALIC if italic else 0)
    scale = 2.0
    thick = int(rng.integers(1, 7))
    (tw, th), base = cv2.getTextSize(str(digit), face, scale, thick)
    canvas = np.zeros((th + base + 4 * thick + 8, tw + 4 * thick + 8), np.uint8)
    cv2.putText(
        canvas,
        str(digit),
        (2 * thick + 4, th + 2 * thick + 4),
        face,
        scale,
        255,
        thick,
        cv2.LINE_AA,
    )
    return canvas.astype(np.float32) / 255.0


def render_glyph(digit: int, rng: np.random.Generator, source: str) -> np.ndarray:
    """Draw the ink of one digit: a float32 mask in [0, 1], tight-cropped, with distortions.

    Distortions (slant, rotation, elastic warping, stroke thickening/thinning) stand in for
    the writers, pens and fonts the model will meet and never saw.
    """
    kind, _, name = source.partition(":")
    if kind == "font" and name.removesuffix("_italic") in _FONTS:
        glyph = _font_glyph(digit, rng, name)
    elif kind == "sklearn" and name.startswith("writer-block-"):
        glyph = _sklearn_glyph(digit, rng, int(name.rsplit("-", 1)[1]) % SKLEARN_BLOCKS)
    elif kind == "strokes" and name.startswith("writer-"):
        glyph = stroke_glyph(digit, rng, int(name.rsplit("-", 1)[1]))
    else:
        raise ValueError(
            f"unknown image source {source!r}; use a FONT_, SKLEARN_ or STROKE_SOURCES name"
        )
    # pad to a square with room around it, so shear and rotation never push ink out
    gh, gw = glyph.shape
    side = int(max(gh, gw) * 1.5) + 8
    glyph = np.pad(
        glyph,
        (
            ((side - gh) // 2, side - gh - (side - gh) // 2),
            ((side - gw) // 2, side - gw - (side - gw) // 2),
        ),
    )
    h, w = glyph.shape
    shear = rng.uniform(-0.35, 0.35)
    rot = np.deg2rad(rng.uniform(-12, 12))
    sx, sy = rng.uniform(0.8, 1.2), rng.uniform(0.9, 1.1)
    a = np.array([[np.cos(rot), -np.sin(rot)], [np.sin(rot), np.cos(rot)]])
    a = a @ np.array([[sx, shear], [0.0, sy]])
    c = np.array([w / 2, h / 2])
    m = np.hstack([a, (c - a @ c)[:, None]]).astype(np.float32)
    glyph = cv2.warpAffine(glyph, m, (w, h), flags=cv2.INTER_LINEAR)
    if rng.random() < 0.8:  # elastic distortion
        alpha, sigma = rng.uniform(1.0, 4.0) * h / 70, rng.uniform(3.0, 6.0) * h / 70
        dx = cv2.GaussianBlur(rng.uniform(-1, 1, (h, w)).astype(np.float32), (0, 0), sigma)
        dy = cv2.GaussianBlur(rng.uniform(-1, 1, (h, w)).astype(np.float32), (0, 0), sigma)
        norm = alpha / max(float(np.abs(np.stack([dx, dy])).max()), 1e-6)
        gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        glyph = cv2.remap(glyph, gx + dx * norm, gy + dy * norm, cv2.INTER_LINEAR)
    r = rng.random()
    if r < 0.2:
        glyph = cv2.dilate(glyph, np.ones((3, 3), np.uint8))
    elif r < 0.3:
        glyph = cv2.erode(glyph, np.ones((2, 2), np.uint8))
    ys, xs = np.nonzero(glyph > 0.1)
    if ys.size == 0:
        return glyph
    return glyph[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def render_card(
    digit: int, rng: np.random.Generator, *, source: str | None = None, height: int = 96
) -> np.ndarray:
    """Draw a light card with a dark digit on it.

    Args:
        digit: 0..9.
        rng: all randomness (card colour, ink, placement, distortions) comes from it.
        source: image source name (see module docstring); None picks a random font.
        height: card height in pixels; width is 0.65-0.95 of it.

    Returns:
        (height, width, 3) uint8 BGR card.
    """
    if source is None:
        source = str(rng.choice(FONT_SOURCES))
    return card_from_glyph(render_glyph(int(digit), rng, source), rng, height=height)


def card_from_glyph(glyph: np.ndarray, rng: np.random.Generator, *, height: int = 96) -> np.ndarray:
    """Put an ink mask on a light card: card and ink colour, size, placement, paper grain.

    Split out of `render_card` so ink from elsewhere (a scanned digit) gets the same card.

    Args:
        glyph: float32 ink mask in [0, 1], tight-cropped.
        rng: card colour, ink, placement and border draws.
        height: card height in pixels; width is 0.65-0.95 of it.

    Returns:
        (height, width, 3) uint8 BGR card.
    """
    width = max(4, int(round(height * rng.uniform(0.65, 0.95))))
    card_col = _CARD_COLOURS[rng.integers(len(_CARD_COLOURS))] + rng.normal(0, 8, 3)
    ink_col = _INK_COLOURS[rng.integers(len(_INK_COLOURS))] + rng.normal(0, 10, 3)
    gh, gw = glyph.shape
    target_h = height * rng.uniform(0.55, 0.85)
    scale = min(target_h / gh, width * 0.88 / gw)
    nh, nw = max(1, int(round(gh * scale))), max(1, int(round(gw * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    glyph = cv2.resize(glyph, (nw, nh), interpolation=interp)
    alpha = np.zeros((height, width), np.float32)
    my, mx = int(0.05 * height), int(0.05 * width)  # a margin: ink never at the card edge
    y0 = int(rng.integers(my, max(my + 1, height - nh - my + 1)))
    x0 = int(rng.integers(mx, max(mx + 1, width - nw - mx + 1)))
    alpha[y0 : y0 + nh, x0 : x0 + nw] = glyph[: height - y0, : width - x0]
    alpha *= rng.uniform(0.75, 1.0)  # ink density (pencil .. marker)
    paper = card_col[None, None] + rng.normal(0, rng.uniform(0, 6), (height, width, 1))
    card = paper * (1 - alpha[..., None]) + ink_col[None, None] * alpha[..., None]
    if rng.random() < 0.5:  # printed or drawn border
        t = max(1, height // 48)
        cv2.rectangle(card, (0, 0), (width - 1, height - 1), tuple(ink_col * 1.5), t)
    return np.clip(card, 0, 255).astype(np.uint8)


def compose_frame(
    background: np.ndarray,
    card: np.ndarray,
    *,
    center: tuple[float, float],
    height_frac: float,
    angle: float = 0.0,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Paste a card onto a background, scaled to a fraction of the frame height.

    Args:
        background: (H, W, 3) uint8 frame; not modified unless it is ``out``.
        card: (h, w, 3) uint8 card from `render_card`.
        center: card centre as fractions (x, y) of the frame width and height; may lie
            partly outside the frame (the card is then cut off, as a camera would).
        height_frac: card height / frame height.
        angle: in-plane rotation of the card in degrees (counter-clockwise).
        out: optional preallocated (H, W, 3) uint8 destination, so a streaming source
            can draw each frame without allocating.

    Returns:
        ``out`` (or a new array) holding the composed frame.
    """
    fh, fw = background.shape[:2]
    if out is None:
        out = background.copy()
    elif out is not background:
        np.copyto(out, background)
    ch, cw = card.shape[:2]
    s = height_frac * fh / ch
    m = cv2.getRotationMatrix2D((cw / 2.0, ch / 2.0), angle, s)
    m[0, 2] += center[0] * fw - cw / 2.0
    m[1, 2] += center[1] * fh - ch / 2.0
    cv2.warpAffine(
        card, m, (fw, fh), dst=out, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT
    )
    return out
