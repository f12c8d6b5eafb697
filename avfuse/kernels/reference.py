"""Reference pre-processing in numpy float64: the definition every other kernel must match.

Training uses exactly these functions, and the fast kernels (numba, CUDA) are
tested against them. Nothing here is optimised; everything here is explicit.

Audio: log-mel power spectrogram.
    frames    frame k covers samples [k*hop, k*hop + n_fft) of the window (no centring,
              so a frame only ever depends on past samples and streams incrementally);
              n_frames = 1 + (n_samples - n_fft) // hop
    window    periodic Hann of `win_length`, zero-padded to `n_fft` with the taps centred
              (as librosa/torch do)
    power     |rfft(frame * window)|^2
    mel       HTK mel scale, triangular filters without area normalisation, fmin..fmax
              (equal to librosa.filters.mel(htk=True, norm=None))
    log       10 * log10(max(mel, log_floor))   (power_to_db with ref=1 and no top_db,
              so a value never depends on the loudest frame of its window)
    normalise (logmel - mean) / std

Video: image tensor from a camera frame.
    colour    BGR/RGB/gray uint8 or YUV (NV12/I420, BT.601 limited range) -> RGB float in
              [0, 1]; then to the model's colour ("gray": 0.299 R + 0.587 G + 0.114 B)
    resize    area (box) resampling: output pixel j averages the input interval
              [j*s, (j+1)*s), s = in/out, with fractional edge weights; separable, so it is
              two small matrix products
    normalise (x - mean[c]) / std[c]
    layout    CHW float32 for the model
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = [
    "AudioParams",
    "VideoParams",
    "area_weights",
    "frame_signal",
    "hann_window",
    "hz_to_mel",
    "image_to_tensor",
    "log_mel",
    "mel_filterbank",
    "mel_to_hz",
    "n_frames",
    "normalise_log_mel",
    "to_rgb",
    "yuv_to_rgb",
]

PIXEL_FORMATS = ("bgr24", "rgb24", "gray", "nv12", "i420")
COLOURS = ("gray", "rgb", "bgr")


@dataclass(frozen=True, kw_only=True)
class AudioParams:
    """Audio pre-processing parameters; the manifest's ``preprocess.audio`` block.

    Attributes:
        sample_rate: samples per second the model expects (Hz).
        window_s: length of the audio window one inference sees (s).
        n_fft: FFT size and frame length in samples.
        win_length: Hann window length, <= n_fft, centred inside the frame.
        hop_length: frame advance in samples.
        n_mels: number of mel bands.
        fmin: lowest mel filter edge (Hz).
        fmax: highest mel filter edge (Hz), <= sample_rate / 2.
        log_floor: power floor before the log (avoids log(0) on digital silence).
        mean: normalisation offset applied to the dB values.
        std: normalisation scale applied to the dB values.
    """

    sample_rate: int = 16000
    window_s: float = 1.0
    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 160
    n_mels: int = 64
    fmin: float = 20.0
    fmax: float = 7600.0
    log_floor: float = 1e-10
    mean: float = 0.0
    std: float = 1.0

    @property
    def window_samples(self) -> int:
        """Number of samples in one model window."""
        return int(round(self.window_s * self.sample_rate))

    @property
    def frames(self) -> int:
        """Number of spectrogram frames in one model window."""
        return n_frames(self.window_samples, self.n_fft, self.hop_length)

    def validate(self) -> None:
        """Raise ValueError naming the parameter when the set is inconsistent."""
        if self.sample_rate <= 0:
            raise ValueError("sample_rate must be positive")
        if not 0 < self.win_length <= self.n_fft:
            raise ValueError("win_length must be in (0, n_fft]")
        if self.hop_length <= 0:
            raise ValueError("hop_length must be positive")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise ValueError("need 0 <= fmin < fmax <= sample_rate / 2")
        if self.window_samples < self.n_fft:
            raise ValueError("window_s is shorter than one FFT frame")
        if self.std <= 0:
            raise ValueError("std must be positive")
        if self.log_floor <= 0:
            raise ValueError("log_floor must be positive")


@dataclass(frozen=True, kw_only=True)
class VideoParams:
    """Image pre-processing parameters; the manifest's ``preprocess.video`` block.

    Attributes:
        height: model input height in pixels.
        width: model input width in pixels.
        colour: model colour order, one of "gray", "rgb", "bgr".
        resize: resampling method; only "area" is defined.
        mean: per-channel offset in [0, 1] units (length = channels).
        std: per-channel scale (length = channels).
    """

    height: int = 64
    width: int = 64
    colour: str = "gray"
    resize: str = "area"
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.25,)

    @property
    def channels(self) -> int:
        """Number of model input channels."""
        return 1 if self.colour == "gray" else 3

    def validate(self) -> None:
        """Raise ValueError naming the parameter when the set is inconsistent."""
        if self.height <= 0 or self.width <= 0:
            raise ValueError("height and width must be positive")
        if self.colour not in COLOURS:
            raise ValueError(f"colour must be one of {COLOURS}")
        if self.resize != "area":
            raise ValueError("resize must be 'area'")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(
                f"mean and std need {self.channels} value(s) for colour {self.colour!r}"
            )
        if any(s <= 0 for s in self.std):
            raise ValueError("std values must be positive")


# ----------------------------------------------------------------------------- audio


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


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Inverse of `hz_to_mel`."""
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


@lru_cache(maxsize=16)
def _mel_filterbank_cached(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float
) -> np.ndarray:
    fft_freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    mel_pts = np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2)
    hz_pts = mel_to_hz(mel_pts)
    fdiff = np.diff(hz_pts)
    ramps = hz_pts[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    fb = np.maximum(0.0, np.minimum(lower, upper))
    fb.setflags(write=False)
    return fb


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float
) -> np.ndarray:
    """Triangular HTK mel filterbank, shape (n_mels, n_fft // 2 + 1), float64, read-only."""
    return _mel_filterbank_cached(
        int(sample_rate), int(n_fft), int(n_mels), float(fmin), float(fmax)
    )


def frame_signal(x: np.ndarray, n_fft: int, hop_length: int) -> np.ndarray:
    """Frames of the last axis: shape (..., n_frames, n_fft), a strided view (no copy)."""
    count = n_frames(x.shape[-1], n_fft, hop_length)
    if count == 0:
        raise ValueError(f"audio of {x.shape[-1]} samples is shorter than one frame ({n_fft})")
    windows = np.lib.stride_tricks.sliding_window_view(x, n_fft, axis=-1)
    return windows[..., : (count - 1) * hop_length + 1 : hop_length, :]


def log_mel(audio: np.ndarray, params: AudioParams, *, normalise: bool = True) -> np.ndarray:
    """Log-mel spectrogram of mono audio in [-1, 1].

    Args:
        audio: shape (n_samples,) or (batch, n_samples); any float or int16 dtype
            (int16 is scaled by 1/32768).
        params: the manifest's audio parameters.
        normalise: apply (x - mean) / std; False gives plain dB values.

    Returns:
        float64 array of shape (..., n_mels, n_frames).
    """
    x = np.asarray(audio)
    if x.dtype == np.int16:
        x = x.astype(np.float64) / 32768.0
    else:
        x = x.astype(np.float64, copy=False)
    frames = frame_signal(x, params.n_fft, params.hop_length)
    spec = np.fft.rfft(frames * hann_window(params.win_length, params.n_fft), axis=-1)
    power = spec.real**2 + spec.imag**2
    fb = mel_filterbank(params.sample_rate, params.n_fft, params.n_mels, params.fmin, params.fmax)
    mel = power @ fb.T  # (..., n_frames, n_mels)
    db = 10.0 * np.log10(np.maximum(mel, params.log_floor))
    db = np.swapaxes(db, -1, -2)
    return normalise_log_mel(db, params) if normalise else db


def normalise_log_mel(db: np.ndarray, params: AudioParams) -> np.ndarray:
    """Apply the manifest's (x - mean) / std to dB values."""
    return (db - params.mean) / params.std


# ----------------------------------------------------------------------------- video


def yuv_to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """BT.601 limited-range YUV (full-resolution planes, uint8) to RGB float64 in [0, 1]."""
    yf = (y.astype(np.float64) - 16.0) * (255.0 / 219.0)
    uf = (u.astype(np.float64) - 128.0) * (255.0 / 224.0)
    vf = (v.astype(np.float64) - 128.0) * (255.0 / 224.0)
    r = yf + 1.402 * vf
    g = yf - 0.344136 * uf - 0.714136 * vf
    b = yf + 1.772 * uf
    return np.clip(np.stack([r, g, b], axis=-1) / 255.0, 0.0, 1.0)


def _upsample_chroma(plane: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour 2x chroma upsampling (each chroma sample covers a 2x2 block)."""
    return np.repeat(np.repeat(plane, 2, axis=0), 2, axis=1)[:height, :width]


def to_rgb(frame: np.ndarray, pixel_format: str) -> np.ndarray:
    """Convert a frame as cameras and decoders deliver it to RGB float64 (H, W, 3) in [0, 1].

    Args:
        frame: bgr24/rgb24: (H, W, 3) uint8; gray: (H, W) uint8; nv12/i420: the
            (H * 3 // 2, W) uint8 buffer of a planar 4:2:0 frame (H and W even).
        pixel_format: one of "bgr24", "rgb24", "gray", "nv12", "i420".
    """
    if pixel_format not in PIXEL_FORMATS:
        raise ValueError(f"unknown pixel format {pixel_format!r}; use one of {PIXEL_FORMATS}")
    if pixel_format in ("bgr24", "rgb24"):
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"{pixel_format} frame must be (H, W, 3), got {frame.shape}")
        rgb = frame.astype(np.float64) / 255.0
        return rgb[..., ::-1] if pixel_format == "bgr24" else rgb
    if pixel_format == "gray":
        g = frame.astype(np.float64) / 255.0
        return np.repeat(g[..., None], 3, axis=-1)
    rows, width = frame.shape
    height = rows * 2 // 3
    if rows != height * 3 // 2 or height % 2 or width % 2:
        raise ValueError(
            f"{pixel_format} buffer must be (H*3/2, W) with even H, W; got {frame.shape}"
        )
    y = frame[:height]
    chroma = frame[height:]
    if pixel_format == "nv12":
        uv = chroma.reshape(height // 2, width // 2, 2)
        u, v = uv[..., 0], uv[..., 1]
    else:
        flat = chroma.reshape(-1)
        q = (height // 2) * (width // 2)
        u = flat[:q].reshape(height // 2, width // 2)
        v = flat[q : 2 * q].reshape(height // 2, width // 2)
    return yuv_to_rgb(y, _upsample_chroma(u, height, width), _upsample_chroma(v, height, width))


@lru_cache(maxsize=64)
def _area_weights_cached(n_in: int, n_out: int) -> np.ndarray:
    scale = n_in / n_out
    w = np.zeros((n_out, n_in), dtype=np.float64)
    for j in range(n_out):
        lo, hi = j * scale, (j + 1) * scale
        i0, i1 = int(np.floor(lo)), min(int(np.ceil(hi)), n_in)
        for i in range(i0, i1):
            w[j, i] = min(hi, i + 1) - max(lo, i)
    w /= w.sum(axis=1, keepdims=True)
    w.setflags(write=False)
    return w


def area_weights(n_in: int, n_out: int) -> np.ndarray:
    """Area-resampling matrix (n_out, n_in); rows sum to 1. Read-only and cached."""
    if n_in <= 0 or n_out <= 0:
        raise ValueError("sizes must be positive")
    return _area_weights_cached(int(n_in), int(n_out))


def image_to_tensor(
    frame: np.ndarray, params: VideoParams, pixel_format: str = "bgr24"
) -> np.ndarray:
    """Pre-process one frame into the model's (C, H, W) float64 tensor.

    Colour conversion runs before the resize; both are linear, so the order only
    matters for rounding, and this order is the defined one.
    """
    rgb = to_rgb(frame, pixel_format)
    if params.colour == "gray":
        chans = (rgb @ np.array([0.299, 0.587, 0.114]))[None]
    elif params.colour == "rgb":
        chans = np.moveaxis(rgb, -1, 0)
    else:
        chans = np.moveaxis(rgb[..., ::-1], -1, 0)
    wy = area_weights(chans.shape[1], params.height)
    wx = area_weights(chans.shape[2], params.width)
    resized = wy[None] @ chans @ wx.T[None]
    mean = np.asarray(params.mean, dtype=np.float64)[:, None, None]
    std = np.asarray(params.std, dtype=np.float64)[:, None, None]
    return (resized - mean) / std
