"""CUDA kernels (kernels/cuda, built by CMakeLists.txt) behind the kernel interface.

The library is driven through ctypes, so neither CuPy nor torch is needed. Two ways in:
- the interface calls (`LogMel()(audio, out)`, `Image()(frame, fmt, out)`) take host
  numpy arrays, copy them to the GPU, run, and copy the result back;
- `run_device(...)` takes device pointers (or objects with `__cuda_array_interface__`:
  `DeviceTensor`, CuPy arrays, CUDA torch tensors, checked for shape) and a stream, and
  leaves the result on the GPU, where a backend with `device_inputs` (torch and ONNX
  Runtime on CUDA, TensorRT) reads it as a feed without a copy back
  (benchmarks/gpu_check.py runs that chain where a GPU exists).

The streaming engine (`avfuse run --kernels cuda`) uses the interface calls: its feed
rows are host memory, so on a GPU a frame goes up, its tensor comes back, and the
backend sends it up again; keeping the rows in device memory needs the engine's lanes to
write device feeds (not done: the GPU status table in docs/gpu.md says so).

Where no library, runtime or GPU exists, construction raises BackendUnavailable naming
what is missing; the kernel pickers then fall back to numba.
"""

from __future__ import annotations

import ctypes

import numpy as np

from avfuse.backends.device import DeviceTensor
from avfuse.errors import BackendError, BackendUnavailable, UsageError
from avfuse.kernels import ImageKernel, LogMelKernel, native
from avfuse.kernels.numpy_fast import picture_size as frame_geometry
from avfuse.kernels.reference import AudioParams, VideoParams

__all__ = ["Image", "LogMel", "device_pointer"]

_lib: ctypes.CDLL | None = None


def _library() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        lib = native.load_library("cuda")
        if lib.avf_cuda_device_count() < 1:
            raise BackendUnavailable(
                "no CUDA GPU or driver found (cudaGetDeviceCount is 0); "
                "use impl='numba' or run on a machine with an NVIDIA GPU and driver"
            )
        _lib = lib
    return _lib


def _check(code: int, what: str) -> None:
    if code:
        msg = _library().avf_cuda_error_string(code).decode()
        raise BackendError(f"CUDA {what} failed: {msg} (error {code})")


def device_pointer(obj: object, shape: tuple[int, ...] | None = None, what: str = "buffer") -> int:
    """Device address of an int pointer or an object with `__cuda_array_interface__`
    (a `DeviceTensor`, CuPy array, CUDA torch tensor); such an object must be C-contiguous
    float32 of `shape` when one is given (a raw int is trusted as it is)."""
    if isinstance(obj, int):
        return obj
    if getattr(obj, "__cuda_array_interface__", None) is None:
        raise UsageError(
            "expected a device pointer (int) or an object with __cuda_array_interface__"
        )
    t = DeviceTensor.wrap(obj)
    if shape is not None and (t.shape != tuple(shape) or t.dtype != np.float32):
        raise UsageError(
            f"the device {what} must be float32 {tuple(shape)}, got {t.dtype} {t.shape}"
        )
    return t.ptr


class _DeviceBuffer:
    """A growable device allocation, freed with the kernel."""

    def __init__(self) -> None:
        self.ptr = ctypes.c_void_p()
        self.bytes = 0

    def ensure(self, nbytes: int) -> int:
        if nbytes > self.bytes:
            self.free()
            _check(_library().avf_cuda_malloc(ctypes.byref(self.ptr), nbytes), "malloc")
            self.bytes = nbytes
        return self.ptr.value or 0

    def free(self) -> None:
        if self.bytes:
            _library().avf_cuda_free(self.ptr)
            self.bytes = 0

    def __del__(self) -> None:
        if _lib is not None:
            self.free()


class LogMel(LogMelKernel):
    """Batched log-mel on the GPU: one thread block per (stream, frame)."""

    name = "cuda"

    def __init__(self, params: AudioParams) -> None:
        super().__init__(params)
        self._lib = _library()
        self._struct = native.audio_struct(params)
        self._in = _DeviceBuffer()
        self._out = _DeviceBuffer()

    def run_device(self, audio: object, batch: int, n_samples: int, out: object,
                   stream: int = 0) -> None:  # fmt: skip
        """Device audio (batch, n_samples) float32 -> device out (batch, n_mels, frames).

        `out` may be a model feed in device memory (a `DeviceTensor` or CUDA tensor) that a
        backend then reads where it is (`Backend.infer`, `device_inputs`).
        """
        code = self._lib.avf_cuda_log_mel(
            device_pointer(audio, (batch, n_samples), "audio"), batch, n_samples,
            ctypes.byref(self._struct),
            device_pointer(out, self.out_shape(n_samples, batch), "log-mel output"), stream,
        )  # fmt: skip
        _check(code, "log-mel launch")

    def __call__(self, audio: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        x = np.ascontiguousarray(audio, np.float32)
        if x.ndim not in (1, 2) or x.shape[-1] < self.params.n_fft:
            raise UsageError(
                f"audio must be (n,) or (batch, n) with n >= n_fft={self.params.n_fft}, "
                f"got {x.shape}"
            )
        batch = 1 if x.ndim == 1 else x.shape[0]
        shape = self.out_shape(x.shape[-1], None if x.ndim == 1 else batch)
        if out is None:
            out = np.empty(shape, np.float32)
        elif out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
            raise UsageError(f"out must be C-contiguous float32 {shape}, got {out.shape}")
        d_in = self._in.ensure(x.nbytes)
        d_out = self._out.ensure(out.nbytes)
        _check(self._lib.avf_cuda_h2d(d_in, x.ctypes.data, x.nbytes), "copy to device")
        self.run_device(d_in, batch, x.shape[-1], d_out)
        _check(self._lib.avf_cuda_d2h(out.ctypes.data, d_out, out.nbytes), "copy to host")
        return out


class Image(ImageKernel):
    """Fused image pre-processing on the GPU: one thread per output element."""

    name = "cuda"

    def __init__(self, params: VideoParams) -> None:
        super().__init__(params)
        self._lib = _library()
        self._struct = native.video_struct(params)
        self._in = _DeviceBuffer()
        self._out = _DeviceBuffer()

    def run_device(self, frames: object, batch: int, pixel_format: str, height: int,
                   width: int, out: object, stream: int = 0) -> None:  # fmt: skip
        """Device frames (batch, frame bytes) uint8 -> device out (batch, C, H, W) float32,
        e.g. a `DeviceTensor` model feed a backend reads where it is."""
        code = self._lib.avf_cuda_image(
            device_pointer(frames), batch, native.FORMAT_CODES[pixel_format], height, width,
            ctypes.byref(self._struct),
            device_pointer(out, (batch, *self.out_shape), "image output"), stream,
        )  # fmt: skip
        _check(code, "image launch")

    def __call__(
        self, frame: np.ndarray, pixel_format: str = "bgr24", out: np.ndarray | None = None
    ) -> np.ndarray:
        return self._run(frame[None], pixel_format, out, single=True)

    def batch(
        self, frames: np.ndarray, pixel_format: str = "bgr24", out: np.ndarray | None = None
    ) -> np.ndarray:
        """frames (B, ...) -> (B, C, H, W) in one launch."""
        return self._run(frames, pixel_format, out, single=False)

    def _run(self, frames: np.ndarray, fmt: str, out: np.ndarray | None, single: bool):
        height, width = frame_geometry(frames.shape[1:], fmt)
        x = np.ascontiguousarray(frames, np.uint8)
        shape = (x.shape[0], *self.out_shape)
        res = np.empty(shape, np.float32) if out is None else out.reshape(shape)
        d_in = self._in.ensure(x.nbytes)
        d_out = self._out.ensure(res.nbytes)
        _check(self._lib.avf_cuda_h2d(d_in, x.ctypes.data, x.nbytes), "copy to device")
        self.run_device(d_in, x.shape[0], fmt, height, width, d_out)
        _check(self._lib.avf_cuda_d2h(res.ctypes.data, d_out, res.nbytes), "copy to host")
        return res[0] if single and out is None else (out if out is not None else res)
