"""Model features from raw AV-digits samples, through the reference pre-processing only.

Training must see exactly what the runtime computes, so features come from
`avfuse.kernels.reference` (`log_mel` batched over windows, `image_to_tensor`
per frame) and nothing else. They are computed un-normalised (dB values and
[0, 1] gray), cached per split on disk as float32 keyed by the data-set
version and the pre-processing parameters, and normalised in memory with
statistics of the train split; those statistics go into the manifest as
``AudioParams.mean/std`` and ``VideoParams.mean/std``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from avfuse.kernels.reference import AudioParams, VideoParams, image_to_tensor, log_mel

#: pre-processing the default model is trained with (normalisation filled in from data)
AUDIO = AudioParams()
VIDEO = VideoParams(height=48, width=64, colour="gray", mean=(0.0,), std=(1.0,))
_CHUNK = 128


@dataclass(frozen=True)
class Features:
    """Model-ready arrays of one split.

    Attributes:
        audio: (N, n_mels, frames) float32 log-mel.
        image: (N, C, H, W) float32 image tensor.
        labels: (N,) int64 class indices.
        version: the data-set version the features were computed from.
    """

    audio: np.ndarray
    image: np.ndarray
    labels: np.ndarray
    version: str = ""

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index: np.ndarray) -> Features:
        """Rows `index` (a copy)."""
        return Features(self.audio[index], self.image[index], self.labels[index], self.version)


@dataclass(frozen=True, kw_only=True)
class Normalisation:
    """Train-split statistics; `audio_params`/`video_params` carry them to the manifest."""

    audio_mean: float
    audio_std: float
    video_mean: float
    video_std: float

    @classmethod
    def fit(cls, raw: Features) -> Normalisation:
        """Mean/std of the un-normalised dB values and gray levels (float64 sums)."""
        return cls(
            audio_mean=float(raw.audio.mean(dtype=np.float64)),
            audio_std=float(raw.audio.std(dtype=np.float64)),
            video_mean=float(raw.image.mean(dtype=np.float64)),
            video_std=float(raw.image.std(dtype=np.float64)),
        )

    def audio_params(self, base: AudioParams = AUDIO) -> AudioParams:
        """`base` with this mean/std."""
        return replace(base, mean=self.audio_mean, std=self.audio_std)

    def video_params(self, base: VideoParams = VIDEO) -> VideoParams:
        """`base` with this mean/std (one channel)."""
        return replace(base, mean=(self.video_mean,), std=(self.video_std,))

    def apply(self, raw: Features) -> Features:
        """Normalised float32 copy of `raw`."""
        a = (raw.audio - np.float32(self.audio_mean)) / np.float32(self.audio_std)
        v = (raw.image - np.float32(self.video_mean)) / np.float32(self.video_std)
        return Features(a.astype(np.float32), v.astype(np.float32), raw.labels, raw.version)


def audio_features(audio: np.ndarray, params: AudioParams, *, progress: bool = False) -> np.ndarray:
    """Reference log-mel of (N, samples) windows -> (N, n_mels, frames) float32, in chunks."""
    n = audio.shape[0]
    out = np.empty((n, params.n_mels, params.frames), dtype=np.float32)
    for start in _progress(range(0, n, _CHUNK), progress, "log-mel"):
        out[start : start + _CHUNK] = log_mel(audio[start : start + _CHUNK], params)
    return out


def image_features(
    images: np.ndarray, params: VideoParams, *, progress: bool = False
) -> np.ndarray:
    """Reference image tensors of (N, H, W, 3) BGR frames -> (N, C, h, w) float32."""
    out = np.empty((images.shape[0], params.channels, params.height, params.width), np.float32)
    for i in _progress(range(images.shape[0]), progress, "images"):
        out[i] = image_to_tensor(images[i], params, "bgr24")
    return out


def raw_features(
    images: np.ndarray,
    audio: np.ndarray,
    labels: np.ndarray,
    *,
    audio_params: AudioParams = AUDIO,
    video_params: VideoParams = VIDEO,
    progress: bool = False,
) -> Features:
    """Un-normalised features (normalisation of the params is ignored)."""
    ap = replace(audio_params, mean=0.0, std=1.0)
    vp = replace(
        video_params, mean=(0.0,) * video_params.channels, std=(1.0,) * video_params.channels
    )
    return Features(
        audio_features(audio, ap, progress=progress),
        image_features(images, vp, progress=progress),
        np.asarray(labels, dtype=np.int64),
    )


def cache_dir() -> Path:
    """Where feature caches live: ``features/`` in the data set's cache root."""
    from avfuse.data import cache_root

    return Path(cache_root()) / "features"


def _key(split: str, version: str, audio_params: AudioParams, video_params: VideoParams) -> str:
    blob = json.dumps(
        {"v": version, "a": asdict(audio_params), "i": asdict(video_params)}, sort_keys=True
    )
    return f"{split}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def load_features(
    split: str,
    *,
    data_config: Any = None,
    audio_params: AudioParams = AUDIO,
    video_params: VideoParams = VIDEO,
    use_cache: bool = True,
    progress: bool = True,
) -> Features:
    """Un-normalised features of an AV-digits split, from the disk cache when present.

    Args:
        split: "train", "val", "test" or "test_low_snr".
        data_config: an `avfuse.data.DataConfig` (default: its defaults).
        audio_params: log-mel parameters (mean/std ignored).
        video_params: image parameters (mean/std ignored).
        use_cache: read and write the on-disk cache.
        progress: show progress bars.
    """
    from avfuse.data import DataConfig, load_split

    cfg = data_config if data_config is not None else DataConfig()
    data = load_split(split, config=cfg, progress=progress)
    version = str(data.version)
    path = cache_dir() / f"{_key(split, version, audio_params, video_params)}.npz"
    if use_cache and path.exists():
        with np.load(path) as z:
            return Features(z["audio"], z["image"], z["labels"], version)
    feats = raw_features(
        data.images,
        data.audio,
        data.labels,
        audio_params=audio_params,
        video_params=video_params,
        progress=progress,
    )
    feats = replace(feats, version=version)
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, audio=feats.audio, image=feats.image, labels=feats.labels)
        tmp.replace(path)
    return feats


def _progress(it: range, enabled: bool, desc: str) -> Any:
    if not enabled:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, desc=desc, leave=False)
