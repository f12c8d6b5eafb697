"""Pre-processing kernels behind one interface, chosen by name.

    reference  numpy float64 (kernels/reference.py): the definition, used by training
    numba      CPU, JIT-compiled with cache=True (kernels/numba_*.py)
    cuda       GPU (kernels/cuda, built by CMakeLists.txt), where a GPU exists

Interfaces (every implementation writes float32 into a caller-owned `out`, so the
hot path allocates nothing per frame):

    LogMelKernel(params)(audio, out)               audio (n,) or (B, n) -> (.., n_mels, frames)
    ImageKernel(params)(frame, pixel_format, out)  camera frame -> (C, H, W)
    ImageKernel(params).batch(frames, fmt, out)    (B, ...) frames -> (B, C, H, W)
    StreamingLogMel(kernel, history_frames=None)   per-stream mel ring: only new hops are
                                                   transformed; the rest are reused
                                                   (kernels/streaming.py)

`log_mel_kernel(params, impl="auto")` and `image_kernel(params, impl="auto")` return
the fastest available implementation unless one is forced by name.
`warm.warm_kernels(mel=, image=, frames=, streaming_mel=)` (kernels/warm.py) makes every
specialisation a run calls before capture starts; `python -m avfuse.kernels.warm` fills
numba's cache at install time.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod

import numpy as np

from avfuse.errors import BackendUnavailable, UsageError
from avfuse.kernels import reference as ref
from avfuse.kernels.reference import AudioParams, VideoParams

#: implementation name -> module providing `LogMel` and `Image` classes; "auto" tries in order
IMPLEMENTATIONS = {
    "numba": "avfuse.kernels.numba_cpu",
    "cuda": "avfuse.kernels.cuda_gpu",
    "reference": "avfuse.kernels",
}
AUTO_ORDER = ("cuda", "numba", "reference")


class LogMelKernel(ABC):
    """Normalised log-mel of one or many audio windows."""

    name = "abstract"

    def __init__(self, params: AudioParams) -> None:
        params.validate()
        self.params = params

    def out_shape(self, n_samples: int, batch: int | None = None) -> tuple[int, ...]:
        """Shape `out` must have for `n_samples` of audio (and a batch, if any)."""
        frames = ref.n_frames(n_samples, self.params.n_fft, self.params.hop_length)
        core = (self.params.n_mels, frames)
        return core if batch is None else (batch, *core)

    @abstractmethod
    def __call__(self, audio: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """audio float32 (n,) or (B, n) -> float32 (n_mels, frames) or (B, n_mels, frames)."""

    def frames(self, audio: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Normalised log-mel columns of every whole frame in `audio` into out (n_mels, k)."""
        return self(audio, out)

    def frames_at(self, audio: np.ndarray, ring: np.ndarray, col: int) -> None:
        """Write the columns of every whole frame of `audio` into ring[:, col:col + k].

        Used by StreamingLogMel to transform only new hops straight into its mel ring;
        fast implementations override it so that nothing is allocated.
        """
        k = ref.n_frames(audio.shape[-1], self.params.n_fft, self.params.hop_length)
        ring[:, col : col + k] = self(audio)

    def warmup(self) -> None:
        """Compile / load whatever the first call would (the runtime calls this before frame 1)."""
        n = self.params.window_samples
        self(np.zeros(n, np.float32), np.empty(self.out_shape(n), np.float32))


class ImageKernel(ABC):
    """Fused colour conversion + area resize + normalise + HWC->CHW."""

    name = "abstract"

    def __init__(self, params: VideoParams) -> None:
        params.validate()
        self.params = params

    @property
    def out_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the model's image input."""
        return (self.params.channels, self.params.height, self.params.width)

    @abstractmethod
    def __call__(
        self, frame: np.ndarray, pixel_format: str = "bgr24", out: np.ndarray | None = None
    ) -> np.ndarray:
        """One frame -> float32 (C, H, W) written into `out` when given."""

    def batch(
        self, frames: np.ndarray, pixel_format: str = "bgr24", out: np.ndarray | None = None
    ) -> np.ndarray:
        """frames (B, ...) of one pixel format and size -> float32 (B, C, H, W)."""
        if out is None:
            out = np.empty((frames.shape[0], *self.out_shape), np.float32)
        for i in range(frames.shape[0]):
            self(frames[i], pixel_format, out[i])
        return out

    def warmup(self, height: int = 240, width: int = 320) -> None:
        """Compile / load whatever the first call would."""
        self(np.zeros((height, width, 3), np.uint8), "bgr24", np.empty(self.out_shape, np.float32))


class ReferenceLogMel(LogMelKernel):
    """The float64 numpy reference, cast to float32 at the end."""

    name = "reference"

    def __call__(self, audio: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        res = ref.log_mel(audio, self.params)
        if out is None:
            return res.astype(np.float32)
        out[...] = res
        return out


class ReferenceImage(ImageKernel):
    """The float64 numpy reference, cast to float32 at the end."""

    name = "reference"

    def __call__(
        self, frame: np.ndarray, pixel_format: str = "bgr24", out: np.ndarray | None = None
    ) -> np.ndarray:
        res = ref.image_to_tensor(frame, self.params, pixel_format)
        if out is None:
            return res.astype(np.float32)
        out[...] = res
        return out


# The reference module is itself an implementation ("reference" -> this module).
LogMel = ReferenceLogMel
Image = ReferenceImage


def _load(impl: str, kind: str, params: object) -> object:
    if impl not in IMPLEMENTATIONS:
        raise UsageError(
            f"unknown kernel implementation {impl!r}; "
            f"choose one of {sorted(IMPLEMENTATIONS)} or 'auto'"
        )
    try:
        module = importlib.import_module(IMPLEMENTATIONS[impl])
    except ImportError as e:
        raise BackendUnavailable(f"kernel implementation {impl!r} is unavailable: {e}") from e
    return getattr(module, kind)(params)


def _pick(impl: str, kind: str, params: object) -> object:
    if impl != "auto":
        return _load(impl, kind, params)
    last: Exception | None = None
    for name in AUTO_ORDER:
        try:
            return _load(name, kind, params)
        except (BackendUnavailable, AttributeError) as e:
            last = e
    raise BackendUnavailable(f"no kernel implementation available: {last}")


def log_mel_kernel(params: AudioParams, impl: str = "auto") -> LogMelKernel:
    """The log-mel kernel for `params`: the fastest available, or the one named."""
    return _pick(impl, "LogMel", params)  # type: ignore[return-value]


def image_kernel(params: VideoParams, impl: str = "auto") -> ImageKernel:
    """The image kernel for `params`: the fastest available, or the one named."""
    return _pick(impl, "Image", params)  # type: ignore[return-value]


__all__ = [
    "AudioParams",
    "ImageKernel",
    "LogMelKernel",
    "VideoParams",
    "image_kernel",
    "log_mel_kernel",
]
