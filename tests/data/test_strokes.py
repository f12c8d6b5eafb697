"""Tests for avfuse/data/strokes.py: pen-stroke digits by seeded writers."""

from __future__ import annotations

import numpy as np

from avfuse.data.strokes import N_WRITERS, stroke_glyph


def test_every_writer_draws_every_digit_inside_its_canvas() -> None:
    rng = np.random.default_rng(0)
    for writer in range(N_WRITERS):
        for digit in range(10):
            g = stroke_glyph(digit, rng, writer)
            assert g.dtype == np.float32 and g.max() > 0.9 and g.min() >= 0.0
            # no ink is cut off: the border rows and columns stay blank
            assert max(g[0].max(), g[-1].max(), g[:, 0].max(), g[:, -1].max()) < 0.05


def test_writers_have_their_own_style_and_are_seeded() -> None:
    a = stroke_glyph(4, np.random.default_rng(1), 2)
    b = stroke_glyph(4, np.random.default_rng(1), 2)
    np.testing.assert_array_equal(a, b)
    widths = [stroke_glyph(0, np.random.default_rng(1), w).shape[1] for w in range(N_WRITERS)]
    assert len(set(widths)) > N_WRITERS // 2  # aspect and pen width differ by writer
