"""Which kernel computes which variant: fast kernels only for what their algorithm does.

A fast kernel given a variant it does not implement would silently compute avfuse's
own feature instead (HTK instead of Slaney mel, area instead of Lanczos): plausible
numbers, wrong model input. So "auto" must skip it and forcing it must fail, naming
the setting.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from avfuse.errors import BackendUnavailable, UsageError
from avfuse.kernels import AudioParams, VideoParams, image_kernel, log_mel_kernel, numba_cpu
from avfuse.kernels import reference as ref
from avfuse.kernels.opencv_image import Image as OpenCVImage
from avfuse.kernels.streaming import StreamingLogMel
from avfuse.kernels.warm import warm_kernels

from .conftest import chirp, frame_of

pytestmark = pytest.mark.timeout(120)

P = AudioParams()
V = VideoParams(height=48, width=64, colour="gray", mean=(0.5,), std=(0.25,))

AUDIO_VARIANTS = {
    "mel_scale": {"mel_scale": "slaney"},
    "mel_norm": {"mel_norm": "slaney"},
    "power": {"power": 1.0},
    "log": {"log": "ln"},
    "log_offset": {"log_offset": 1e-6},
    "db_ref": {"db_ref": "max"},
    "top_db": {"top_db": 80.0},
    "center": {"center": True},
    "layout": {"layout": "frames_mels"},
}


@pytest.mark.parametrize("field", list(AUDIO_VARIANTS))
def test_auto_log_mel_skips_numba_for_variants(field: str) -> None:
    p = replace(P, **AUDIO_VARIANTS[field])
    assert not numba_cpu.LogMel.supports(p)
    kernel = log_mel_kernel(p)
    assert kernel.name == "reference"
    audio = chirp(p.window_samples)
    out = np.empty(kernel.out_shape(p.window_samples), np.float32)
    kernel(audio, out)
    np.testing.assert_allclose(out, ref.log_mel(audio, p), rtol=1e-6, atol=1e-5)
    with pytest.raises(BackendUnavailable, match=field):
        log_mel_kernel(p, "numba")
    with pytest.raises(UsageError, match=field):
        numba_cpu.LogMel(p)


def test_numba_keeps_the_default_and_free_settings() -> None:
    assert log_mel_kernel(P).name == "numba"
    free = replace(P, window=12000, log_floor=1e-8, pad_mode="reflect", mean=-3.0, std=7.0)
    assert log_mel_kernel(free).name == "numba"  # pad_mode does not matter without center
    audio = chirp(free.window_samples)
    got = log_mel_kernel(free)(audio)
    assert np.abs(got - ref.log_mel(audio, free)).max() <= 1e-3 / free.std


def test_odd_fft_size_goes_to_the_reference() -> None:
    p = AudioParams(n_fft=321, win_length=321, fmax=8000.0)
    assert log_mel_kernel(p).name == "reference"
    with pytest.raises(BackendUnavailable, match="n_fft=321"):
        log_mel_kernel(p, "numba")


def test_invalid_params_are_reported_as_invalid_not_unsupported() -> None:
    with pytest.raises(ValueError, match="mel_scale must be one of"):
        log_mel_kernel(replace(P, mel_scale="bark"), "numba")


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"interpolation": "bilinear"}, "interpolation"),
        ({"layout": "NHWC"}, "layout"),
        ({"roi": (0.0, 0.0, 0.5, 1.0)}, "roi"),
    ],
)
def test_numba_image_only_for_the_exact_area_nchw_path(kwargs: dict, field: str) -> None:
    p = replace(V, **kwargs)
    assert not numba_cpu.Image.supports(p)
    with pytest.raises(BackendUnavailable, match=field):
        image_kernel(p, "numba")
    with pytest.raises(UsageError, match=field):
        numba_cpu.Image(p)


def test_auto_image_choice() -> None:
    assert image_kernel(V).name == "numba"
    cv = replace(V, interpolation="bilinear")
    assert isinstance(image_kernel(cv), OpenCVImage)
    assert isinstance(image_kernel(cv, "reference"), OpenCVImage)  # OpenCV is the definition
    assert image_kernel(replace(V, roi=(0.1, 0.1, 0.5, 0.5))).name == "reference"
    assert image_kernel(V, "reference").name == "reference"


def test_exact_area_reference_with_roi_and_nhwc() -> None:
    """roi (0.25, 0.5, 0.5, 0.5) of 60 x 80 = rows 30:60, columns 20:60, then area resize."""
    frame = frame_of("bgr24", 60, 80, seed=9)
    p = VideoParams(height=10, width=16, colour="rgb", mean=(0.5,) * 3, std=(0.25,) * 3)
    want = ref.image_to_tensor(np.ascontiguousarray(frame[30:60, 20:60]), p)
    roi = replace(p, roi=(0.25, 0.5, 0.5, 0.5))
    np.testing.assert_allclose(image_kernel(roi)(frame), want, atol=1e-6)
    nhwc = replace(roi, layout="NHWC")
    assert nhwc.out_shape == (10, 16, 3)
    np.testing.assert_allclose(image_kernel(nhwc)(frame), want.transpose(1, 2, 0), atol=1e-6)


def test_v1_resize_area_reads_as_exact_area_stretch() -> None:
    v1 = VideoParams(height=48, width=64, resize="area", mean=(0.5,), std=(0.25,))
    assert (v1.resize, v1.interpolation) == ("stretch", "exact-area")
    assert v1 == V
    v1.validate()
    with pytest.raises(ValueError, match="resize='stretch'"):
        VideoParams(resize="area", interpolation="bilinear").validate()


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"resize": "fit"}, "resize"),
        ({"interpolation": "cubic"}, "interpolation"),
        ({"dtype": "float16"}, "dtype"),
        ({"layout": "CHW"}, "layout"),
        ({"resize": "letterbox"}, "OpenCV interpolation"),
        ({"dtype": "uint8"}, "OpenCV interpolation"),
        ({"scale": 1.0}, "scale"),
        ({"resize": "short_side", "interpolation": "area"}, "short_side"),
        ({"resize": "short_side", "interpolation": "area", "short_side": 32}, "short_side"),
        ({"short_side": 256}, "short_side"),
        ({"roi": (0.5, 0.0, 0.6, 1.0)}, "roi"),
        ({"pad_value": 300.0}, "pad_value"),
        ({"interpolation": "area", "dtype": "uint8", "pad_value": 0.5}, "pad_value"),
        ({"colour": "rgb"}, "mean and std"),
    ],
)
def test_video_validate_names_the_bad_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        replace(V, **kwargs).validate()


@pytest.mark.parametrize("field", ["center", "layout", "db_ref", "top_db"])
def test_streaming_refuses_window_dependent_features(field: str) -> None:
    p = replace(P, **AUDIO_VARIANTS[field])
    assert not StreamingLogMel.supports(p)
    with pytest.raises(UsageError, match=f"cannot stream.*{field}"):
        StreamingLogMel(log_mel_kernel(p))


def test_streaming_accepts_frame_local_variants() -> None:
    p = replace(P, mel_scale="slaney", mel_norm="slaney", log="ln", power=1.0)
    kernel = log_mel_kernel(p)
    stream = StreamingLogMel(kernel)
    audio = chirp(p.window_samples)
    out = np.empty(p.out_shape, np.float32)
    stream.window(audio, 4 * p.window_samples, out)
    np.testing.assert_allclose(out, kernel(audio), rtol=1e-6, atol=1e-6)


def test_warm_kernels_accepts_reference_and_opencv_kernels() -> None:
    dnsmos = AudioParams(
        window=16000, n_fft=321, win_length=321, fmax=8000.0, center=True, db_ref="max",
        layout="frames_mels",
    )  # fmt: skip
    img = image_kernel(replace(V, interpolation="area", dtype="uint8", layout="NHWC"))
    warm_kernels(mel=log_mel_kernel(dnsmos), image=img, frames=[((240, 320, 3), "bgr24")], batch=2)
    warm_kernels(image=img)  # the kernel's own warm-up
