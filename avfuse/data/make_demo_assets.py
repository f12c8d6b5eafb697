"""Regenerate the bundled demo material (avfuse/assets/demo/) deterministically.

Run ``python -m avfuse.data.make_demo_assets [--out DIR]``. Cards come only from the
test split's image sources and utterances only from its voices, so the demo shows the
model what it never trained on. Needs espeak-ng and scikit-learn; the demo that reads
the files needs neither.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import cv2
import numpy as np

from avfuse.assets.demo import demo_dir, write_wav
from avfuse.data.config import image_sources_for
from avfuse.data.scene import make_background, render_card
from avfuse.data.speech import (
    DIGIT_WORDS,
    SAMPLE_RATE,
    VoiceConfig,
    espeak_version,
    synthesize,
    voices_for,
)

__all__ = ["PER_DIGIT", "make_demo_assets", "main"]

PER_DIGIT = 4
N_BACKGROUNDS = 4
_SEED = 20261123
_MAX_BACKGROUND_BYTES = 110_000
#: Card source kinds, one per card of a digit: mostly pen strokes, which read most like a
#: card held up to a camera; the 8x8 scikit-learn digits are coarse.
_CARD_KINDS = ("strokes", "font", "strokes", "sklearn")


def _png(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def make_demo_assets(out: Path) -> dict[str, object]:
    """Write cards, utterances and backgrounds under ``out``; return what made each file."""
    rng = np.random.default_rng(_SEED)
    for sub in ("cards", "utterances", "backgrounds"):
        shutil.rmtree(out / sub, ignore_errors=True)
        (out / sub).mkdir(parents=True)
    sources = image_sources_for("test")
    voices = voices_for("test")
    record: dict[str, object] = {
        "cards": {},
        "utterances": {},
        "sample_rate": SAMPLE_RATE,
        "espeak_ng": espeak_version(),
        "opencv": cv2.__version__,  # draws the Hershey-font cards (5.1 draws them otherwise)
    }
    for d in range(10):
        for k in range(PER_DIGIT):
            kind = _CARD_KINDS[k % len(_CARD_KINDS)]
            of_kind = [x for x in sources if x.startswith(kind)]
            src = of_kind[(d + k) % len(of_kind)]
            card = render_card(d, rng, source=src, height=96)
            (out / "cards" / f"{d}_{k}.png").write_bytes(_png(card))
            record["cards"][f"{d}_{k}.png"] = src
            base, variant = voices[int(rng.integers(len(voices)))]
            voice = VoiceConfig(
                base, variant, int(rng.integers(140, 190)), int(rng.integers(30, 71))
            )
            x = synthesize(DIGIT_WORDS[d], voice)
            pcm = np.round(x / max(float(np.abs(x).max()), 1e-6) * 0.9 * 32767).astype(np.int16)
            write_wav(out / "utterances" / f"{d}_{k}.wav", pcm, SAMPLE_RATE)
            record["utterances"][f"{d}_{k}.wav"] = f"{voice.name} -s {voice.speed} -p {voice.pitch}"
    k = 0
    while k < N_BACKGROUNDS:
        data = _png(make_background(rng, 240, 320))
        if len(data) <= _MAX_BACKGROUND_BYTES:  # keep the package small: smooth scenes only
            (out / "backgrounds" / f"{k}.png").write_bytes(data)
            k += 1
    (out / "sources.json").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return record


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=demo_dir(), help="destination folder")
    args = parser.parse_args(argv)
    make_demo_assets(args.out)
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"wrote demo assets to {args.out} ({total / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
