"""The reference log-mel variants against librosa, the convention third-party models use.

librosa is only the expected value here: every comparison is built from librosa's own
pieces in float64 (stft, filters.mel with dtype=float64, power_to_db), so a difference is
an error of avfuse's definition, not float32 rounding. Tolerances: 1e-6 relative on
linear values, 1e-5 dB on log values.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from avfuse.kernels.reference import AudioParams, log_mel, mel_filterbank

from .conftest import chirp, noise

librosa = pytest.importorskip("librosa")

pytestmark = pytest.mark.timeout(60)

#: linear mel values (log="none") so the filterbank and spectrum are checked directly
LIN = AudioParams(
    window_s=0.5, n_fft=512, win_length=400, hop_length=160, n_mels=40, fmin=0.0,
    fmax=8000.0, log="none",
)  # fmt: skip


def _audio(n: int) -> np.ndarray:
    return (chirp(n) + noise(n, seed=2, scale=0.05)).astype(np.float64)


def _librosa_mel(x: np.ndarray, p: AudioParams) -> np.ndarray:
    """(n_mels, frames) mel spectrogram from librosa's float64 pieces."""
    spec = librosa.stft(
        x, n_fft=p.n_fft, hop_length=p.hop_length, win_length=p.win_length, window="hann",
        center=p.center, pad_mode=p.pad_mode,
    )  # fmt: skip
    fb = librosa.filters.mel(
        sr=p.sample_rate, n_fft=p.n_fft, n_mels=p.n_mels, fmin=p.fmin, fmax=p.fmax,
        htk=p.mel_scale == "htk", norm="slaney" if p.mel_norm == "slaney" else None,
        dtype=np.float64,
    )  # fmt: skip
    return fb @ (np.abs(spec) ** p.power)


def _close(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    rel = np.abs(got - want).max() / np.abs(want).max()
    assert rel <= 1e-6, f"max relative error {rel}"


@pytest.mark.parametrize("scale", ["htk", "slaney"])
@pytest.mark.parametrize("norm", ["none", "slaney"])
def test_mel_filterbank_matches_librosa(scale: str, norm: str) -> None:
    for sr, n_fft in ((16000, 512), (16000, 321), (22050, 2048)):
        got = mel_filterbank(sr, n_fft, 64, 0.0, sr / 2, scale=scale, norm=norm)
        want = librosa.filters.mel(
            sr=sr, n_fft=n_fft, n_mels=64, htk=scale == "htk",
            norm="slaney" if norm == "slaney" else None, dtype=np.float64,
        )  # fmt: skip
        _close(got, want)


@pytest.mark.parametrize("power", [1.0, 2.0])
@pytest.mark.parametrize(
    "center,pad_mode", [(False, "constant"), (True, "constant"), (True, "reflect")]
)
@pytest.mark.parametrize("scale,norm", [("htk", "none"), ("slaney", "slaney")])
def test_mel_spectrogram_matches_librosa(
    power: float, center: bool, pad_mode: str, scale: str, norm: str
) -> None:
    p = replace(LIN, power=power, center=center, pad_mode=pad_mode, mel_scale=scale, mel_norm=norm)
    x = _audio(p.window_samples)
    _close(log_mel(x, p), _librosa_mel(x, p))


def test_centred_frame_count_matches_librosa() -> None:
    """librosa pads n_fft // 2 on both sides: 1 + n // hop frames for an even n_fft."""
    for n_fft, n in ((512, 8000), (512, 8159), (321, 144000), (321, 144001)):
        p = replace(LIN, n_fft=n_fft, win_length=n_fft, center=True, window=n)
        want = _librosa_mel(np.zeros(n) + 0.1, p).shape[1]
        assert p.frames == want
        assert log_mel(np.full(n, 0.1), p).shape == (p.n_mels, want)
    assert replace(LIN, center=True).frames == 1 + LIN.window_samples // LIN.hop_length


def test_reflect_padding_differs_from_zero_padding() -> None:
    """Guards the test above: the two pad modes must give different edge frames."""
    x = _audio(LIN.window_samples)
    a = log_mel(x, replace(LIN, center=True, pad_mode="constant"))
    b = log_mel(x, replace(LIN, center=True, pad_mode="reflect"))
    assert np.abs(a[:, 0] - b[:, 0]).max() > 1e-3 * np.abs(a[:, 0]).max()
    np.testing.assert_allclose(a[:, 5:-5], b[:, 5:-5], rtol=1e-12)


@pytest.mark.parametrize("power", [1.0, 2.0])
def test_db_relative_to_window_max_with_top_db_matches_librosa(power: float) -> None:
    p = replace(LIN, log="db", power=power, db_ref="max", top_db=80.0, log_floor=1e-10)
    x = _audio(p.window_samples)
    x[: x.size // 2] *= 1e-6  # a quiet half, so top_db clamps
    mel = _librosa_mel(x, p)
    if power == 2.0:
        want = librosa.power_to_db(mel, ref=np.max, amin=1e-10, top_db=80.0)
    else:
        want = librosa.amplitude_to_db(mel, ref=np.max, amin=1e-10, top_db=80.0)
    got = log_mel(x, p)
    assert (want == want.min()).mean() > 0.1, "the clamp is not exercised"
    assert np.abs(got - want).max() <= 1e-5


def test_db_relative_to_one_matches_librosa_and_power_1_is_20_log10() -> None:
    x = _audio(LIN.window_samples)
    for power, to_db in ((2.0, librosa.power_to_db), (1.0, librosa.amplitude_to_db)):
        p = replace(LIN, log="db", power=power, log_floor=1e-5)
        want = to_db(_librosa_mel(x, p), ref=1.0, amin=1e-5, top_db=None)
        assert np.abs(log_mel(x, p) - want).max() <= 1e-5


def test_db_ref_max_uses_each_batch_row_on_its_own() -> None:
    p = replace(LIN, log="db", db_ref="max")
    x = _audio(p.window_samples)
    both = log_mel(np.stack([x, 0.01 * x]), p)
    np.testing.assert_allclose(both[1], both[0], atol=1e-9)  # scale-free after ref=max
    assert np.isclose(both[0].max(), 0.0) and np.isclose(both[1].max(), 0.0)


def test_natural_and_decimal_logs_with_offset() -> None:
    x = _audio(LIN.window_samples)
    mel = _librosa_mel(x, LIN)
    got_ln = log_mel(x, replace(LIN, log="ln", log_offset=1e-6, log_floor=1e-10))
    assert np.abs(got_ln - np.log(mel + 1e-6)).max() <= 1e-9
    got_10 = log_mel(x, replace(LIN, log="log10", log_floor=1e-3))
    assert np.abs(got_10 - np.log10(np.maximum(mel, 1e-3))).max() <= 1e-9
    silence = np.zeros(LIN.window_samples)
    silent = log_mel(silence, replace(LIN, log="ln", log_offset=0.5, log_floor=1e-10))
    assert np.allclose(silent, np.log(0.5), rtol=0, atol=1e-12)
    floored = log_mel(silence, replace(LIN, log="ln", log_offset=1e-6, log_floor=1e-3))
    assert np.allclose(floored, np.log(1e-3), rtol=0, atol=1e-12)  # offset, then the floor


def test_frames_mels_layout_is_the_transpose_and_normalises() -> None:
    p = replace(LIN, log="db", mean=-40.0, std=40.0)
    x = _audio(p.window_samples)
    a = log_mel(x, p)
    b = log_mel(x, replace(p, layout="frames_mels"))
    np.testing.assert_array_equal(b, a.T)
    plain = log_mel(x, p, normalise=False)
    np.testing.assert_allclose(a, (plain + 40.0) / 40.0, rtol=1e-12)
    assert replace(p, layout="frames_mels").out_shape == b.shape


def test_window_in_samples_overrides_window_s() -> None:
    p = AudioParams(window_s=1.0, window=12345)
    assert p.window_samples == 12345
    assert p.frames == 1 + (12345 - p.n_fft) // p.hop_length
    assert AudioParams().window_samples == 16000


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"mel_scale": "mel"}, "mel_scale"),
        ({"mel_norm": "area"}, "mel_norm"),
        ({"log": "log2"}, "log"),
        ({"db_ref": "mean"}, "db_ref"),
        ({"pad_mode": "edge", "center": True}, "pad_mode"),
        ({"layout": "nchw"}, "layout"),
        ({"power": 0.0}, "power"),
        ({"log_offset": -1.0}, "log_offset"),
        ({"top_db": -3.0}, "top_db"),
        ({"log": "ln", "db_ref": "max"}, "db_ref"),
        ({"log": "none", "top_db": 80.0}, "top_db"),
        ({"window": 0}, "window"),
        ({"window": 100}, "window"),
    ],
)
def test_validate_names_the_bad_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        AudioParams(**kwargs).validate()


def test_validate_lists_the_allowed_values() -> None:
    with pytest.raises(ValueError, match="'htk', 'slaney'"):
        AudioParams(mel_scale="mel").validate()
