"""numpy log-mel and image kernels against the float64 reference, and the lean install's choice.

Tolerances are those of the numba tests (test_numba_cpu.py): log-mel max abs error
<= 1e-3 dB before normalisation (so <= 1e-3 / std after it); images <= 1e-5 in
normalised units (inputs are 8-bit, so any real error would be >= 1 / 255 / std).
Allocation is measured with tracemalloc, which sees every numpy data buffer.
"""

from __future__ import annotations

import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from avfuse.errors import StreamFormatError, UsageError
from avfuse.kernels import AudioParams, VideoParams
from avfuse.kernels import reference as ref
from avfuse.kernels.numpy_fast import Image, LogMel, mel_segments, sparse_rows
from avfuse.kernels.streaming import StreamingLogMel

from .conftest import chirp, frame_of, noise

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
P = AudioParams()
DB_TOL = 1e-3
IMG_TOL = 1e-5
FORMATS = ["bgr24", "rgb24", "gray", "nv12", "i420"]
#: numpy's ufunc buffer is 8192 elements (64 KiB of float64): a call may hold two; what a
#: call must never do is allocate in proportion to its input (a 720p frame in float32 is
#: 11 MB, four seconds of frames in float64 1.6 MB)
ALLOC_BOUND = 160 * 1024


def _check(kernel: LogMel, audio: np.ndarray, params: AudioParams = P) -> np.ndarray:
    got = kernel(audio)
    want = ref.log_mel(audio, params)
    assert got.dtype == np.float32 and got.shape == want.shape
    err = np.abs(got - want).max()
    assert err <= DB_TOL / params.std, f"max abs error {err}"
    return got


def _peak_bytes(fn: Callable[[], object]) -> int:
    """Most bytes held at once by one steady-state call (after two warm-up calls)."""
    fn()
    fn()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


@pytest.fixture(scope="module")
def kernel() -> LogMel:
    return LogMel(P)


# ----------------------------------------------------------------------------- log-mel


@pytest.mark.parametrize("make", [noise, chirp], ids=["noise", "chirp"])
def test_log_mel_matches_reference(kernel: LogMel, make) -> None:
    _check(kernel, make(P.window_samples))


def test_log_mel_real_speech(kernel: LogMel, speech: np.ndarray) -> None:
    _check(kernel, speech)
    _check(kernel, speech[: P.window_samples])


def test_silence_hits_the_log_floor(kernel: LogMel) -> None:
    got = _check(kernel, np.zeros(P.window_samples, np.float32))
    assert np.allclose(got, np.float32(10 * np.log10(P.log_floor)), atol=1e-4)


def test_clipping_int16_and_float64(kernel: LogMel) -> None:
    clipped = np.clip(4.0 * chirp(P.window_samples), -1.0, 1.0)
    _check(kernel, clipped)
    pcm = (clipped * 32767).astype(np.int16)
    np.testing.assert_allclose(kernel(pcm), ref.log_mel(pcm, P), atol=DB_TOL)
    _check(kernel, clipped.astype(np.float64))


@pytest.mark.parametrize("n", [P.n_fft, P.n_fft + P.hop_length - 1, 3 * P.n_fft + 17, 48000])
def test_lengths_grow_the_buffers(kernel: LogMel, n: int) -> None:
    _check(kernel, noise(n, seed=n))


def test_strided_audio_is_read_through_its_strides(kernel: LogMel) -> None:
    x = noise(2 * P.window_samples, seed=3)
    _check(kernel, x[::2])  # not contiguous: every other sample


def test_frames_at_writes_only_its_columns() -> None:
    k = LogMel(P)
    ring = np.full((P.n_mels, 30), np.nan, np.float32)
    x = chirp(P.n_fft + 9 * P.hop_length)
    for count in range(1, 10):
        seg = x[: P.n_fft + (count - 1) * P.hop_length]
        k.frames_at(seg, ring, 5)
        np.testing.assert_allclose(ring[:, 5 : 5 + count], ref.log_mel(seg, P), atol=DB_TOL / P.std)
        assert np.isnan(ring[:, :5]).all() and np.isnan(ring[:, 5 + count :]).all()
        ring[:, 5 : 5 + count] = np.nan
    with pytest.raises(UsageError, match="room in the ring"):
        k.frames_at(x, ring, 25)


def test_streaming_windows_match_the_reference() -> None:
    """The path a live stream takes: StreamingLogMel over this kernel's frames_at."""
    p = AudioParams(mean=-16.0, std=22.0)
    stream = StreamingLogMel(LogMel(p))
    x = chirp(4 * p.sample_rate)
    w, hop = p.window_samples, p.hop_length
    out = np.empty(p.out_shape, np.float32)
    for end in range(w, x.size + 1, 3 * hop):
        stream.window(x[end - w : end], end, out)
        want = ref.log_mel(x[end - w : end], p)
        assert np.abs(out - want).max() <= DB_TOL / p.std
    assert stream.reused_frames > 10 * stream.computed_frames


def test_batch(kernel: LogMel) -> None:
    x = np.stack([noise(P.window_samples, seed=s) for s in range(5)])
    out = np.empty(kernel.out_shape(P.window_samples, 5), np.float32)
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


def test_filters_narrower_than_a_bin_sum_to_zero_not_to_a_neighbour() -> None:
    """128 mels over 256 bins: some low filters hold no bin above zero."""
    p = AudioParams(n_fft=256, win_length=256, hop_length=128, n_mels=128, fmin=0.0,
                    fmax=8000.0)  # fmt: skip
    fb = ref.mel_filterbank(p.sample_rate, p.n_fft, p.n_mels, p.fmin, p.fmax)
    assert (fb.max(axis=1) == 0).any()
    _, w, starts = mel_segments(fb)
    assert starts.size == p.n_mels and w.size >= p.n_mels
    _check(LogMel(p), chirp(16000), p)


def test_sparse_rows_rebuild_the_dense_matrix() -> None:
    for n_in, n_out in ((240, 48), (321, 64), (5, 48), (64, 64), (1080, 48)):
        dense = ref.area_weights(n_in, n_out)
        idx, w, span = sparse_rows(dense)
        rebuilt = np.zeros_like(dense)
        np.add.at(rebuilt, (np.arange(n_out)[:, None], idx), w)
        np.testing.assert_allclose(rebuilt, dense, atol=1e-15)
        assert idx.shape == (n_out, span) and idx.max() < n_in


def test_bad_input_raises_clear_errors(kernel: LogMel) -> None:
    with pytest.raises(UsageError, match="shorter than one frame"):
        kernel(np.zeros(P.n_fft - 1, np.float32))
    with pytest.raises(UsageError, match="out must be"):
        kernel(np.zeros(P.window_samples, np.float32), np.empty((64, 3), np.float32))
    with pytest.raises(UsageError, match=r"\(n,\) or \(batch, n\)"):
        kernel(np.zeros((1, 2, P.window_samples), np.float32))
    with pytest.raises(UsageError, match="power of two"):
        LogMel(AudioParams(n_fft=400, win_length=400))
    with pytest.raises(UsageError, match="mel_scale"):
        LogMel(AudioParams(mel_scale="slaney"))


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


SIZES = [(241, 319), (37, 53), (30, 20), (48, 64), (5, 7), (720, 1280)]


@pytest.mark.parametrize(("h", "w"), SIZES)
def test_image_odd_sizes_and_upscaling(h: int, w: int) -> None:
    vp = VideoParams(height=48, width=64, colour="rgb", mean=(0.5,) * 3, std=(0.25,) * 3)
    k = Image(vp)
    fmts = ["bgr24", "gray"] + (["nv12", "i420"] if h % 2 == 0 and w % 2 == 0 else [])
    for fmt in fmts:
        frame = frame_of(fmt, h, w, seed=h)
        np.testing.assert_allclose(k(frame, fmt), ref.image_to_tensor(frame, vp, fmt), atol=IMG_TOL)


def test_image_sizes_and_formats_in_turn_keep_their_own_buffers() -> None:
    vp = VideoParams(height=48, width=64)
    k = Image(vp)
    out = np.empty(k.out_shape, np.float32)
    for _ in range(2):
        for fmt, (h, w) in [("bgr24", (240, 320)), ("nv12", (240, 320)), ("bgr24", (120, 160))]:
            frame = frame_of(fmt, h, w, seed=w)
            assert k(frame, fmt, out) is out
            np.testing.assert_allclose(out, ref.image_to_tensor(frame, vp, fmt), atol=IMG_TOL)


def test_image_batch() -> None:
    vp = VideoParams(height=48, width=64)
    k = Image(vp)
    frames = np.stack([frame_of("i420", 120, 160, seed=s) for s in range(4)])
    out = k.batch(frames, "i420")
    for i in range(4):
        np.testing.assert_allclose(out[i], ref.image_to_tensor(frames[i], vp, "i420"), atol=IMG_TOL)


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
    with pytest.raises(UsageError, match="out must be"):
        k(np.zeros((10, 10, 3), np.uint8), "bgr24", np.empty((1, 48, 63), np.float32))
    with pytest.raises(UsageError, match="interpolation"):
        Image(VideoParams(height=48, width=64, interpolation="bilinear"))


# ----------------------------------------------------------------------------- allocation


def test_log_mel_allocates_nothing_in_proportion_to_its_input() -> None:
    k = LogMel(P)
    for seconds in (1, 4):
        x = chirp(seconds * P.sample_rate)
        out = np.empty(k.out_shape(x.size), np.float32)
        assert _peak_bytes(lambda x=x, out=out: k(x, out)) < ALLOC_BOUND
    ring = np.zeros((P.n_mels, 2 * P.frames), np.float32)
    hops = chirp(P.n_fft + 3 * P.hop_length)
    assert _peak_bytes(lambda: k.frames_at(hops, ring, 7)) < ALLOC_BOUND


def test_streaming_window_allocates_nothing_in_proportion_to_its_input() -> None:
    stream = StreamingLogMel(LogMel(P))
    x = chirp(3 * P.sample_rate)
    out = np.empty(P.out_shape, np.float32)
    ends = iter(range(P.window_samples, x.size + 1, 3 * P.hop_length))

    def step() -> None:
        end = next(ends)
        stream.window(x[end - P.window_samples : end], end, out)

    assert _peak_bytes(step) < ALLOC_BOUND


@pytest.mark.parametrize("fmt", ["bgr24", "nv12"])
def test_image_allocates_nothing_in_proportion_to_its_input(fmt: str) -> None:
    k = Image(VideoParams(height=48, width=64))
    out = np.empty(k.out_shape, np.float32)
    frame = frame_of(fmt, 720, 1280)
    assert _peak_bytes(lambda: k(frame, fmt, out)) < ALLOC_BOUND


# ----------------------------------------------------------------------------- without numba

_NO_NUMBA = "import sys; sys.modules['numba'] = None\n"


def _python_without_numba(code: str) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter where `import numba` fails (the lean install)."""
    return subprocess.run(
        [sys.executable, "-c", _NO_NUMBA + code], cwd=ROOT, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip


def test_auto_picks_numpy_without_numba_and_numba_with_it() -> None:
    code = (
        "from avfuse.kernels import AudioParams, VideoParams, image_kernel, log_mel_kernel\n"
        "print(log_mel_kernel(AudioParams()).name, image_kernel(VideoParams()).name,"
        " log_mel_kernel(AudioParams(mel_scale='slaney')).name)\n"
    )
    lean = _python_without_numba(code)
    assert lean.returncode == 0, lean.stderr[-2000:]
    assert lean.stdout.split() == ["numpy", "numpy", "reference"]
    full = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert full.stdout.split()[:2] == ["numba", "numba"], full.stderr[-2000:]


def test_forcing_numba_without_it_names_the_extra_in_one_line() -> None:
    code = (
        "from avfuse.errors import BackendUnavailable\n"
        "from avfuse.kernels import AudioParams, log_mel_kernel\n"
        "try:\n    log_mel_kernel(AudioParams(), 'numba')\n"
        "except BackendUnavailable as e:\n    print('refused:', e)\n"
    )
    proc = _python_without_numba(code)
    assert proc.returncode == 0 and proc.stdout.startswith("refused:"), proc.stderr[-2000:]
    assert "avfuse[fast]" in proc.stdout and len(proc.stdout.strip().splitlines()) == 1


def test_warm_without_numba_says_so_and_succeeds() -> None:
    proc = _python_without_numba("from avfuse.kernels.warm import main; sys.exit(main([]))")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "numba is not installed" in proc.stderr and "Traceback" not in proc.stderr
