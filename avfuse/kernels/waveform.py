"""Raw-waveform model inputs: the samples themselves, scaled as the model was trained.

Models such as silero-vad and DNSMOS read audio samples directly: each call sees
`context + chunk` samples, the chunk being the new audio and the context the tail of
the previous call's input (zeros at the start; the runtime assembles the window). What
differs between models is only the number format: floats in [-1, 1], or int16 sample
values as floats (x 32768, as openwakeword's melspectrogram model expects), sometimes
after a per-window peak or RMS normalisation. Feeding the wrong one is not caught by
any shape check (silero's output moves by 0.97 with int16-scaled input), so the
manifest states it and this kernel applies it.

    normalize  "none"; "peak": x / max|x|; "rms": x / sqrt(mean(x^2)); a silent window
               (max|x| = 0) stays zeros
    scale      "float": as given; "int16": x 32768 (after the normalisation)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avfuse.errors import UsageError

__all__ = ["NORMALIZE_MODES", "WAVEFORM_SCALES", "WaveformKernel", "WaveformParams"]

WAVEFORM_SCALES = ("float", "int16")
NORMALIZE_MODES = ("none", "peak", "rms")
_INT16_GAIN = np.float32(32768.0)


@dataclass(frozen=True, kw_only=True)
class WaveformParams:
    """Raw audio chunks as a model input.

    Attributes:
        sample_rate: samples per second the model expects (Hz).
        chunk: new samples per call.
        context: samples of history before the chunk (the model sees context + chunk).
        scale: "float" (samples in [-1, 1]) or "int16" (x 32768).
        normalize: "none", "peak" or "rms", over the whole window.
        pad_start: the first call comes after the first chunk, its context before the
            stream's start reading as zeros (as silero-vad's package does); False: the
            first call waits for a whole window (as DNSMOS does).
    """

    sample_rate: int
    chunk: int
    context: int = 0
    scale: str = "float"
    normalize: str = "none"
    pad_start: bool = True

    @property
    def window_samples(self) -> int:
        """Samples the model sees per call."""
        return self.context + self.chunk

    def validate(self) -> None:
        """Raise ValueError naming the parameter when the set is inconsistent."""
        if self.sample_rate <= 0:
            raise ValueError("sample_rate must be positive")
        if self.chunk <= 0:
            raise ValueError("chunk must be a positive number of samples")
        if self.context < 0:
            raise ValueError("context must be >= 0 samples")
        if self.scale not in WAVEFORM_SCALES:
            raise ValueError(f"scale must be 'float' or 'int16', got {self.scale!r}")
        if self.normalize not in NORMALIZE_MODES:
            raise ValueError(f"normalize must be 'none', 'peak' or 'rms', got {self.normalize!r}")


class WaveformKernel:
    """Writes one window of samples, normalised and scaled, into the model input.

    `out` is the model input (or its slot in a batch): float32 with window_samples
    elements, in any shape whose other axes are 1, e.g. (1, n) or (n,). Nothing is
    allocated per call.
    """

    name = "waveform"

    def __init__(self, params: WaveformParams) -> None:
        params.validate()
        self.params = params
        self._n = params.window_samples

    @property
    def out_shape(self) -> tuple[int]:
        """(window_samples,): the input without its batch axis."""
        return (self._n,)

    def __call__(self, window: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """window float (window_samples,) -> `out` float32 holding the model's samples."""
        n = self._n
        if window.shape != (n,) or window.dtype.kind != "f":
            raise UsageError(
                f"window must be float samples of shape ({n},), got {window.dtype} "
                f"{window.shape}; convert int16 PCM with / 32768 first"
            )
        if out is None:
            out = np.empty(n, np.float32)
        elif out.size != n or out.dtype != np.float32 or not out.flags.c_contiguous:
            raise UsageError(
                f"out must be a C-contiguous float32 array of {n} samples (other axes 1), "
                f"got {out.dtype} {out.shape}"
            )
        flat = out.reshape(n)
        mode = self.params.normalize
        norm = 0.0
        if mode == "peak":
            norm = max(float(window.max()), -float(window.min()))
        elif mode == "rms":  # squares into `out` first: no temporary the size of a window
            np.square(window, out=flat, casting="unsafe")
            norm = float(np.sqrt(float(flat.sum()) / n))  # pairwise float32 sum
        if norm > 0.0:
            np.divide(window, norm, out=flat, casting="unsafe")
        else:
            np.copyto(flat, window, casting="unsafe")
        if self.params.scale == "int16":
            flat *= _INT16_GAIN
        return out

    def warmup(self) -> None:
        """Run once on silence (nothing to compile; kept for a uniform kernel interface)."""
        self(np.zeros(self._n, np.float32))
