"""Feeds in CUDA memory: `DeviceTensor` describes them (pointer arithmetic, the CUDA array
interface both ways), the Backend template checks them like host arrays, and refuses them
on a backend that reads host memory; the CUDA kernels check the buffers they write."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from avfuse.backends import create_backend
from avfuse.backends.base import Backend
from avfuse.backends.device import DeviceTensor, on_device
from avfuse.errors import UsageError
from avfuse.manifest import load_manifest
from tests.fixtures.models import write_tiny_model


class CudaArray:
    """An object exposing version 3 of the CUDA array interface, as CuPy and torch do."""

    def __init__(self, ptr: int, shape: tuple[int, ...], typestr: str, strides=None) -> None:
        self.__cuda_array_interface__ = {
            "shape": shape, "typestr": typestr, "data": (ptr, False), "strides": strides,
            "version": 3,
        }  # fmt: skip


def test_device_tensor_rows_and_heads_share_its_memory() -> None:
    t = DeviceTensor(0x10000, (8, 64, 97), np.float32, device=1)
    assert t.nbytes == 8 * 64 * 97 * 4 and t.ndim == 3
    assert t.row(3).ptr == 0x10000 + 3 * 64 * 97 * 4 and t.row(3).shape == (64, 97)
    assert t.head(2) == DeviceTensor(0x10000, (2, 64, 97), np.float32, device=1)
    iface = t.__cuda_array_interface__
    assert iface["data"] == (0x10000, False) and iface["typestr"] == "<f4"
    with pytest.raises(UsageError, match="cannot take 9 rows"):
        t.head(9)
    with pytest.raises(UsageError, match="row 8 is outside"):
        t.row(8)


def test_wrap_reads_the_interface_and_refuses_strided_memory() -> None:
    t = DeviceTensor.wrap(CudaArray(4096, (2, 3), "<f4"))
    assert (t.ptr, t.shape, t.dtype) == (4096, (2, 3), np.dtype(np.float32))
    assert DeviceTensor.wrap(CudaArray(4096, (2, 3), "<f4", strides=(12, 4))).ptr == 4096
    with pytest.raises(UsageError, match="not C-contiguous"):
        DeviceTensor.wrap(CudaArray(4096, (2, 3), "<f4", strides=(4, 8)))
    with pytest.raises(UsageError, match="neither a numpy array nor a device tensor"):
        DeviceTensor.wrap([1, 2, 3])
    assert on_device(t) and on_device(CudaArray(1, (1,), "<f4")) and not on_device(np.zeros(1))


class _Recorder(Backend):
    """The smallest backend that reads device memory: it records what it was given."""

    name = "recorder"

    def _load(self, manifest) -> None:
        self.device_inputs = True
        self.seen: dict[str, Any] = {}

    def _infer(self, feeds):
        self.seen = feeds
        return {"logits": np.zeros((feeds["mask"].shape[0], 11), np.float32)}


def _device_feeds(batch: int, audio_dtype: str = "<f4") -> dict[str, Any]:
    return {
        "audio": CudaArray(1 << 20, (batch, 64, 97), audio_dtype),
        "image": DeviceTensor(1 << 24, (batch, 1, 48, 64), np.float32),
        "mask": np.ones((batch, 2), np.float32),  # host and device feeds may mix
    }


def test_the_template_checks_device_feeds_like_host_arrays(tmp_path) -> None:
    m = load_manifest(write_tiny_model(tmp_path))
    be = _Recorder().load(m)
    be.infer(_device_feeds(3))
    assert isinstance(be.seen["audio"], DeviceTensor) and be.seen["audio"].ptr == 1 << 20
    assert isinstance(be.seen["mask"], np.ndarray)
    with pytest.raises(UsageError, match="input 'audio' must be float32, got float16"):
        be.infer(_device_feeds(3, "<f2"))
    with pytest.raises(UsageError, match="same batch"):
        be.infer({**_device_feeds(3), "mask": np.ones((2, 2), np.float32)})


def test_a_host_backend_refuses_device_feeds_in_one_line(tmp_path) -> None:
    m = load_manifest(write_tiny_model(tmp_path))
    with create_backend("ort").load(m) as be, pytest.raises(UsageError) as info:
        be.infer(_device_feeds(1))
    msg = str(info.value)
    assert "'audio' is in CUDA memory but the ort backend on cpu reads host arrays" in msg
    assert "\n" not in msg


def test_the_cuda_kernels_check_the_device_buffers_they_write() -> None:
    from avfuse.kernels.cuda_gpu import device_pointer

    good = DeviceTensor(8192, (2, 64, 97), np.float32)
    assert device_pointer(good, (2, 64, 97), "log-mel output") == 8192
    assert device_pointer(1234, (2, 64, 97)) == 1234  # a raw pointer is trusted
    with pytest.raises(UsageError, match=r"log-mel output must be float32 \(2, 64, 97\)"):
        device_pointer(DeviceTensor(8192, (2, 64, 96), np.float32), (2, 64, 97), "log-mel output")
    with pytest.raises(UsageError, match="float32"):
        device_pointer(CudaArray(8192, (2, 64, 97), "<f8"), (2, 64, 97))
