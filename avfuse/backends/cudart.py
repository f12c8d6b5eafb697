"""A minimal ctypes binding to the CUDA runtime (libcudart): memory, copies, streams, graphs.

Just what the TensorRT backend and the GPU providers need to own device and page-locked
buffers without pulling in torch, CuPy or cuda-python, plus the versions and GPU name an
engine cache key is made of. Every call is checked; a missing library or driver raises
`BackendUnavailable` with what to install. Never run on a GPU in this project's CI
(there is none): the GPU tests exercise it where a GPU exists.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import weakref
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from avfuse.errors import BackendError, BackendUnavailable

MEMCPY_H2D = 1
MEMCPY_D2H = 2
MEMCPY_D2D = 3
_CANDIDATES = ("cudart", "cudart.so.13", "cudart.so.12")
#: bytes given to cudaGetDeviceProperties (its struct is ~1 KB and starts with the name)
_PROPS_BYTES = 16384


def _wheel_libraries() -> list[str]:
    """libcudart from the nvidia-cuda-runtime wheels onnxruntime-gpu and torch install."""
    out = []
    for pkg in ("nvidia.cuda_runtime", "nvidia.cu13"):
        try:
            spec = importlib.util.find_spec(pkg)
        except (ImportError, ValueError):
            continue
        for root in list(spec.submodule_search_locations or []) if spec else []:
            out += sorted(str(p) for p in Path(root).glob("lib/libcudart.so*"))
    return out


@lru_cache(maxsize=1)
def _lib() -> ctypes.CDLL:
    names = [ctypes.util.find_library(n) or (f"lib{n}" if ".so" in n else None)
             for n in _CANDIDATES]  # fmt: skip
    for path in [n for n in names if n] + _wheel_libraries():
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    raise BackendUnavailable(
        "the CUDA runtime (libcudart) is not installed: install the CUDA "
        "toolkit or `pip install nvidia-cuda-runtime-cu12`"
    )


def _check(code: int, what: str) -> None:
    if code != 0:
        lib = _lib()
        lib.cudaGetErrorString.restype = ctypes.c_char_p
        msg = lib.cudaGetErrorString(code).decode()
        if what == "cudaGetDeviceCount" or code in (35, 100):  # driver too old / no device
            raise BackendUnavailable(
                f"no usable CUDA GPU ({msg}): check the NVIDIA driver with "
                "nvidia-smi, or use --device cpu"
            )
        raise BackendError(f"{what} failed: {msg}")


def device_count() -> int:
    """Number of CUDA devices (raises BackendUnavailable when there is no driver)."""
    n = ctypes.c_int(0)
    _check(_lib().cudaGetDeviceCount(ctypes.byref(n)), "cudaGetDeviceCount")
    return n.value


def set_device(index: int) -> None:
    """Make `index` the current device of this thread."""
    _check(_lib().cudaSetDevice(ctypes.c_int(index)), "cudaSetDevice")


def malloc(nbytes: int) -> int:
    """Device allocation; returns the pointer as an int."""
    ptr = ctypes.c_void_p()
    _check(_lib().cudaMalloc(ctypes.byref(ptr), ctypes.c_size_t(nbytes)), "cudaMalloc")
    return int(ptr.value or 0)


def malloc_host(nbytes: int) -> int:
    """Pinned (page-locked) host allocation, for asynchronous copies."""
    ptr = ctypes.c_void_p()
    _check(_lib().cudaMallocHost(ctypes.byref(ptr), ctypes.c_size_t(nbytes)), "cudaMallocHost")
    return int(ptr.value or 0)


def free(ptr: int, *, host: bool = False) -> None:
    """Release a pointer from `malloc` (or `malloc_host` with host=True)."""
    fn = _lib().cudaFreeHost if host else _lib().cudaFree
    _check(fn(ctypes.c_void_p(ptr)), "cudaFree")


def memcpy_async(dst: int, src: int, nbytes: int, kind: int, stream: int) -> None:
    """Asynchronous copy on `stream` (kind: MEMCPY_H2D or MEMCPY_D2H)."""
    _check(
        _lib().cudaMemcpyAsync(
            ctypes.c_void_p(dst),
            ctypes.c_void_p(src),
            ctypes.c_size_t(nbytes),
            ctypes.c_int(kind),
            ctypes.c_void_p(stream),
        ),
        "cudaMemcpyAsync",
    )


def stream_create() -> int:
    """A new non-default stream."""
    s = ctypes.c_void_p()
    _check(_lib().cudaStreamCreate(ctypes.byref(s)), "cudaStreamCreate")
    return int(s.value or 0)


def stream_synchronize(stream: int) -> None:
    """Wait until everything queued on `stream` has finished."""
    _check(_lib().cudaStreamSynchronize(ctypes.c_void_p(stream)), "cudaStreamSynchronize")


def stream_destroy(stream: int) -> None:
    """Release a stream from `stream_create`."""
    _check(_lib().cudaStreamDestroy(ctypes.c_void_p(stream)), "cudaStreamDestroy")


def graph_capture_begin(stream: int) -> None:
    """Start capturing the work queued on `stream` into a CUDA graph (global mode)."""
    _check(
        _lib().cudaStreamBeginCapture(ctypes.c_void_p(stream), ctypes.c_int(0)),
        "cudaStreamBeginCapture",
    )


def graph_capture_end(stream: int) -> int:
    """Finish the capture and instantiate it; returns the executable graph handle."""
    graph, exe = ctypes.c_void_p(), ctypes.c_void_p()
    _check(
        _lib().cudaStreamEndCapture(ctypes.c_void_p(stream), ctypes.byref(graph)),
        "cudaStreamEndCapture",
    )
    _check(
        _lib().cudaGraphInstantiate(ctypes.byref(exe), graph, ctypes.c_ulonglong(0)),
        "cudaGraphInstantiate",
    )
    _check(_lib().cudaGraphDestroy(graph), "cudaGraphDestroy")
    return int(exe.value or 0)


def graph_launch(exe: int, stream: int) -> None:
    """Replay an instantiated graph on `stream`."""
    _check(_lib().cudaGraphLaunch(ctypes.c_void_p(exe), ctypes.c_void_p(stream)), "cudaGraphLaunch")


def graph_destroy(exe: int) -> None:
    """Release an executable graph."""
    _check(_lib().cudaGraphExecDestroy(ctypes.c_void_p(exe)), "cudaGraphExecDestroy")


def runtime_version() -> int:
    """CUDA runtime version as CUDA encodes it (12040 = 12.4)."""
    v = ctypes.c_int(0)
    _check(_lib().cudaRuntimeGetVersion(ctypes.byref(v)), "cudaRuntimeGetVersion")
    return v.value


def driver_version() -> int:
    """Newest CUDA version the installed driver supports (same encoding)."""
    v = ctypes.c_int(0)
    _check(_lib().cudaDriverGetVersion(ctypes.byref(v)), "cudaDriverGetVersion")
    return v.value


def device_name(index: int) -> str:
    """The GPU's name ("NVIDIA H100 80GB HBM3"): the first field of cudaDeviceProp."""
    lib = _lib()
    fn = getattr(lib, "cudaGetDeviceProperties_v2", None) or lib.cudaGetDeviceProperties
    buf = ctypes.create_string_buffer(_PROPS_BYTES)
    _check(fn(buf, ctypes.c_int(index)), "cudaGetDeviceProperties")
    return buf.raw[:256].split(b"\0", 1)[0].decode(errors="replace")


def compute_capability(index: int) -> tuple[int, int]:
    """(major, minor) compute capability of device `index`."""
    major, minor = ctypes.c_int(), ctypes.c_int()
    lib = _lib()
    _check(lib.cudaDeviceGetAttribute(ctypes.byref(major), 75, index), "cudaDeviceGetAttribute")
    _check(lib.cudaDeviceGetAttribute(ctypes.byref(minor), 76, index), "cudaDeviceGetAttribute")
    return major.value, minor.value


def host_array(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """A zeroed numpy array in page-locked memory, freed when the last view of it goes.

    Copies between it and the GPU are single DMA transfers (pageable memory is staged
    through a driver buffer first), and asynchronous copies from it really overlap.
    """
    dt = np.dtype(dtype)
    nbytes = max(1, int(np.prod(shape, dtype=np.int64)) * dt.itemsize)
    ptr = malloc_host(nbytes)
    raw = (ctypes.c_byte * nbytes).from_address(ptr)
    weakref.finalize(raw, free, ptr, host=True)
    arr = np.frombuffer(raw, dtype=dt, count=int(np.prod(shape, dtype=np.int64))).reshape(shape)
    arr[...] = 0
    return arr
