"""Pre-processing kernels behind one interface, chosen by name.

    reference  numpy float64 (kernels/reference.py): the definition, used by training
    numpy      CPU, vectorised numpy with kept buffers (kernels/numpy_fast.py): what a
               plain `pip install avfuse` runs
    numba      CPU, JIT-compiled with cache=True (kernels/numba_*.py), the fastest on a
               CPU; an extra: `pip install 'avfuse[fast]'`
    cuda       GPU (kernels/cuda, built by CMakeLists.txt), where a GPU exists

    opencv     OpenCV on uint8 (kernels/opencv_image.py): the image variants of
               third-party models (interpolation other than "exact-area"); "reference"
               names it for those, since OpenCV's rounding is their definition

Interfaces (every implementation writes into a caller-owned `out`, so the hot path
allocates nothing per frame):

    LogMelKernel(params)(audio, out)               audio (n,) or (B, n) -> (.., n_mels, frames)
                                                   (or (.., frames, n_mels): params.layout)
    ImageKernel(params)(frame, pixel_format, out)  camera frame -> params.out_shape, float32
                                                   (or uint8: params.dtype)
    ImageKernel(params).batch(frames, fmt, out)    (B, ...) frames -> (B, *out_shape)
    StreamingLogMel(kernel, history_frames=None)   per-stream mel ring: only new hops are
                                                   transformed; the rest are reused
                                                   (kernels/streaming.py)
    WaveformKernel(params)(window, out)            raw samples -> the model's waveform input
                                                   (kernels/waveform.py)

Each kernel class says which parameters its algorithm implements
(`Kernel.supports(params)`; `Kernel.unsupported(params)` names the first setting it
does not). `log_mel_kernel(params, impl="auto")` and `image_kernel(params, impl="auto")`
return the fastest available implementation that supports `params` unless one is
forced by name; forcing one that does not support them raises BackendUnavailable
naming the setting.
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
    "numpy": "avfuse.kernels.numpy_fast",
    "cuda": "avfuse.kernels.cuda_gpu",
    "reference": "avfuse.kernels",
}
#: numba where the `fast` extra is installed, else the numpy kernels, which need nothing
#: beyond numpy; the reference takes what neither implements
AUTO_ORDER = ("cuda", "numba", "numpy", "reference")
#: what to install for an implementation that is missing
INSTALL_HINTS = {"numba": "pip install 'avfuse[fast]'"}


def _refuse(cls: type, params: object) -> None:
    """Raise UsageError when kernel class `cls` does not implement `params`."""
    reason = cls.unsupported(params)
    if reason is not None:
        raise UsageError(
            f"the {cls.name!r} kernel does not implement {reason}; "
            "pick one with log_mel_kernel/image_kernel(params, 'auto')"
        )


class LogMelKernel(ABC):
    """Normalised log-mel of one or many audio windows."""

    name = "abstract"

    @classmethod
    def unsupported(cls, params: AudioParams) -> str | None:
        """The first setting of `params` this kernel's algorithm does not implement, or None.

        The default is avfuse's own log-mel only (no centring, HTK mel, power dB relative
        to 1, mels_frames); the reference overrides it to accept every variant.
        """
        return ref.audio_variant(params)

    @classmethod
    def supports(cls, params: AudioParams) -> bool:
        """Whether this kernel computes the log-mel `params` describe."""
        return cls.unsupported(params) is None

    def __init__(self, params: AudioParams) -> None:
        params.validate()
        _refuse(type(self), params)
        self.params = params

    def out_shape(self, n_samples: int, batch: int | None = None) -> tuple[int, ...]:
        """Shape `out` must have for `n_samples` of audio (and a batch, if any)."""
        core = self.params.shape_for(n_samples)
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
    """Fused colour conversion + resize + normalise + layout of one camera frame."""

    name = "abstract"

    @classmethod
    def unsupported(cls, params: VideoParams) -> str | None:
        """The first setting of `params` this kernel does not implement, or None.

        The default is the exact-area NCHW float32 path over the whole frame.
        """
        return ref.video_variant(params)

    @classmethod
    def supports(cls, params: VideoParams) -> bool:
        """Whether this kernel computes the image tensor `params` describe."""
        return cls.unsupported(params) is None

    def __init__(self, params: VideoParams) -> None:
        params.validate()
        _refuse(type(self), params)
        self.params = params

    @property
    def out_shape(self) -> tuple[int, int, int]:
        """(C, H, W) or (H, W, C) of the model's image input."""
        return self.params.out_shape

    @property
    def out_dtype(self) -> np.dtype:
        """dtype of `out`: float32, or uint8 for params.dtype "uint8"."""
        return np.dtype(np.float32)

    @abstractmethod
    def __call__(
        self, frame: np.ndarray, pixel_format: str = "bgr24", out: np.ndarray | None = None
    ) -> np.ndarray:
        """One frame -> `out_shape` of `out_dtype`, written into `out` when given."""

    def batch(
        self, frames: np.ndarray, pixel_format: str = "bgr24", out: np.ndarray | None = None
    ) -> np.ndarray:
        """frames (B, ...) of one pixel format and size -> (B, *out_shape)."""
        if out is None:
            out = np.empty((frames.shape[0], *self.out_shape), self.out_dtype)
        for i in range(frames.shape[0]):
            self(frames[i], pixel_format, out[i])
        return out

    def warmup(self, height: int = 240, width: int = 320) -> None:
        """Compile / load whatever the first call would."""
        out = np.empty(self.out_shape, self.out_dtype)
        self(np.zeros((height, width, 3), np.uint8), "bgr24", out)


class ReferenceLogMel(LogMelKernel):
    """The float64 numpy reference, cast to float32 at the end; every variant."""

    name = "reference"

    @classmethod
    def unsupported(cls, params: AudioParams) -> str | None:
        return None

    def __call__(self, audio: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        res = ref.log_mel(audio, self.params)
        if out is None:
            return res.astype(np.float32)
        out[...] = res
        return out


class ReferenceImage(ImageKernel):
    """The float64 numpy reference of the exact-area path, cast to float32 at the end.

    Covers the roi and both layouts; the OpenCV interpolations are defined by
    kernels/opencv_image.py, which `image_kernel(params, "reference")` returns for them.
    """

    name = "reference"

    @classmethod
    def unsupported(cls, params: VideoParams) -> str | None:
        if params.interpolation != "exact-area":
            return f"interpolation={params.interpolation!r} (kernels.opencv_image defines it)"
        return None

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

_OPENCV = "avfuse.kernels.opencv_image"


def _class(impl: str, kind: str, params: object) -> type:
    """The kernel class `impl` provides for `kind` and `params` (raises if none)."""
    if impl not in IMPLEMENTATIONS:
        raise UsageError(
            f"unknown kernel implementation {impl!r}; "
            f"choose one of {sorted(IMPLEMENTATIONS)} or 'auto'"
        )
    name = IMPLEMENTATIONS[impl]
    if impl == "reference" and kind == "Image" and params.interpolation != "exact-area":
        name = _OPENCV  # OpenCV's rounding is the definition of these variants
    try:
        module = importlib.import_module(name)
    except ImportError as e:
        hint = INSTALL_HINTS.get(impl)
        fix = f" ({hint})" if hint else ""
        raise BackendUnavailable(f"kernel implementation {impl!r} is unavailable: {e}{fix}") from e
    cls = getattr(module, kind, None)
    if cls is None:
        raise BackendUnavailable(f"kernel implementation {impl!r} has no {kind} kernel")
    return cls


def _load(impl: str, kind: str, params: object) -> object:
    cls = _class(impl, kind, params)
    params.validate()  # a bad setting is reported as such, not as unsupported
    reason = cls.unsupported(params)
    if reason is not None:
        raise BackendUnavailable(
            f"the {impl!r} {kind} kernel does not implement {reason}; "
            "use impl='auto' or 'reference'"
        )
    return cls(params)


def _pick(impl: str, kind: str, params: object) -> object:
    if impl != "auto":
        return _load(impl, kind, params)
    last: Exception | None = None
    for name in AUTO_ORDER:
        try:
            return _load(name, kind, params)
        except BackendUnavailable as e:
            last = e
    raise BackendUnavailable(f"no kernel implementation available: {last}")


def log_mel_kernel(params: AudioParams, impl: str = "auto") -> LogMelKernel:
    """The log-mel kernel for `params`: the fastest that implements them, or the one named.

    Raises:
        UsageError: unknown `impl`.
        BackendUnavailable: the named implementation is missing here, or does not
            implement `params` (the message names the setting).
    """
    return _pick(impl, "LogMel", params)  # type: ignore[return-value]


def image_kernel(params: VideoParams, impl: str = "auto") -> ImageKernel:
    """The image kernel for `params`: the fastest that implements them, or the one named.

    "auto" picks CUDA, numba or numpy (the first available) only for the exact-area
    NCHW float32 path over the whole frame, the OpenCV kernel for the OpenCV
    interpolations and the reference for the other exact-area settings.

    Raises:
        UsageError: unknown `impl`.
        BackendUnavailable: the named implementation is missing here, or does not
            implement `params` (the message names the setting).
    """
    return _pick(impl, "Image", params)  # type: ignore[return-value]


__all__ = [
    "AudioParams",
    "ImageKernel",
    "LogMelKernel",
    "ReferenceImage",
    "ReferenceLogMel",
    "VideoParams",
    "image_kernel",
    "log_mel_kernel",
]
