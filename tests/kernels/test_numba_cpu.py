"""numba log-mel and image kernels against the float64 reference.

Tolerances: log-mel max abs error <= 1e-3 dB before normalisation (so <= 1e-3 / std
after it); images <= 1e-5 in normalised units (inputs are 8-bit, so any real error
would be >= 1 / 255 / std).
"""

from __future__ import annotations

import numpy as np
import pytest

from avfuse.errors import StreamFormatError, UsageError
from avfuse.kernels import AudioParams, VideoParams, image_kernel, log_mel_kernel
from avfuse.kernels import reference as ref
from avfuse.kernels.numba_cpu import Image, LogMel

from .conftest import chirp, frame_of, noise

P = AudioParams()
DB_TOL = 1e-3
IMG_TOL = 1e-5
FORMATS = ["bgr24", "rgb24", "gray", "nv12", "i420"]


def _check(kernel: LogMel, audio: np.ndarray, params: AudioParams = P) -> np.ndarray:
    got = kernel(audio)
    want = ref.log_mel(audio, params)
    assert got.dtype == np.float32 and got.shape == want.shape
    err = np.abs(got - want).max()
    assert err <= DB_TOL / params.std, f"max abs error {err}"
    return got


@pytest.fixture(scope="module")
def kernel() -> LogMel:
    return LogMel(P)


@pytest.mark.parametrize("make", [noise, chirp], ids=["noise", "chirp"])
def test_log_mel_matches_reference(kernel: LogMel, make) -> None:
    _check(kernel, make(P.window_samples))


def test_log_mel_real_speech(kernel: LogMel, speech: np.ndarray) -> None:
    _check(kernel, speech)  # 2 s: 197 frames, several blocks
    _check(kernel, speech[: P.window_samples])


def test_silence_hits_the_log_floor(kernel: LogMel) -> None:
    got = _check(kernel, np.zeros(P.window_samples, np.float32))
    assert np.all(got == np.float32(10 * np.log10(P.log_floor)))


def test_clipping_and_int16(kernel: LogMel) -> None:
    clipped = np.clip(4.0 * chirp(P.window_samples), -1.0, 1.0)
    _check(kernel, clipped)
    pcm = (clipped * 32767).astype(np.int16)
    got = kernel(pcm)
    np.testing.assert_allclose(got, ref.log_mel(pcm, P), atol=DB_TOL)


@pytest.mark.parametrize("n", [P.n_fft, P.n_fft + P.hop_length - 1, 3 * P.n_fft + 17, 48000])
def test_lengths_and_partial_blocks(kernel: LogMel, n: int) -> None:
    _check(kernel, noise(n, seed=n))


@pytest.mark.parametrize(
    "params",
    [P, AudioParams(n_fft=1024, win_length=800, hop_length=256, n_mels=80, fmax=8000.0),
     AudioParams(n_fft=256, win_length=256, hop_length=64, n_mels=32, mean=-20.0, std=10.0)],
    ids=["default", "nfft1024", "nfft256"],
)  # fmt: skip
def test_few_frames_path_into_a_ring(params: AudioParams) -> None:
    """1..9 frames: the four-step path (< 8 frames) and the block path write the same columns."""
    k = LogMel(params)
    ring = np.full((params.n_mels, 30), np.nan, np.float32)
    x = chirp(params.n_fft + 9 * params.hop_length)
    for count in range(1, 10):
        seg = x[: params.n_fft + (count - 1) * params.hop_length]
        k.frames_at(seg, ring, 5)
        want = ref.log_mel(seg, params)
        np.testing.assert_allclose(ring[:, 5 : 5 + count], want, atol=DB_TOL / params.std)
        assert np.isnan(ring[:, :5]).all() and np.isnan(ring[:, 5 + count :]).all()
        ring[:, 5 : 5 + count] = np.nan


def test_batch_serial_and_parallel(kernel: LogMel) -> None:
    for batch in (3, 16):  # 16 windows are enough blocks to go parallel
        x = np.stack([noise(P.window_samples, seed=s) for s in range(batch)])
        out = np.empty(kernel.out_shape(P.window_samples, batch), np.float32)
        assert kernel(x, out) is out
        np.testing.assert_allclose(out, ref.log_mel(x, P), atol=DB_TOL)


def test_other_params_and_normalisation() -> None:
    params = AudioParams(
        sample_rate=22050, n_fft=1024, win_length=1024, hop_length=256, n_mels=80,
        fmin=0.0, fmax=11025.0, mean=-40.0, std=20.0,
    )  # fmt: skip
    _check(LogMel(params), chirp(22050, 22050), params)
    small = AudioParams(n_fft=256, win_length=200, hop_length=80, n_mels=40, fmax=8000.0)
    _check(LogMel(small), noise(16000), small)


def test_bad_input_raises_clear_errors(kernel: LogMel) -> None:
    with pytest.raises(UsageError, match="shorter than one frame"):
        kernel(np.zeros(P.n_fft - 1, np.float32))
    with pytest.raises(UsageError, match="out must be"):
        kernel(np.zeros(P.window_samples, np.float32), np.empty((64, 3), np.float32))
    with pytest.raises(UsageError, match="power of two"):
        LogMel(AudioParams(n_fft=400, win_length=400))


def test_warmup_and_picker() -> None:
    k = log_mel_kernel(P)
    assert k.name == "numba"  # no GPU here: auto falls back past cuda
    k.warmup()
    assert log_mel_kernel(P, "reference").name == "reference"
    with pytest.raises(UsageError, match="unknown kernel"):
        log_mel_kernel(P, "fortran")


# ----------------------------------------------------------------------------- images


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("colour", "mean", "std"),
    [("gray", (0.5,), (0.25,)), ("rgb", (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)),
     ("bgr", (0.4, 0.5, 0.6), (0.2, 0.25, 0.3))],
)  # fmt: skip
def test_image_all_formats_and_colours(fmt: str, colour: str, mean, std) -> None:
    vp = VideoParams(height=48, width=64, colour=colour, mean=mean, std=std)
    frame = frame_of(fmt, 240, 320)
    got = Image(vp)(frame, fmt)
    assert got.shape == (vp.channels, 48, 64) and got.dtype == np.float32
    np.testing.assert_allclose(got, ref.image_to_tensor(frame, vp, fmt), atol=IMG_TOL)


@pytest.mark.parametrize(("h", "w"), [(241, 319), (37, 53), (30, 20), (48, 64), (5, 7)])
def test_image_odd_sizes_and_upscaling(h: int, w: int) -> None:
    vp = VideoParams(height=48, width=64)
    k = Image(vp)
    for fmt in ("bgr24", "gray"):
        frame = frame_of(fmt, h, w, seed=h)
        np.testing.assert_allclose(k(frame, fmt), ref.image_to_tensor(frame, vp, fmt), atol=IMG_TOL)
    if h % 2 == 0 and w % 2 == 0:
        frame = frame_of("nv12", h, w)
        np.testing.assert_allclose(
            k(frame, "nv12"), ref.image_to_tensor(frame, vp, "nv12"), atol=IMG_TOL
        )


def test_image_batch_and_out() -> None:
    vp = VideoParams(height=48, width=64, colour="rgb", mean=(0.5,) * 3, std=(0.25,) * 3)
    k = image_kernel(vp)
    assert k.name == "numba"
    frames = np.stack([frame_of("nv12", 120, 160, seed=s) for s in range(5)])
    out = np.empty((5, 3, 48, 64), np.float32)
    assert k.batch(frames, "nv12", out) is out
    for i in range(5):
        np.testing.assert_allclose(out[i], ref.image_to_tensor(frames[i], vp, "nv12"), atol=IMG_TOL)
    single = np.empty(k.out_shape, np.float32)
    assert k(frames[0], "nv12", single) is single


def test_image_bad_frames() -> None:
    k = Image(VideoParams(height=48, width=64))
    with pytest.raises(StreamFormatError, match=r"\(H, W, 3\)"):
        k(np.zeros((10, 10), np.uint8), "bgr24")
    with pytest.raises(StreamFormatError, match="even H and W"):
        k(np.zeros((15, 11), np.uint8), "nv12")
    with pytest.raises(StreamFormatError, match="uint8"):
        k(np.zeros((10, 10, 3), np.float32), "bgr24")
    with pytest.raises(UsageError, match="unknown pixel format"):
        k(np.zeros((10, 10, 3), np.uint8), "yuyv")
