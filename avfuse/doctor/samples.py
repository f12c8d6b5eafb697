"""Bundled inputs for the doctor's backend checks: demo material through the reference
pre-processing.

Every backend is compared with the CPU reference on the same feeds, built once: each
digit's held-out cards, pasted into a bundled background the way the synthetic scene
does (`avfuse.data.scene.compose_frame`), and its held-out utterances centred in one
model window over faint noise, both through `avfuse.kernels`' reference kernels with the
model's own pre-processing parameters. Where the model has a mask input, samples with
one modality missing are added (zeros and a 0 in the mask, as the engine feeds a missing
modality). An input the material cannot fill (a chained model's history, a shape these
kernels do not make) gets seeded noise of its shape: parity still means something there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avfuse.backends.base import np_dtype
from avfuse.manifest import Manifest, TensorSpec

#: level of the noise floor under each utterance (dBFS), as the synthetic scene's
NOISE_DBFS = -55.0
#: card size in the frame (fraction of its height) and position (fractions of w, h)
CARD_HEIGHT = 0.55
CARD_CENTRE = (0.5, 0.5)


@dataclass(frozen=True)
class Samples:
    """Batch-1 feeds, one per sample, and each sample's true label.

    Attributes:
        feeds: per sample, input name -> array with a batch axis of 1.
        labels: per sample, the index of its true class in the manifest's labels (None
            when the model has no such label).
        source: how the inputs were made (shown in the report).
    """

    feeds: list[dict[str, np.ndarray]]
    labels: list[int | None]
    source: str

    def __len__(self) -> int:
        return len(self.feeds)


def fed_inputs(m: Manifest) -> list[TensorSpec]:
    """The inputs a caller feeds per call (state and const inputs the backend adds)."""
    return [s for s in m.inputs if s.modality not in ("state", "const")]


def _concrete(s: TensorSpec) -> tuple[int, ...]:
    """The spec's shape with batch 1 and every symbolic dimension 1."""
    return tuple(d if isinstance(d, int) else 1 for d in (s.shape or (1,)))


def _window(utterance: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """The utterance centred in `n` samples of faint noise (cut to its middle if longer)."""
    w = rng.standard_normal(n) * 10 ** (NOISE_DBFS / 20)
    if len(utterance) >= n:
        s = (len(utterance) - n) // 2
        w += utterance[s : s + n]
    else:
        s = (n - len(utterance)) // 2
        w[s : s + len(utterance)] += utterance
    return w


def _resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    if rate_in == rate_out:
        return x
    pos = np.arange(int(round(len(x) * rate_out / rate_in))) * (rate_in / rate_out)
    return np.interp(pos, np.arange(len(x)), x)


def _audio_rows(s: TensorSpec, waves: list[np.ndarray], rate: int) -> np.ndarray | None:
    from avfuse.kernels import log_mel_kernel
    from avfuse.kernels.reference import AudioParams
    from avfuse.kernels.waveform import WaveformKernel, WaveformParams

    p = s.audio
    if not isinstance(p, (AudioParams, WaveformParams)):
        return None
    rng = np.random.default_rng(0)
    n = p.window_samples
    rows = np.stack([_window(_resample(w, rate, p.sample_rate), n, rng) for w in waves])
    if isinstance(p, AudioParams):
        return log_mel_kernel(p, "reference")(rows)
    kernel = WaveformKernel(p)
    return np.stack([kernel(r) for r in rows])


def _video_rows(s: TensorSpec, frames: list[np.ndarray]) -> np.ndarray | None:
    from avfuse.kernels import image_kernel

    if s.video is None:
        return None
    kernel = image_kernel(s.video, "reference")
    return np.stack([kernel(f, "bgr24") for f in frames])


def _fit(rows: np.ndarray | None, s: TensorSpec, n: int) -> np.ndarray | None:
    """`rows` shaped as the input's batch of `n` (None when they do not fit it)."""
    if rows is None:
        return None
    want = _concrete(s)[1:]
    if rows.size != n * int(np.prod(want)):
        return None
    return rows.reshape((n, *want)).astype(np_dtype(s.dtype))


def _noise(s: TensorSpec, n: int, seed: int) -> np.ndarray:
    shape = (n, *_concrete(s)[1:])
    dtype = np_dtype(s.dtype)
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.floating):
        return rng.standard_normal(shape).astype(dtype)
    return np.zeros(shape, dtype)


def build_samples(m: Manifest) -> Samples:
    """The doctor's samples for model `m` (see the module docstring)."""
    from avfuse.assets.demo import load_demo_assets
    from avfuse.data.scene import compose_frame

    a = load_demo_assets()
    waves, frames, digits = [], [], []
    for d in range(10):
        for k, card in enumerate(a.cards[d]):
            bg = a.backgrounds[k % len(a.backgrounds)]
            frames.append(compose_frame(bg, card, center=CARD_CENTRE, height_frac=CARD_HEIGHT))
            waves.append(a.utterances[d][k % len(a.utterances[d])].astype(np.float64))
            digits.append(d)
    n = len(digits)
    columns: dict[str, np.ndarray] = {}
    made_up: list[str] = []
    mask = next((s for s in fed_inputs(m) if s.modality == "mask"), None)
    for i, s in enumerate(fed_inputs(m)):
        if s is mask:
            continue
        rows = None
        if s.modality == "audio":
            rows = _fit(_audio_rows(s, waves, a.sample_rate), s, n)
        elif s.modality == "video":
            rows = _fit(_video_rows(s, frames), s, n)
        if rows is None:
            rows = _noise(s, n, seed=i)
            made_up.append(s.name)
        columns[s.name] = rows
    # which samples carry which modality: all of them both, then one per digit missing each
    present = [("audio", "video")] * n
    if mask is not None:
        first = [digits.index(d) for d in range(10)]
        picks = first + first
        present += [("audio",)] * 10 + [("video",)] * 10
    else:
        picks = []
    index = list(range(n)) + picks
    feeds: list[dict[str, np.ndarray]] = []
    for row, mods in zip(index, present, strict=True):
        f: dict[str, np.ndarray] = {}
        for s in fed_inputs(m):
            if s is mask:
                cols = [1.0 if c in mods else 0.0 for c in m.mask_order]
                f[s.name] = np.asarray([cols], dtype=np_dtype(s.dtype))
                continue
            x = columns[s.name][row : row + 1].copy()
            if s.modality in ("audio", "video") and s.modality not in mods:
                x[...] = 0
            f[s.name] = x
        feeds.append(f)
    labels = [m.labels.index(str(digits[r])) if str(digits[r]) in m.labels else None
              for r in index]  # fmt: skip
    source = f"{len(feeds)} bundled demo samples"
    if made_up:
        source += f" (seeded noise for {', '.join(made_up)})"
    return Samples(feeds=feeds, labels=labels, source=source)


__all__ = ["Samples", "build_samples", "fed_inputs"]
