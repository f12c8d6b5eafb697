"""Reference pre-processing in numpy float64: the definition every other kernel must match.

Training uses exactly these functions, and the fast kernels (numba, CUDA) are tested
against them. Nothing here is optimised; everything here is explicit.

    audio  kernels/reference_audio.py: `AudioParams` and the log-mel (`log_mel`), with
           the default (avfuse's own streaming feature: no centring, HTK mel, power dB)
           and the librosa-style variants of third-party models
    video  kernels/reference_video.py: `VideoParams` and the exact-area image tensor
           (`image_to_tensor`); the OpenCV interpolations are defined by
           kernels/opencv_image.py, whose OpenCV rounding is the definition there

This module re-exports both, so `from avfuse.kernels.reference import AudioParams`
keeps working.
"""

from __future__ import annotations

from avfuse.kernels.reference_audio import (
    AUDIO_LAYOUTS,
    DB_REFS,
    LOG_KINDS,
    MEL_NORMS,
    MEL_SCALES,
    PAD_MODES,
    AudioParams,
    audio_variant,
    frame_signal,
    hann_window,
    hz_to_mel,
    log_mel,
    mel_filterbank,
    mel_to_hz,
    n_frames,
    normalise_log_mel,
)
from avfuse.kernels.reference_video import (
    COLOURS,
    IMAGE_DTYPES,
    IMAGE_LAYOUTS,
    INTERPOLATIONS,
    PIXEL_FORMATS,
    RESIZE_MODES,
    ResizeGeometry,
    VideoParams,
    area_weights,
    image_to_tensor,
    resize_geometry,
    roi_box,
    to_rgb,
    video_variant,
    yuv_to_rgb,
)

__all__ = [
    "AUDIO_LAYOUTS",
    "COLOURS",
    "DB_REFS",
    "IMAGE_DTYPES",
    "IMAGE_LAYOUTS",
    "INTERPOLATIONS",
    "LOG_KINDS",
    "MEL_NORMS",
    "MEL_SCALES",
    "PAD_MODES",
    "PIXEL_FORMATS",
    "RESIZE_MODES",
    "AudioParams",
    "ResizeGeometry",
    "VideoParams",
    "area_weights",
    "audio_variant",
    "frame_signal",
    "hann_window",
    "hz_to_mel",
    "image_to_tensor",
    "log_mel",
    "mel_filterbank",
    "mel_to_hz",
    "n_frames",
    "normalise_log_mel",
    "resize_geometry",
    "roi_box",
    "to_rgb",
    "video_variant",
    "yuv_to_rgb",
]
