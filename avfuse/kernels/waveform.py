"""Raw-waveform model inputs: `WaveformParams` and the kernel that fills the input."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, kw_only=True)
class WaveformParams:
    """Raw audio chunks as a model input.

    Attributes:
        sample_rate: samples per second.
        chunk: new samples per call.
        context: samples of history before the chunk (the model sees context + chunk).
        scale: "float" (samples in [-1, 1]) or "int16" (x 32768).
        normalize: "none", "peak" or "rms".
    """

    sample_rate: int
    chunk: int
    context: int = 0
    scale: str = "float"
    normalize: str = "none"

    @property
    def window_samples(self) -> int:
        """Samples the model sees per call."""
        return self.context + self.chunk

    def validate(self) -> None:
        """Raise ValueError naming the parameter when the set is inconsistent."""
        if self.sample_rate <= 0:
            raise ValueError("sample_rate must be positive")
        if self.chunk <= 0:
            raise ValueError("chunk must be positive")
        if self.context < 0:
            raise ValueError("context must be >= 0")
        if self.scale not in ("float", "int16"):
            raise ValueError("scale must be 'float' or 'int16'")
        if self.normalize not in ("none", "peak", "rms"):
            raise ValueError("normalize must be 'none', 'peak' or 'rms'")


class WaveformKernel:
    """Copies (and scales) a window of samples into the model input."""

    name = "waveform"

    def __init__(self, params: WaveformParams) -> None:
        params.validate()
        self.params = params
        self._gain = 32768.0 if params.scale == "int16" else 1.0

    def __call__(self, window: np.ndarray, out: np.ndarray) -> np.ndarray:
        flat = out.reshape(-1)
        np.multiply(window, self._gain, out=flat, casting="unsafe")
        if self.params.normalize == "peak":
            peak = float(np.max(np.abs(flat)))
            if peak > 0:
                flat /= peak
        elif self.params.normalize == "rms":
            rms = float(np.sqrt(np.mean(flat * flat)))
            if rms > 0:
                flat /= rms
        return out


__all__ = ["WaveformKernel", "WaveformParams"]
