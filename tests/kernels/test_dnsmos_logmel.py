"""DNSMOS's P.808 log-mel (speechmos 0.0.1.1) described by AudioParams, against the package.

speechmos feeds model_v8.onnx with `audio_melspec` (speechmos/dnsmos.py:22-27):
librosa.feature.melspectrogram(y, sr=16000, n_fft=321, hop_length=160, n_mels=120) with
librosa's defaults (periodic Hann, centred, zero padding, power 2, Slaney mel and area
norm), then (power_to_db(S, ref=np.max) + 40) / 40, transposed to (frames, mels), on the
first 144000 samples of each 9.01 s window. `_speechmos_melspec` is that function; where
speechmos itself is installed it is checked against it too.
"""

from __future__ import annotations

import numpy as np
import pytest

from avfuse.kernels import AudioParams, log_mel_kernel
from avfuse.kernels.reference import log_mel

from .conftest import chirp, noise

librosa = pytest.importorskip("librosa")

pytestmark = pytest.mark.timeout(120)

DNSMOS = AudioParams(
    sample_rate=16000, window=144000, n_fft=321, win_length=321, hop_length=160,
    n_mels=120, fmin=0.0, fmax=8000.0, mel_scale="slaney", mel_norm="slaney", power=2.0,
    log="db", log_floor=1e-10, db_ref="max", top_db=80.0, center=True,
    pad_mode="constant", layout="frames_mels", mean=-40.0, std=40.0,
)  # fmt: skip


def _speechmos_melspec(audio: np.ndarray) -> np.ndarray:
    mel_spec = librosa.feature.melspectrogram(
        y=audio, sr=16000, n_fft=320 + 1, hop_length=160, n_mels=120
    )
    return ((librosa.power_to_db(mel_spec, ref=np.max) + 40) / 40).T


@pytest.fixture(scope="module")
def window() -> np.ndarray:
    """A 9 s float32 window with loud and nearly silent stretches (top_db clamps)."""
    n = DNSMOS.window_samples
    x = chirp(n) + noise(n, seed=7, scale=0.05)
    env = np.where((np.arange(n) // 16000) % 3 == 1, 1e-5, 1.0)
    return (x * env).astype(np.float32)


def test_dnsmos_features_match_the_package_function(window: np.ndarray) -> None:
    want = _speechmos_melspec(window)
    kernel = log_mel_kernel(DNSMOS)  # auto: the reference (numba does not do this variant)
    assert kernel.name == "reference"
    out = np.empty(DNSMOS.out_shape, np.float32)
    got = kernel(window, out)
    assert got.shape == want.shape == (900, 120)
    assert (want == want.min()).mean() > 0.05, "the top_db clamp is not exercised"
    # librosa runs float32 audio in float32; the reference is float64 (measured 3.6e-7)
    assert np.abs(got - want).max() <= 2e-6


def test_dnsmos_features_match_librosa_in_float64(window: np.ndarray) -> None:
    want = _speechmos_melspec(window.astype(np.float64))  # float32 mel basis inside
    got = log_mel(window, DNSMOS)
    assert np.abs(got - want).max() <= 1e-6


def test_dnsmos_against_speechmos_itself(window: np.ndarray) -> None:
    dnsmos = pytest.importorskip("speechmos.dnsmos")
    want = dnsmos.DNSMOS.audio_melspec(None, window)
    got = log_mel_kernel(DNSMOS)(window)
    assert np.abs(got - want).max() <= 2e-6
