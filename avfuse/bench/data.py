"""Prepared model inputs for the benchmarks, and accuracy next to each speed figure.

Inputs come from the AV-digits test split, pre-processed once with the kernels
the runtime uses (`log_mel_kernel` / `image_kernel` with the manifest's
parameters), so model-level timings exclude pre-processing and every setting
can also be scored. Where the data set cannot be loaded (the data extra missing,
espeak-ng absent), seeded random inputs stand in and accuracy is reported as
unavailable with the reason, never silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from avfuse.backends.base import Backend
from avfuse.manifest import Manifest


@dataclass(frozen=True, kw_only=True)
class BenchData:
    """Feeds for every sample (batch axis first) and labels where known.

    Attributes:
        feeds: input name -> array with N rows.
        labels: label index per row, or None for synthetic inputs.
        source: "av-digits:test" or "synthetic".
        reason: why synthetic inputs were used (None for real data).
    """

    feeds: dict[str, np.ndarray]
    labels: np.ndarray | None
    source: str
    reason: str | None = None

    @property
    def n(self) -> int:
        """Number of samples."""
        return int(next(iter(self.feeds.values())).shape[0])

    def batch(self, index: np.ndarray | list[int]) -> dict[str, np.ndarray]:
        """Contiguous feeds for the rows in `index` (allocates; not for timed loops)."""
        idx = np.asarray(index, dtype=np.int64)
        return {k: np.ascontiguousarray(v[idx]) for k, v in self.feeds.items()}

    def describe(self) -> dict[str, Any]:
        """JSON-ready description for the result record."""
        return {"source": self.source, "samples": self.n, "reason": self.reason}


def _fixed_shape(shape: tuple[Any, ...], n: int) -> tuple[int, ...]:
    return (n, *(d if isinstance(d, int) else 1 for d in shape[1:]))


def synthetic_data(manifest: Manifest, *, n: int = 64, seed: int = 0, reason: str) -> BenchData:
    """Seeded standard-normal inputs (masks all ones) in the manifest's shapes."""
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    state_inputs = {p.input for p in manifest.state}
    for s in manifest.inputs:
        if s.name in state_inputs:
            continue
        shape = _fixed_shape(s.shape, n)
        if s.modality == "mask":
            feeds[s.name] = np.ones(shape, np.float32)
        else:
            feeds[s.name] = rng.standard_normal(shape).astype(np.float32)
    return BenchData(feeds=feeds, labels=None, source="synthetic", reason=reason)


def features_from_split(manifest: Manifest, split: Any, *, limit: int = 0) -> BenchData:
    """Pre-process a loaded split (.images BGR uint8, .audio int16, .labels) for the model."""
    from avfuse.kernels import image_kernel, log_mel_kernel

    n = len(split.labels) if not limit else min(limit, len(split.labels))
    feeds: dict[str, np.ndarray] = {}
    for s in manifest.inputs:
        if s.modality == "audio" and manifest.audio is not None:
            k = log_mel_kernel(manifest.audio)
            audio = np.asarray(split.audio[:n], dtype=np.float32) / np.float32(32768.0)
            out = np.empty(k.out_shape(audio.shape[1], n), np.float32)
            k(audio, out)
            feeds[s.name] = out
        elif s.modality == "video" and manifest.video is not None:
            k = image_kernel(manifest.video)
            out = np.empty((n, *k.out_shape), np.float32)
            for i in range(n):
                k(np.ascontiguousarray(split.images[i]), "bgr24", out[i])
            feeds[s.name] = out
        elif s.modality == "mask":
            feeds[s.name] = np.ones(_fixed_shape(s.shape, n), np.float32)
    labels = np.asarray(split.labels[:n]).astype(np.int64)
    return BenchData(feeds=feeds, labels=labels, source="av-digits:test")


def load_bench_data(manifest: Manifest, *, limit: int = 0, seed: int = 0) -> BenchData:
    """The AV-digits test split as model inputs, or seeded synthetic inputs with the reason."""
    try:
        from avfuse.data import DataConfig, load_split

        split = load_split("test", config=DataConfig(), progress=False)
    except Exception as e:  # any failure to get data degrades to synthetic, with the reason
        reason = f"AV-digits test split unavailable ({type(e).__name__}: {e})".splitlines()[0]
        return synthetic_data(manifest, n=64, seed=seed, reason=reason)
    return features_from_split(manifest, split, limit=limit)


def calibration_data(manifest: Manifest, *, n: int, fallback: BenchData) -> BenchData:
    """`n` samples of the AV-digits val split for static int8 calibration (never the test
    split it is scored on); the first rows of `fallback` when val cannot be loaded."""
    try:
        from avfuse.data import DataConfig, load_split

        split = load_split("val", config=DataConfig(), progress=False)
    except Exception as e:  # degrade, and say so in the record
        reason = f"val split unavailable ({type(e).__name__}: {e})".splitlines()[0]
        rows = fallback.batch(list(range(min(n, fallback.n))))
        return BenchData(feeds=rows, labels=None, source=f"{fallback.source}[:{n}]", reason=reason)
    data = features_from_split(manifest, split, limit=n)
    return BenchData(feeds=data.feeds, labels=data.labels, source="av-digits:val")


def accuracy(backend: Backend, data: BenchData, *, batch: int = 64) -> dict[str, Any]:
    """Top-1 accuracy of a loaded backend on the prepared data (None without labels)."""
    if data.labels is None:
        return {"top1": None, "samples": 0, "reason": data.reason}
    out_name = backend.output_specs[0].name
    correct = 0
    for start in range(0, data.n, batch):
        idx = np.arange(start, min(start + batch, data.n))
        logits = backend.infer(data.batch(idx))[out_name]
        correct += int((np.argmax(logits, axis=1) == data.labels[idx]).sum())
    return {"top1": correct / data.n, "samples": data.n, "reason": None}
