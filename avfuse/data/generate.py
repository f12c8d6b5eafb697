"""Build a split's samples from its utterance pool, in parallel and deterministically.

Sample i of a split depends only on (seed, split, i) and the split's pool (itself seeded
by (seed, split)): the image from one generator, the audio from another. So any split
regenerates identically on its own, with any number of workers, and test_low_snr has the
test split's images and speech exactly, only its SNR differs.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from avfuse.data.config import (
    NONE_LABEL,
    DataConfig,
    check_trainable,
    image_sources_for,
    split_index,
)
from avfuse.data.frames import MODEL_SIZE, render_frame
from avfuse.data.mixing import WINDOW, render_audio
from avfuse.data.speech import UtterancePool

__all__ = ["SampleArrays", "build_samples", "sample_labels", "sample_rngs"]

_CHUNK = 200
#: Image source kinds and how often each is drawn: pen strokes most, being the most varied
#: handwriting; fonts and scikit-learn's 8x8 digits alike.
_KINDS = ("strokes", "font", "sklearn")
_KIND_WEIGHTS = (0.4, 0.3, 0.3)
_MIN_PARALLEL = 400  # below this, worker start-up costs more than it saves


@dataclass(frozen=True)
class SampleArrays:
    """Columns of a run of samples (see AVDigitsSplit for their meaning)."""

    images: np.ndarray
    audio: np.ndarray
    labels: np.ndarray
    voices: np.ndarray
    image_sources: np.ndarray


def sample_labels(split: str, config: DataConfig) -> np.ndarray:
    """Balanced labels of a split: ~none_fraction "none", the rest cycling 0-9, shuffled."""
    n = config.size_of(split)
    n_none = int(round(n * config.none_fraction))
    labels = np.concatenate([np.arange(n - n_none) % 10, np.full(n_none, NONE_LABEL)])
    rng = np.random.default_rng([config.seed, split_index(split), 9001])
    return rng.permutation(labels).astype(np.int64)


def sample_rngs(
    split: str, index: int, config: DataConfig
) -> tuple[np.random.Generator, np.random.Generator]:
    """The (image, audio) generators of one sample."""
    sid = split_index(split)
    return (
        np.random.default_rng([config.seed, sid, index, 1]),
        np.random.default_rng([config.seed, sid, index, 2]),
    )


def _build_range(
    split: str,
    config: DataConfig,
    pool: UtterancePool,
    labels: np.ndarray,
    start: int,
    stop: int,
    draw_images: bool = True,
) -> SampleArrays:
    n = stop - start
    images = np.zeros((n, *MODEL_SIZE, 3) if draw_images else (n, 0, 0, 3), np.uint8)
    audio = np.empty((n, WINDOW), np.int16)
    voices, sources = [], []
    srcs = image_sources_for(split)
    by_kind = {k: [x for x in srcs if x.startswith(k + ":")] for k in _KINDS}
    snr = config.low_snr_db if split == "test_low_snr" else None
    for k, i in enumerate(range(start, stop)):
        label = int(labels[i])
        img_rng, aud_rng = sample_rngs(split, i, config)
        kind = _KINDS[int(img_rng.choice(len(_KINDS), p=_KIND_WEIGHTS))]
        of_kind = by_kind[kind]
        src = of_kind[int(img_rng.integers(len(of_kind)))]
        digit = None if label == NONE_LABEL else label
        if draw_images:
            images[k] = render_frame(digit, src, img_rng, config)
        row = int(aud_rng.integers(len(pool.voices)))
        utt = None if digit is None else pool.digits[row][digit]
        audio[k] = render_audio(utt, aud_rng, config, pool, snr_db=snr).mixture
        voices.append("" if digit is None else pool.voices[row].name)
        sources.append("" if digit is None else src)
    return SampleArrays(
        images,
        audio,
        labels[start:stop].copy(),
        np.array(voices, dtype=str),
        np.array(sources, dtype=str),
    )


_WORKER: dict[str, object] = {}


def _init_worker(
    split: str, config: DataConfig, pool: UtterancePool, labels: np.ndarray, draw: bool
) -> None:
    _WORKER.update(split=split, config=config, pool=pool, labels=labels, draw=draw)


def _init_process(*args: object) -> None:
    import cv2

    cv2.setNumThreads(0)  # one process per core already; no thread pool inherited over fork
    _init_worker(*args)  # type: ignore[arg-type]


def _work(bounds: tuple[int, int]) -> SampleArrays:
    w = _WORKER
    args = (w["split"], w["config"], w["pool"], w["labels"], *bounds, w["draw"])
    return _build_range(*args)  # type: ignore[arg-type]


def _executor(args: tuple[object, ...], workers: int) -> Executor:
    """Worker processes by fork where the platform has it, else threads.

    Fork rather than spawn: spawn re-runs the caller's main module, which breaks scripts
    without a ``__main__`` guard. Threads (OpenCV and numpy release the GIL) still give
    ~1.4x on two cores where fork is missing.
    """
    if "fork" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("fork")
        return ProcessPoolExecutor(
            max_workers=workers, mp_context=ctx, initializer=_init_process, initargs=args
        )
    _init_worker(*args)  # type: ignore[arg-type]
    return ThreadPoolExecutor(max_workers=workers)


def build_samples(
    split: str,
    config: DataConfig,
    pool: UtterancePool,
    *,
    images: np.ndarray | None = None,
    progress: bool = False,
) -> SampleArrays:
    """Build every sample of a split (``config.workers`` processes for large splits).

    Args:
        images: the split's frames if already known (test_low_snr reuses test's), so only
            the audio is rendered.
    """
    check_trainable(config)
    draw = images is None
    labels = sample_labels(split, config)
    n = len(labels)
    bounds = [(a, min(n, a + _CHUNK)) for a in range(0, n, _CHUNK)]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, desc=f"avdigits {split}", unit="sample", leave=False)
    parts: list[SampleArrays] = []
    if config.workers <= 1 or n < _MIN_PARALLEL:
        for b in bounds:
            parts.append(_build_range(split, config, pool, labels, *b, draw))
            if bar is not None:
                bar.update(b[1] - b[0])
    else:
        with _executor((split, config, pool, labels, draw), config.workers) as ex:
            for b, part in zip(bounds, ex.map(_work, bounds), strict=True):
                parts.append(part)
                if bar is not None:
                    bar.update(b[1] - b[0])
        _WORKER.clear()
    if bar is not None:
        bar.close()
    cols = {
        f: np.concatenate([getattr(p, f) for p in parts])
        for f in ("images", "audio", "labels", "voices", "image_sources")
    }
    if images is not None:
        cols["images"] = images
    return SampleArrays(**cols)
