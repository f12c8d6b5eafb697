"""Tests for avfuse/data/scene.py: backgrounds, cards and card placement."""

from __future__ import annotations

import numpy as np
import pytest

from avfuse.data.scene import (
    FONT_SOURCES,
    SKLEARN_SOURCES,
    STROKE_SOURCES,
    compose_frame,
    make_background,
    render_card,
)


def test_background_shape_and_determinism() -> None:
    a = make_background(np.random.default_rng(3), 240, 320)
    b = make_background(np.random.default_rng(3), 240, 320)
    c = make_background(np.random.default_rng(4), 240, 320)
    assert a.shape == (240, 320, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize(
    "source", [FONT_SOURCES[0], FONT_SOURCES[-1], SKLEARN_SOURCES[5], STROKE_SOURCES[3], None]
)
def test_card_is_light_with_dark_ink(source: str | None) -> None:
    rng = np.random.default_rng(11)
    for digit in range(10):
        card = render_card(digit, rng, source=source, height=80)
        assert card.dtype == np.uint8 and card.shape[0] == 80 and card.shape[2] == 3
        assert 0.6 * 80 <= card.shape[1] <= 0.96 * 80
        gray = card.mean(axis=2)
        paper = np.median(gray)
        ink = np.percentile(gray, 2)
        assert paper > 150 and paper - ink > 60  # a digit that stands out from the card


def test_cards_differ_by_digit_and_source() -> None:
    a = render_card(3, np.random.default_rng(0), source=FONT_SOURCES[2])
    b = render_card(8, np.random.default_rng(0), source=FONT_SOURCES[2])
    assert a.shape != b.shape or not np.array_equal(a, b)


def test_unknown_source_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown image source"):
        render_card(1, np.random.default_rng(0), source="font:comic_sans")


def test_compose_places_scaled_card_and_keeps_background() -> None:
    bg = np.zeros((240, 320, 3), np.uint8)
    card = np.full((96, 72, 3), 200, np.uint8)
    frame = compose_frame(bg, card, center=(0.25, 0.5), height_frac=0.5)
    assert not bg.any()  # the background is not modified
    ys, xs = np.nonzero(frame[..., 0] > 100)
    assert abs(ys.mean() - 120) < 1.5 and abs(xs.mean() - 80) < 1.5
    assert abs((ys.max() - ys.min() + 1) - 120) <= 2  # 0.5 of the frame height
    assert abs((xs.max() - xs.min() + 1) - 90) <= 2  # aspect kept


def test_compose_into_preallocated_out_reuses_it() -> None:
    bg = np.full((240, 320, 3), 30, np.uint8)
    out = np.empty_like(bg)
    card = np.full((96, 72, 3), 220, np.uint8)
    res = compose_frame(bg, card, center=(0.5, 0.5), height_frac=0.3, angle=30.0, out=out)
    assert res is out
    assert out[120, 160, 0] == 220 and out[5, 5, 0] == 30
    # a card partly outside the frame is cut off, not an error
    compose_frame(bg, card, center=(1.0, 0.0), height_frac=0.6, out=out)
    assert out[0, 319, 0] == 220 and out[239, 0, 0] == 30
