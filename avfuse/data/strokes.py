"""Pen-stroke digits: a third image source, drawn as smoothed strokes by seeded "writers".

scikit-learn's 8x8 digits and the Hershey fonts are few and alike; a model trained on
them alone loses much on other people's handwriting. Each digit here has one or more
stroke templates (the ways people write a 4 or a 7), and each writer is a fixed seeded
style (which template per digit, slant, roundness, pen width, aspect, wobble), so writers
can be held out like the other sources. Only numpy and OpenCV are used.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

__all__ = ["N_WRITERS", "STROKE_SOURCES", "stroke_glyph"]

N_WRITERS = 10
STROKE_SOURCES: tuple[str, ...] = tuple(f"strokes:writer-{k}" for k in range(N_WRITERS))

Stroke = list[tuple[float, float]]


def _ellipse(cx: float, cy: float, rx: float, ry: float, start: float = 0.0) -> Stroke:
    t = np.linspace(start, start + 2 * np.pi, 13)
    return [(cx + rx * np.cos(a), cy + ry * np.sin(a)) for a in t]


# Templates in a unit box (x right, y down); each template is a list of strokes.
_TEMPLATES: dict[int, list[list[Stroke]]] = {
    0: [
        [_ellipse(0.5, 0.5, 0.4, 0.5, -np.pi / 2)],
        [_ellipse(0.5, 0.5, 0.4, 0.5, -np.pi / 2), [(0.75, 0.1), (0.25, 0.9)]],
    ],
    1: [
        [[(0.5, 0.0), (0.5, 1.0)]],
        [[(0.25, 0.25), (0.55, 0.0), (0.55, 1.0)]],
        [[(0.25, 0.25), (0.55, 0.0), (0.55, 1.0)], [(0.25, 1.0), (0.85, 1.0)]],
    ],
    2: [
        [
            [
                (0.12, 0.25),
                (0.35, 0.02),
                (0.7, 0.02),
                (0.88, 0.25),
                (0.7, 0.5),
                (0.12, 1.0),
                (0.9, 1.0),
            ]
        ],
        [
            [
                (0.12, 0.25),
                (0.4, 0.0),
                (0.8, 0.1),
                (0.75, 0.45),
                (0.25, 0.9),
                (0.15, 1.0),
                (0.35, 0.85),
                (0.55, 0.95),
                (0.9, 1.0),
            ]
        ],
    ],
    3: [
        [
            [
                (0.15, 0.1),
                (0.5, 0.0),
                (0.8, 0.15),
                (0.75, 0.38),
                (0.45, 0.48),
                (0.8, 0.6),
                (0.85, 0.85),
                (0.5, 1.0),
                (0.15, 0.9),
            ]
        ],
        [
            [
                (0.15, 0.0),
                (0.85, 0.0),
                (0.45, 0.42),
                (0.8, 0.58),
                (0.85, 0.85),
                (0.5, 1.0),
                (0.15, 0.9),
            ]
        ],
    ],
    4: [
        [[(0.65, 0.0), (0.1, 0.65), (0.9, 0.65)], [(0.65, 0.0), (0.65, 1.0)]],
        [[(0.2, 0.0), (0.15, 0.6), (0.85, 0.6)], [(0.7, 0.15), (0.7, 1.0)]],
    ],
    5: [
        [
            [
                (0.8, 0.0),
                (0.25, 0.0),
                (0.2, 0.45),
                (0.55, 0.4),
                (0.85, 0.6),
                (0.8, 0.9),
                (0.45, 1.0),
                (0.15, 0.9),
            ]
        ],
        [
            [
                (0.25, 0.0),
                (0.2, 0.45),
                (0.55, 0.4),
                (0.85, 0.6),
                (0.8, 0.9),
                (0.45, 1.0),
                (0.15, 0.9),
            ],
            [(0.25, 0.0), (0.85, 0.0)],
        ],
    ],
    6: [
        [
            [
                (0.75, 0.05),
                (0.4, 0.15),
                (0.2, 0.55),
                (0.25, 0.9),
                (0.5, 1.0),
                (0.8, 0.85),
                (0.75, 0.6),
                (0.5, 0.5),
                (0.22, 0.65),
            ]
        ],
        [[(0.65, 0.0), (0.3, 0.4), (0.18, 0.75), (0.45, 1.0), (0.8, 0.8), (0.6, 0.5), (0.25, 0.6)]],
    ],
    7: [
        [[(0.1, 0.0), (0.9, 0.0), (0.4, 1.0)]],
        [[(0.1, 0.0), (0.9, 0.0), (0.4, 1.0)], [(0.35, 0.5), (0.8, 0.5)]],
        [[(0.1, 0.15), (0.15, 0.0), (0.9, 0.0), (0.5, 0.55), (0.4, 1.0)]],
    ],
    8: [
        [
            [
                (0.5, 0.5),
                (0.2, 0.28),
                (0.5, 0.0),
                (0.8, 0.25),
                (0.5, 0.5),
                (0.15, 0.75),
                (0.5, 1.0),
                (0.85, 0.75),
                (0.5, 0.5),
            ]
        ],
        [_ellipse(0.5, 0.25, 0.28, 0.25, np.pi / 2), _ellipse(0.5, 0.74, 0.36, 0.26, -np.pi / 2)],
    ],
    9: [
        [
            [
                (0.78, 0.3),
                (0.5, 0.48),
                (0.22, 0.3),
                (0.35, 0.03),
                (0.7, 0.05),
                (0.78, 0.3),
                (0.75, 1.0),
            ]
        ],
        [
            [
                (0.78, 0.25),
                (0.5, 0.45),
                (0.2, 0.25),
                (0.45, 0.0),
                (0.78, 0.25),
                (0.7, 0.7),
                (0.4, 1.0),
            ]
        ],
    ],
}


@lru_cache(maxsize=N_WRITERS)
def _writer(k: int) -> dict[str, object]:
    """A writer's fixed style, from its own seed."""
    rng = np.random.default_rng([91011, k])
    return {
        "template": [int(rng.integers(len(_TEMPLATES[d]))) for d in range(10)],
        "slant": float(rng.uniform(-0.3, 0.3)),
        "round": int(rng.integers(1, 4)),
        "width": float(rng.uniform(0.05, 0.14)),
        "aspect": float(rng.uniform(0.5, 0.8)),
        "wobble": float(rng.uniform(0.015, 0.05)),
    }


def _chaikin(pts: np.ndarray, rounds: int) -> np.ndarray:
    for _ in range(rounds):
        q = 0.75 * pts[:-1] + 0.25 * pts[1:]
        r = 0.25 * pts[:-1] + 0.75 * pts[1:]
        pts = np.concatenate([pts[:1], np.stack([q, r], 1).reshape(-1, 2), pts[-1:]])
    return pts


def stroke_glyph(digit: int, rng: np.random.Generator, writer: int) -> np.ndarray:
    """Draw a digit the way ``writer`` would: float32 ink mask in [0, 1], ~64 px high."""
    style = _writer(writer % N_WRITERS)
    templates = _TEMPLATES[digit]
    choice = style["template"][digit] if rng.random() < 0.8 else rng.integers(len(templates))
    size = 64
    aspect = style["aspect"] * rng.uniform(0.9, 1.1)
    slant = style["slant"] + rng.normal(0, 0.05)
    width = max(1, int(round(size * style["width"] * rng.uniform(0.8, 1.25))))
    lines = []
    for stroke in templates[int(choice)]:
        pts = np.asarray(stroke, np.float64) + rng.normal(0, style["wobble"], (len(stroke), 2))
        pts = _chaikin(pts, style["round"])
        x = pts[:, 0] * aspect + (1 - pts[:, 1]) * max(slant, 0) + pts[:, 1] * max(-slant, 0)
        lines.append(np.stack([x, pts[:, 1]], 1) * size)
    allpts = np.concatenate(lines)
    pad = width + 4  # room for the pen's width, so no ink is cut off
    origin = allpts.min(axis=0) - pad
    w, h = (np.ceil(allpts.max(axis=0) - origin) + pad).astype(int)
    canvas = np.zeros((h, w), np.float32)
    for xy in lines:
        pts16 = np.round((xy - origin) * 16).astype(np.int32)
        cv2.polylines(canvas, [pts16], False, 1.0, width, cv2.LINE_AA, shift=4)
    return canvas
