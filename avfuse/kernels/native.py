"""ctypes view of the native kernel libraries built by CMakeLists.txt.

Two libraries share the C structs of kernels/cuda/avf_math.cuh:
    libavfuse_kernels_cuda.so  the CUDA kernels (device pointers in, device pointers out)
    libavfuse_kernels_host.so  the same math compiled for the CPU (what tests check)

Libraries are looked up in $AVFUSE_KERNELS_LIB_DIR, then build/lib under the source
tree, then kernels/cuda/lib inside the installed package.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from avfuse.errors import BackendUnavailable
from avfuse.kernels.reference import AudioParams, VideoParams

__all__ = [
    "FORMAT_CODES",
    "AvfAudioParams",
    "AvfVideoParams",
    "audio_struct",
    "find_library",
    "load_library",
    "video_struct",
]

FORMAT_CODES = {"bgr24": 0, "rgb24": 1, "gray": 2, "nv12": 3, "i420": 4}
COLOUR_CODES = {"gray": 0, "rgb": 1, "bgr": 2}
BUILD_HINT = "build it with `cmake -S . -B build && cmake --build build` (CUDA part needs nvcc)"


class AvfAudioParams(ctypes.Structure):
    """C mirror of `struct AvfAudioParams`."""

    _fields_ = [
        ("sample_rate", ctypes.c_int),
        ("n_fft", ctypes.c_int),
        ("win_length", ctypes.c_int),
        ("hop_length", ctypes.c_int),
        ("n_mels", ctypes.c_int),
        ("fmin", ctypes.c_float),
        ("fmax", ctypes.c_float),
        ("log_floor", ctypes.c_float),
        ("mean", ctypes.c_float),
        ("std", ctypes.c_float),
    ]


class AvfVideoParams(ctypes.Structure):
    """C mirror of `struct AvfVideoParams`."""

    _fields_ = [
        ("height", ctypes.c_int),
        ("width", ctypes.c_int),
        ("colour", ctypes.c_int),
        ("mean", ctypes.c_float * 3),
        ("std", ctypes.c_float * 3),
    ]


def audio_struct(p: AudioParams) -> AvfAudioParams:
    """AudioParams as the C struct."""
    return AvfAudioParams(
        p.sample_rate, p.n_fft, p.win_length, p.hop_length, p.n_mels,
        p.fmin, p.fmax, p.log_floor, p.mean, p.std,
    )  # fmt: skip


def video_struct(v: VideoParams) -> AvfVideoParams:
    """VideoParams as the C struct (mean/std padded to 3 channels)."""
    mean = (ctypes.c_float * 3)(*(list(v.mean) + [0.0] * (3 - len(v.mean))))
    std = (ctypes.c_float * 3)(*(list(v.std) + [1.0] * (3 - len(v.std))))
    return AvfVideoParams(v.height, v.width, COLOUR_CODES[v.colour], mean, std)


def _search_dirs() -> list[Path]:
    dirs = []
    env = os.environ.get("AVFUSE_KERNELS_LIB_DIR")
    if env:
        dirs.append(Path(env))
    here = Path(__file__).resolve().parent
    dirs += [here.parents[1] / "build" / "lib", here / "cuda" / "lib"]
    return dirs


def find_library(kind: str) -> Path | None:
    """Path of libavfuse_kernels_<kind>.so ("cuda" or "host"), or None where not built."""
    name = f"libavfuse_kernels_{kind}.so"
    for d in _search_dirs():
        if (d / name).is_file():
            return d / name
    return None


def load_library(kind: str, path: str | os.PathLike | None = None) -> ctypes.CDLL:
    """Load a kernel library and declare its entry points; BackendUnavailable if absent."""
    lib_path = Path(path) if path is not None else find_library(kind)
    if lib_path is None:
        raise BackendUnavailable(f"libavfuse_kernels_{kind}.so is not built; {BUILD_HINT}")
    try:
        lib = ctypes.CDLL(str(lib_path))
    except OSError as e:
        raise BackendUnavailable(
            f"cannot load {lib_path} ({e}); install the CUDA runtime or rebuild: {BUILD_HINT}"
        ) from e
    vp, i, sz = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t
    audio_p, video_p = ctypes.POINTER(AvfAudioParams), ctypes.POINTER(AvfVideoParams)
    if kind == "host":
        lib.avf_host_log_mel.argtypes = [vp, i, i, audio_p, vp]
        lib.avf_host_image.argtypes = [vp, i, i, i, i, video_p, vp]
    else:
        lib.avf_cuda_log_mel.argtypes = [vp, i, i, audio_p, vp, vp]
        lib.avf_cuda_image.argtypes = [vp, i, i, i, i, video_p, vp, vp]
        lib.avf_cuda_device_count.argtypes = []
        lib.avf_cuda_error_string.argtypes = [i]
        lib.avf_cuda_error_string.restype = ctypes.c_char_p
        lib.avf_cuda_malloc.argtypes = [ctypes.POINTER(vp), sz]
        lib.avf_cuda_free.argtypes = [vp]
        lib.avf_cuda_h2d.argtypes = [vp, vp, sz]
        lib.avf_cuda_d2h.argtypes = [vp, vp, sz]
        lib.avf_cuda_synchronize.argtypes = []
    return lib
