"""Raw-waveform inputs: the samples reach the model in the number format it was trained on."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from avfuse.errors import UsageError
from avfuse.kernels.waveform import WaveformKernel, WaveformParams

from .conftest import chirp

pytestmark = pytest.mark.timeout(30)

#: silero-vad 6.2.3 at 16 kHz: 512 new samples after 64 of context, floats in [-1, 1]
SILERO = WaveformParams(sample_rate=16000, chunk=512, context=64)


def test_float_scale_copies_the_window_into_a_batch_row() -> None:
    k = WaveformKernel(SILERO)
    assert SILERO.window_samples == 576 and k.out_shape == (576,)
    window = chirp(576)
    feed = np.zeros((3, 1, 576), np.float32)  # a batch slot with a singleton axis
    k(window, feed[1])
    np.testing.assert_array_equal(feed[1, 0], window)
    assert not feed[0].any() and not feed[2].any()


def test_int16_scale_is_sample_values_as_floats() -> None:
    """openwakeword's melspectrogram.onnx takes int16 values (x 32768), not [-1, 1]."""
    k = WaveformKernel(WaveformParams(sample_rate=16000, chunk=1280, scale="int16"))
    pcm = np.array([-32768, -1, 0, 1, 12345, 32767] * 213 + [0, 0], np.int16)
    got = k(pcm.astype(np.float32) / 32768.0)
    np.testing.assert_array_equal(got, pcm.astype(np.float32))


def test_peak_and_rms_normalisation_then_scale() -> None:
    window = (0.25 * chirp(1000)).astype(np.float32)
    peak = WaveformKernel(WaveformParams(sample_rate=16000, chunk=1000, normalize="peak"))
    got = peak(window)
    np.testing.assert_allclose(got, window / np.abs(window).max(), rtol=1e-6)
    assert np.abs(got).max() == pytest.approx(1.0)
    rms = WaveformKernel(
        WaveformParams(sample_rate=16000, chunk=1000, normalize="rms", scale="int16")
    )
    got = rms(window)
    want = window / np.sqrt(np.mean(window.astype(np.float64) ** 2)) * 32768
    np.testing.assert_allclose(got, want, rtol=1e-5)
    silent = peak(np.zeros(1000, np.float32))
    assert np.all(silent == 0)  # no division by zero


@pytest.mark.parametrize("normalize", ["none", "peak", "rms"])
def test_no_array_is_allocated_per_call(normalize: str) -> None:
    p = WaveformParams(sample_rate=16000, chunk=16000, context=160, normalize=normalize)
    k = WaveformKernel(p)
    window = chirp(p.window_samples)
    out = np.empty((1, p.window_samples), np.float32)
    k(window, out)
    tracemalloc.start()
    try:
        for _ in range(3):
            k(window, out)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4096, f"{peak} bytes allocated per call (one window is 64640)"


def test_bad_windows_and_outputs_are_refused() -> None:
    k = WaveformKernel(SILERO)
    with pytest.raises(UsageError, match=r"shape \(576,\)"):
        k(np.zeros(512, np.float32))
    with pytest.raises(UsageError, match="int16"):
        k(np.zeros(576, np.int16))
    with pytest.raises(UsageError, match="out must be"):
        k(np.zeros(576, np.float32), np.zeros((1, 512), np.float32))


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"chunk": 0}, "chunk"),
        ({"context": -1}, "context"),
        ({"scale": "pcm"}, "scale"),
        ({"normalize": "max"}, "normalize"),
        ({"sample_rate": 0}, "sample_rate"),
    ],
)
def test_validate_names_the_bad_field(kwargs: dict, field: str) -> None:
    base = {"sample_rate": 16000, "chunk": 512}
    with pytest.raises(ValueError, match=field):
        WaveformParams(**{**base, **kwargs}).validate()
