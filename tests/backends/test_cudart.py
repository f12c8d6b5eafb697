"""The ctypes CUDA runtime binding: versions and page-locked memory where a driver exists
(`gpu` tests), and a one-line reason where the runtime loads but no driver does."""

from __future__ import annotations

import numpy as np
import pytest

from avfuse.backends import cudart
from avfuse.errors import BackendUnavailable


def _lib_or_skip() -> None:
    try:
        cudart._lib()
    except BackendUnavailable:
        pytest.skip("libcudart is not installed here")


def test_without_a_driver_the_runtime_says_what_is_missing() -> None:
    _lib_or_skip()
    assert cudart.runtime_version() >= 11000  # needs no driver
    if cudart.driver_version() != 0:
        pytest.skip("a driver is present; the gpu tests cover it")
    with pytest.raises(BackendUnavailable, match="no usable CUDA GPU .*nvidia-smi"):
        cudart.device_count()
    with pytest.raises(BackendUnavailable, match="no usable CUDA GPU"):
        cudart.host_array((4,), np.float32)


@pytest.mark.gpu
def test_versions_name_and_page_locked_round_trip() -> None:
    assert cudart.device_count() >= 1
    assert cudart.driver_version() >= cudart.runtime_version() // 1000 * 1000
    assert cudart.device_name(0).startswith("NVIDIA")
    assert cudart.compute_capability(0)[0] >= 7
    host = cudart.host_array((3, 5), np.float32)
    assert not host.any() and host.flags.c_contiguous
    host[...] = np.arange(15, dtype=np.float32).reshape(3, 5)
    back = cudart.host_array((3, 5), np.float32)
    dev = cudart.malloc(host.nbytes)
    stream = cudart.stream_create()
    try:
        ptr = host.__array_interface__["data"][0]
        cudart.memcpy_async(dev, ptr, host.nbytes, cudart.MEMCPY_H2D, stream)
        cudart.memcpy_async(back.__array_interface__["data"][0], dev, host.nbytes,
                            cudart.MEMCPY_D2H, stream)  # fmt: skip
        cudart.stream_synchronize(stream)
    finally:
        cudart.free(dev)
        cudart.stream_destroy(stream)
    np.testing.assert_array_equal(back, host)
