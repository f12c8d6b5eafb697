"""Reference log-mel in numpy float64: the definition the fast audio kernels must match.

The defaults of `AudioParams` are avfuse's own feature (the one its models are trained
on); the other settings describe the log-mel variants of third-party models (librosa
and torchaudio conventions), so that their manifests can say what they were trained on.

    centre    center=False: frame k covers samples [k*hop, k*hop + n_fft) of the window,
              so a frame only depends on its own samples and streams incrementally;
              n_frames = 1 + (n - n_fft) // hop.
              center=True: the window is first padded by n_fft // 2 on both sides
              ("constant": zeros, "reflect": mirrored without the edge sample), as
              librosa.stft and torch.stft do; n_frames = 1 + (n + 2 (n_fft // 2) - n_fft)
              // hop, which is 1 + n // hop for an even n_fft.
    window    periodic Hann of `win_length`, zero-padded to `n_fft` with the taps centred
    spectrum  |rfft(frame * window)| ** power (power 2: re^2 + im^2)
    mel       triangular filters on the HTK or Slaney mel scale between fmin and fmax,
              evaluated at the FFT bin frequencies k * sample_rate / n_fft
              (np.fft.rfftfreq; the top bin of an odd n_fft lies below sample_rate / 2);
              mel_norm="slaney" scales filter i by 2 / (f[i + 2] - f[i]) (librosa's "area"
              normalisation); equal to librosa.filters.mel(htk=..., norm=...)
    log       y = log(max(mel + log_offset, log_floor)) with log "ln", "log10" or "db"
              (20 / power * log10: 10 log10 of a power spectrum, 20 log10 of a magnitude);
              "none" leaves the mel values as they are (no offset, no floor)
    dB ref    db_ref="max": minus the maximum of y over the whole window (librosa
              power_to_db(ref=np.max)); top_db: y = max(y, max(y) - top_db). Both make a
              value depend on the loudest frame of its window, so such features cannot
              be streamed frame by frame.
    normalise (y - mean) / std
    layout    "mels_frames" (..., n_mels, n_frames) or "frames_mels" (..., n_frames, n_mels)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from functools import lru_cache

import numpy as np

__all__ = [
    "AUDIO_LAYOUTS",
    "AudioParams",
    "DB_REFS",
    "LOG_KINDS",
    "MEL_NORMS",
    "MEL_SCALES",
    "PAD_MODES",
    "audio_variant",
    "frame_signal",
    "hann_window",
    "hz_to_mel",
    "log_mel",
    "mel_filterbank",
    "mel_to_hz",
    "n_frames",
    "normalise_log_mel",
]

MEL_SCALES = ("htk", "slaney")
MEL_NORMS = ("none", "slaney")
LOG_KINDS = ("db", "ln", "log10", "none")
DB_REFS = ("one", "max")
PAD_MODES = ("constant", "reflect")
AUDIO_LAYOUTS = ("mels_frames", "frames_mels")

#: settings whose non-default values only the reference implements (avfuse's own
#: streaming feature is the default of each); pad_mode only counts with center=True
_VARIANT_FIELDS = (
    "mel_scale",
    "mel_norm",
    "power",
    "log",
    "log_offset",
    "db_ref",
    "top_db",
    "center",
    "pad_mode",
    "layout",
)


def _choice(name: str, value: object, options: tuple[str, ...]) -> None:
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class AudioParams:
    """Log-mel parameters of one model input (see the module docstring for the maths).

    Attributes:
        sample_rate: samples per second the model expects (Hz).
        window_s: length of the audio window one inference sees (s).
        window: the same in samples; when set it overrides `window_s` (models whose
            window is not a whole number of milliseconds, e.g. 144000 samples).
        n_fft: FFT size and frame length in samples (any size >= 2; odd is allowed).
        win_length: Hann window length, <= n_fft, centred inside the frame.
        hop_length: frame advance in samples.
        n_mels: number of mel bands.
        fmin: lowest mel filter edge (Hz).
        fmax: highest mel filter edge (Hz), <= sample_rate / 2.
        mel_scale: "htk" or "slaney".
        mel_norm: "none" or "slaney" (area normalisation).
        power: exponent of the magnitude spectrum (2: power, 1: magnitude).
        log: "db", "ln", "log10" or "none".
        log_floor: floor applied before the log (avoids log(0) on digital silence).
        log_offset: added to the mel values before the floor and the log.
        db_ref: "one" (absolute dB) or "max" (relative to the window's maximum).
        top_db: when set, values below max - top_db are raised to it (dB).
        center: pad n_fft // 2 samples on both sides before framing.
        pad_mode: "constant" (zeros) or "reflect", used when `center`.
        layout: axis order of the model input, "mels_frames" or "frames_mels".
        mean: normalisation offset applied after the log.
        std: normalisation scale applied after the log.
    """

    sample_rate: int = 16000
    window_s: float = 1.0
    window: int | None = None
    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 160
    n_mels: int = 64
    fmin: float = 20.0
    fmax: float = 7600.0
    mel_scale: str = "htk"
    mel_norm: str = "none"
    power: float = 2.0
    log: str = "db"
    log_floor: float = 1e-10
    log_offset: float = 0.0
    db_ref: str = "one"
    top_db: float | None = None
    center: bool = False
    pad_mode: str = "constant"
    layout: str = "mels_frames"
    mean: float = 0.0
    std: float = 1.0

    @property
    def window_samples(self) -> int:
        """Number of samples in one model window."""
        if self.window is not None:
            return int(self.window)
        return int(round(self.window_s * self.sample_rate))

    def frames_for(self, n_samples: int) -> int:
        """Number of spectrogram frames of `n_samples` of audio (centring included)."""
        if self.center:
            n_samples += 2 * (self.n_fft // 2)
        return n_frames(n_samples, self.n_fft, self.hop_length)

    @property
    def frames(self) -> int:
        """Number of spectrogram frames in one model window."""
        return self.frames_for(self.window_samples)

    def shape_for(self, n_samples: int) -> tuple[int, int]:
        """Shape of the log-mel of `n_samples` of audio, in the model's layout."""
        core = (self.n_mels, self.frames_for(n_samples))
        return core if self.layout == "mels_frames" else (core[1], core[0])

    @property
    def out_shape(self) -> tuple[int, int]:
        """Shape of one window's log-mel in the model's layout (no batch axis)."""
        return self.shape_for(self.window_samples)

    def validate(self) -> None:
        """Raise ValueError naming the parameter when the set is inconsistent."""
        if self.sample_rate <= 0:
            raise ValueError("sample_rate must be positive")
        if self.window is not None and self.window <= 0:
            raise ValueError("window must be a positive number of samples (or null)")
        if self.n_fft < 2:
            raise ValueError("n_fft must be >= 2")
        if not 0 < self.win_length <= self.n_fft:
            raise ValueError("win_length must be in (0, n_fft]")
        if self.hop_length <= 0:
            raise ValueError("hop_length must be positive")
        if self.n_mels <= 0:
            raise ValueError("n_mels must be positive")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise ValueError("need 0 <= fmin < fmax <= sample_rate / 2")
        _choice("mel_scale", self.mel_scale, MEL_SCALES)
        _choice("mel_norm", self.mel_norm, MEL_NORMS)
        _choice("log", self.log, LOG_KINDS)
        _choice("db_ref", self.db_ref, DB_REFS)
        _choice("pad_mode", self.pad_mode, PAD_MODES)
        _choice("layout", self.layout, AUDIO_LAYOUTS)
        if not isinstance(self.center, bool):
            raise ValueError(f"center must be true or false, got {self.center!r}")
        if not (math.isfinite(self.power) and self.power > 0):
            raise ValueError("power must be a positive number (2: power, 1: magnitude)")
        if self.log_floor <= 0:
            raise ValueError("log_floor must be positive")
        if not (math.isfinite(self.log_offset) and self.log_offset >= 0):
            raise ValueError("log_offset must be a finite number >= 0")
        if self.db_ref != "one" and self.log != "db":
            raise ValueError(f"db_ref={self.db_ref!r} needs log='db', got log={self.log!r}")
        if self.top_db is not None:
            if self.log != "db":
                raise ValueError(f"top_db needs log='db', got log={self.log!r}")
            if not (math.isfinite(self.top_db) and self.top_db > 0):
                raise ValueError("top_db must be a positive number of dB (or null)")
        n = self.window_samples
        if not self.center and n < self.n_fft:
            raise ValueError(
                f"the window ({n} samples) is shorter than one FFT frame (n_fft={self.n_fft})"
            )
        if self.center and self.pad_mode == "reflect" and n <= self.n_fft // 2:
            raise ValueError(
                f"pad_mode='reflect' needs a window longer than n_fft // 2 = {self.n_fft // 2}"
            )
        if self.frames < 1:
            raise ValueError(f"the window ({n} samples) holds no whole frame")
        if self.std <= 0:
            raise ValueError("std must be positive")


def audio_variant(params: AudioParams) -> str | None:
    """The first setting that departs from avfuse's own log-mel, as "name=value", or None.

    Fast kernels implement only the default algorithm (what `_VARIANT_FIELDS` lists);
    `window`, sizes, frequencies, floor and normalisation are free for every kernel.
    """
    defaults = {f.name: f.default for f in fields(AudioParams)}
    for name in _VARIANT_FIELDS:
        if name == "pad_mode" and not params.center:
            continue
        value = getattr(params, name)
        if value != defaults[name]:
            return f"{name}={value!r}"
    return None


# ----------------------------------------------------------------------------- pieces


def n_frames(n_samples: int, n_fft: int, hop_length: int) -> int:
    """Number of whole frames in `n_samples` (0 when shorter than one frame)."""
    if n_samples < n_fft:
        return 0
    return 1 + (n_samples - n_fft) // hop_length


def hann_window(win_length: int, n_fft: int) -> np.ndarray:
    """Periodic Hann window of `win_length` taps, zero-padded and centred to `n_fft`."""
    n = np.arange(win_length, dtype=np.float64)
    win = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / win_length)
    out = np.zeros(n_fft, dtype=np.float64)
    left = (n_fft - win_length) // 2
    out[left : left + win_length] = win
    return out


_SLANEY_F_SP = 200.0 / 3.0
_SLANEY_LOGSTEP = math.log(6.4) / 27.0  # 1000 Hz -> 15 mel, then log-spaced


def hz_to_mel(hz: np.ndarray | float, scale: str = "htk") -> np.ndarray:
    """Frequency (Hz) to mel on the HTK scale or on Slaney's (librosa's default)."""
    f = np.asarray(hz, dtype=np.float64)
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + f / 700.0)
    _choice("scale", scale, MEL_SCALES)
    log_part = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / _SLANEY_LOGSTEP
    return np.where(f >= 1000.0, log_part, f / _SLANEY_F_SP)


def mel_to_hz(mel: np.ndarray | float, scale: str = "htk") -> np.ndarray:
    """Inverse of `hz_to_mel`."""
    m = np.asarray(mel, dtype=np.float64)
    if scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    _choice("scale", scale, MEL_SCALES)
    return np.where(m >= 15.0, 1000.0 * np.exp(_SLANEY_LOGSTEP * (m - 15.0)), _SLANEY_F_SP * m)


@lru_cache(maxsize=16)
def _mel_filterbank_cached(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float, scale: str, norm: str
) -> np.ndarray:
    fft_freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    mel_pts = np.linspace(hz_to_mel(fmin, scale), hz_to_mel(fmax, scale), n_mels + 2)
    hz_pts = mel_to_hz(mel_pts, scale)
    fdiff = np.diff(hz_pts)
    ramps = hz_pts[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    fb = np.maximum(0.0, np.minimum(lower, upper))
    if norm == "slaney":
        fb *= (2.0 / (hz_pts[2 : n_mels + 2] - hz_pts[:n_mels]))[:, None]
    fb.setflags(write=False)
    return fb


def mel_filterbank(
    sample_rate: int,
    n_fft: int,
    n_mels: int,
    fmin: float,
    fmax: float,
    *,
    scale: str = "htk",
    norm: str = "none",
) -> np.ndarray:
    """Triangular mel filterbank, shape (n_mels, n_fft // 2 + 1), float64, read-only."""
    _choice("scale", scale, MEL_SCALES)
    _choice("norm", norm, MEL_NORMS)
    return _mel_filterbank_cached(
        int(sample_rate), int(n_fft), int(n_mels), float(fmin), float(fmax), scale, norm
    )


def frame_signal(x: np.ndarray, n_fft: int, hop_length: int) -> np.ndarray:
    """Frames of the last axis: shape (..., n_frames, n_fft), a strided view (no copy)."""
    count = n_frames(x.shape[-1], n_fft, hop_length)
    if count == 0:
        raise ValueError(f"audio of {x.shape[-1]} samples is shorter than one frame ({n_fft})")
    windows = np.lib.stride_tricks.sliding_window_view(x, n_fft, axis=-1)
    return windows[..., : (count - 1) * hop_length + 1 : hop_length, :]


def _spectrum(x: np.ndarray, params: AudioParams) -> np.ndarray:
    """|STFT| ** power, shape (..., n_frames, n_fft // 2 + 1)."""
    if params.center:
        pad = params.n_fft // 2
        if params.pad_mode == "reflect" and x.shape[-1] <= pad:
            raise ValueError(f"reflect padding needs more than {pad} samples, got {x.shape[-1]}")
        x = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(pad, pad)], mode=params.pad_mode)
    frames = frame_signal(x, params.n_fft, params.hop_length)
    spec = np.fft.rfft(frames * hann_window(params.win_length, params.n_fft), axis=-1)
    if params.power == 2.0:
        return spec.real**2 + spec.imag**2
    mag = np.abs(spec)
    return mag if params.power == 1.0 else mag**params.power


def _log(mel: np.ndarray, params: AudioParams) -> np.ndarray:
    """The log stage (floor, offset, dB reference and top_db) on (..., frames, mels)."""
    if params.log == "none":
        return mel
    x = mel + params.log_offset if params.log_offset else mel
    x = np.maximum(x, params.log_floor)
    if params.log == "ln":
        return np.log(x)
    if params.log == "log10":
        return np.log10(x)
    y = (20.0 / params.power) * np.log10(x)
    if params.db_ref == "max":
        y = y - y.max(axis=(-2, -1), keepdims=True)
    if params.top_db is not None:
        y = np.maximum(y, y.max(axis=(-2, -1), keepdims=True) - params.top_db)
    return y


def log_mel(audio: np.ndarray, params: AudioParams, *, normalise: bool = True) -> np.ndarray:
    """Log-mel spectrogram of mono audio in [-1, 1].

    Args:
        audio: shape (n_samples,) or (batch, n_samples); any float or int16 dtype
            (int16 is scaled by 1/32768). A batch row is one window (db_ref="max" and
            top_db use that row's maximum).
        params: the model input's audio parameters.
        normalise: apply (x - mean) / std; False gives the plain log values.

    Returns:
        float64 array of shape (..., n_mels, n_frames), or (..., n_frames, n_mels) for
        layout "frames_mels".
    """
    x = np.asarray(audio)
    if x.dtype == np.int16:
        x = x.astype(np.float64) / 32768.0
    else:
        x = x.astype(np.float64, copy=False)
    spectrum = _spectrum(x, params)
    fb = mel_filterbank(
        params.sample_rate,
        params.n_fft,
        params.n_mels,
        params.fmin,
        params.fmax,
        scale=params.mel_scale,
        norm=params.mel_norm,
    )
    y = _log(spectrum @ fb.T, params)  # (..., n_frames, n_mels)
    if params.layout == "mels_frames":
        y = np.swapaxes(y, -1, -2)
    return normalise_log_mel(y, params) if normalise else y


def normalise_log_mel(db: np.ndarray, params: AudioParams) -> np.ndarray:
    """Apply the manifest's (x - mean) / std to log values."""
    return (db - params.mean) / params.std
