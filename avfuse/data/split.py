"""Load (or generate once and cache) an AV-digits split.

Splits are cached as ``<root>/avdigits-<version key>/<split>.npz``; the root is
``$AVFUSE_CACHE_DIR`` if set, else ``platformdirs.user_cache_dir("avfuse")``. The version
key hashes the config, the generator version and the espeak-ng version, so a change to
any of them regenerates rather than reusing stale data.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avfuse.data.config import (
    SPLITS,
    DataConfig,
    check_trainable,
    image_sources_for,
    split_of_variant,
    voice_bases_for,
)
from avfuse.errors import DataError, UsageError

__all__ = ["AVDigitsSplit", "cache_root", "load_split", "split_metadata"]


@dataclass(frozen=True, eq=False)
class AVDigitsSplit:
    """One split of AV-digits: paired camera frames and 1 s audio windows.

    Splits are held out by voice family and by image source: val and test use espeak-ng
    base voices and variants, Hershey fonts and scikit-learn digit blocks that train never
    uses (``meta`` lists them). test_low_snr is the test split with its speech mixed at
    ``config.low_snr_db``.

    Attributes:
        name: split name.
        images: (N, 48, 64, 3) uint8 BGR, the camera frame at the model's input size.
        audio: (N, 16000) int16, 16 kHz mono, 1.0 s.
        labels: (N,) int64 in 0..10 (10: "none", no card and nothing spoken).
        voices: (N,) str, the espeak-ng voice (``base+variant``), "" for "none".
        image_sources: (N,) str, e.g. ``sklearn:writer-block-3``, ``font:hershey_plain``.
        version: data-set version key (goes into model manifests).
        meta: held-out voices and sources, sizes and the config.
    """

    name: str
    images: np.ndarray
    audio: np.ndarray
    labels: np.ndarray
    voices: np.ndarray
    image_sources: np.ndarray
    version: str
    meta: dict[str, object] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)


def cache_root() -> Path:
    """Where built splits are cached (``$AVFUSE_CACHE_DIR`` overrides)."""
    env = os.environ.get("AVFUSE_CACHE_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("avfuse"))


def split_metadata(name: str, config: DataConfig) -> dict[str, object]:
    """What a split is made of: its voice bases, variants and image sources."""
    from avfuse.data.speech import list_variants

    base = "test" if name == "test_low_snr" else name
    return {
        "split": name,
        "voice_bases": list(voice_bases_for(name)),
        "voice_variants": [v for v in list_variants() if split_of_variant(v) == base]
        + (["(none)"] if base == "train" else []),
        "image_sources": list(image_sources_for(name)),
        "snr_db": [config.low_snr_db] * 2 if name == "test_low_snr" else list(config.snr_db_range),
        "n": config.size_of(name),
    }


def load_split(
    name: str,
    config: DataConfig | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> AVDigitsSplit:
    """Load a split from the cache, generating and caching it first if needed.

    Args:
        name: "train", "val", "test" or "test_low_snr".
        config: data configuration (default ``DataConfig()``).
        cache_dir: cache root (default: see `cache_root`).
        progress: show progress bars while generating (only on a terminal).

    Raises:
        UsageError: unknown split name.
        DataError: espeak-ng is missing, a cache file is unreadable, or the config draws
            on a test-only source (`avfuse.data.config.check_trainable`).
    """
    if name not in SPLITS:
        raise UsageError(f"unknown split {name!r}; use one of {', '.join(SPLITS)}")
    config = DataConfig() if config is None else config
    check_trainable(config)
    from avfuse.data.speech import espeak_version

    version = config.key(espeak_version())
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    path = root / f"avdigits-{version}" / f"{name}.npz"
    meta = split_metadata(name, config)
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in ("images", "audio", "labels", "voices", "image_sources")}
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(
                f"cached split {path} is unreadable ({exc}); delete it to regenerate"
            ) from exc
        return AVDigitsSplit(name=name, version=version, meta=meta, **arrays)
    from avfuse.data.generate import build_samples
    from avfuse.data.speech import build_pool

    show = progress and sys.stderr.isatty()
    pool = build_pool(name, config, progress=show)
    images = None
    test_path = path.with_name("test.npz")
    if name == "test_low_snr" and test_path.exists():  # same frames as test: reuse them
        with np.load(test_path, allow_pickle=False) as z:
            images = z["images"]
    s = build_samples(name, config, pool, images=images, progress=show)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            tmp,
            images=s.images,
            audio=s.audio,
            labels=s.labels,
            voices=s.voices,
            image_sources=s.image_sources,
        )
        os.replace(tmp, path)  # atomic: a reader never sees half a file
    except OSError as exc:
        raise DataError(
            f"cannot write the split cache {path} ({exc}); set AVFUSE_CACHE_DIR to a writable "
            "folder with ~1 GB free"
        ) from exc
    return AVDigitsSplit(
        name=name,
        images=s.images,
        audio=s.audio,
        labels=s.labels,
        voices=s.voices,
        image_sources=s.image_sources,
        version=version,
        meta=meta,
    )
