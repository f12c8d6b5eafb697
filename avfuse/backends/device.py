"""Tensors in CUDA device memory, as feeds a backend reads without a host round trip.

The CUDA pre-processing kernels (`avfuse.kernels.cuda_gpu`) write the model input into
device memory; `DeviceTensor` names such a buffer (pointer, shape, dtype, device) so
that `Backend.infer` can check it like a numpy feed and a GPU backend can bind it
directly: ONNX Runtime through `IOBinding.bind_input(..., "cuda", ...)`, torch
through `__cuda_array_interface__`, TensorRT through `set_tensor_address`.

Objects that already expose `__cuda_array_interface__` (CuPy arrays, CUDA torch
tensors, numba device arrays) are accepted as feeds too and wrapped on the way in.
Nothing here touches a GPU: a DeviceTensor is a description, its memory belongs to
whoever allocated it, and work that writes it must be finished (or ordered on the
backend's stream) before `infer` is called.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from avfuse.errors import UsageError


@dataclass(frozen=True)
class DeviceTensor:
    """A C-contiguous tensor in the memory of CUDA device `device`.

    Attributes:
        ptr: device address of element 0.
        shape: dims.
        dtype: element type (numpy's, so feed checks compare it as they do host arrays).
        device: CUDA device index.
    """

    ptr: int
    shape: tuple[int, ...]
    dtype: np.dtype
    device: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", np.dtype(self.dtype))
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))

    @property
    def ndim(self) -> int:
        """Number of dims."""
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        """Size in bytes."""
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    def head(self, n: int) -> DeviceTensor:
        """The first `n` rows (axis 0), sharing the memory (a batch of a larger buffer)."""
        if not 0 < n <= (self.shape[0] if self.shape else 0):
            raise UsageError(f"cannot take {n} rows of a device tensor of shape {self.shape}")
        return DeviceTensor(self.ptr, (n, *self.shape[1:]), self.dtype, self.device)

    def row(self, i: int) -> DeviceTensor:
        """Row `i` (axis 0) as its own tensor, sharing the memory."""
        if not 0 <= i < (self.shape[0] if self.shape else 0):
            raise UsageError(f"row {i} is outside a device tensor of shape {self.shape}")
        one = DeviceTensor(self.ptr, self.shape[1:], self.dtype, self.device)
        return DeviceTensor(self.ptr + i * one.nbytes, self.shape[1:], self.dtype, self.device)

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        """Version 3 of the protocol (C order: strides None), so torch and CuPy can wrap it."""
        return {
            "shape": self.shape,
            "typestr": self.dtype.str,
            "data": (self.ptr, False),
            "strides": None,
            "version": 3,
        }

    @classmethod
    def wrap(cls, obj: Any) -> DeviceTensor:
        """A DeviceTensor describing `obj` (one itself, or an object with the CUDA array
        interface: CuPy, torch, numba); refuses strided memory, which no binding takes."""
        if isinstance(obj, DeviceTensor):
            return obj
        iface = getattr(obj, "__cuda_array_interface__", None)
        if iface is None:
            raise UsageError(
                f"{type(obj).__name__} is neither a numpy array nor a device tensor "
                "(__cuda_array_interface__)"
            )
        shape = tuple(iface["shape"])
        dtype = np.dtype(iface["typestr"])
        strides = iface.get("strides")
        if strides is not None and tuple(strides) != _c_strides(shape, dtype.itemsize):
            raise UsageError(
                f"a device tensor of shape {shape} is not C-contiguous (strides {strides}); "
                "make it contiguous first (e.g. .contiguous() in torch)"
            )
        device = getattr(getattr(obj, "device", None), "index", None)  # torch
        if device is None:
            device = getattr(getattr(obj, "device", None), "id", 0)  # CuPy
        return cls(int(iface["data"][0]), shape, dtype, int(device or 0))


def _c_strides(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    out, step = [], itemsize
    for d in reversed(shape):
        out.append(step)
        step *= d
    return tuple(reversed(out))


def on_device(value: Any) -> bool:
    """Whether a feed lives in device memory (not a numpy array)."""
    return not isinstance(value, np.ndarray) and (
        isinstance(value, DeviceTensor) or hasattr(value, "__cuda_array_interface__")
    )


__all__ = ["DeviceTensor", "on_device"]
