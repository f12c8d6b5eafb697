"""A minimal ctypes binding to the CUDA runtime (libcudart): memory, copies, streams, graphs.

Just what the TensorRT backend needs to own device buffers without pulling in torch,
CuPy or cuda-python. Every call is checked; a missing library or driver raises
`BackendUnavailable` with what to install. Never run on a GPU in this project's CI
(there is none): the GPU tests exercise it where a GPU exists.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache

from avfuse.errors import BackendError, BackendUnavailable

MEMCPY_H2D = 1
MEMCPY_D2H = 2
_CANDIDATES = ("cudart", "cudart.so.13", "cudart.so.12")


@lru_cache(maxsize=1)
def _lib() -> ctypes.CDLL:
    for name in _CANDIDATES:
        path = ctypes.util.find_library(name) or (f"lib{name}" if ".so" in name else None)
        if not path:
            continue
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
