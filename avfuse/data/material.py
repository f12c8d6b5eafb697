"""Scene material drawn from one split's held-out sources, in memory, for benchmarks.

The bundled demo material (avfuse/assets/demo) has 4 cards and 4 utterances a digit;
a benchmark that scores hundreds of scripted digits needs more variety than that. This
draws `per_digit` cards from the split's image sources and `per_digit` utterances from
its voices (espeak-ng), plus backgrounds, exactly as `make_demo_assets` does for the
demo, into a `DemoAssets` that `SyntheticSource` takes as its material. Use "val" to
tune a run-time rule and "test" to report it: neither was trained on.
"""

from __future__ import annotations

import numpy as np

from avfuse.assets.demo import DemoAssets
from avfuse.data.config import image_sources_for
from avfuse.data.scene import make_background, render_card
from avfuse.data.speech import DIGIT_WORDS, SAMPLE_RATE, VoiceConfig, synthesize, voices_for
from avfuse.errors import UsageError

__all__ = ["split_material"]

#: card source kinds in turn, as the demo material has them
_CARD_KINDS = ("strokes", "font", "strokes", "sklearn")


def split_material(
    split: str, *, per_digit: int = 8, backgrounds: int = 8, seed: int = 0
) -> DemoAssets:
    """Cards, utterances and backgrounds from `split`'s sources (needs espeak-ng).

    Args:
        split: "val" or "test" (their image sources and voices are never trained on).
        per_digit: cards and utterances of each digit.
        backgrounds: 240x320 backgrounds.
        seed: every draw comes from it.
    """
    if split not in ("val", "test"):
        raise UsageError(f"split {split!r}: draw material from 'val' or 'test' (held out)")
    if per_digit < 1 or backgrounds < 1:
        raise UsageError("per_digit and backgrounds must be >= 1")
    rng = np.random.default_rng([seed, 0 if split == "val" else 1, 77])
    sources = image_sources_for(split)
    voices = voices_for(split)
    cards: dict[int, list[np.ndarray]] = {}
    utterances: dict[int, list[np.ndarray]] = {}
    for d in range(10):
        cards[d], utterances[d] = [], []
        for k in range(per_digit):
            kind = _CARD_KINDS[k % len(_CARD_KINDS)]
            of_kind = [x for x in sources if x.startswith(kind)]
            src = of_kind[int(rng.integers(len(of_kind)))]
            cards[d].append(render_card(d, rng, source=src, height=96))
            base, variant = voices[int(rng.integers(len(voices)))]
            voice = VoiceConfig(
                base, variant, int(rng.integers(140, 190)), int(rng.integers(30, 71))
            )
            x = synthesize(DIGIT_WORDS[d], voice)
            utterances[d].append((x / max(float(np.abs(x).max()), 1e-6) * 0.9).astype(np.float32))
    bgs = [make_background(rng, 240, 320) for _ in range(backgrounds)]
    return DemoAssets(cards=cards, utterances=utterances, backgrounds=bgs, sample_rate=SAMPLE_RATE)
