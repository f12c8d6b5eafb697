"""The GPU side of `avfuse doctor`: NVIDIA driver, CUDA runtime, GPU, TensorRT and torch.

The driver and the runtime are read through ctypes (libcuda, libcudart) and the GPU
through `nvidia-smi --query-gpu` under a timeout, so none of it needs torch, CuPy or
cuda-python; torch is imported only where it is installed (it is a check of its own).
On a machine without an NVIDIA GPU every row here says `absent` and why.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import shutil
import sys
from collections.abc import Sequence

from avfuse.doctor.base import Check, one_line, run_command

_DRIVER_LIBS = ("nvcuda.dll",) if sys.platform == "win32" else ("libcuda.so.1", "libcuda.so")
_RUNTIME_NAMES = ("cudart", "cudart.so.13", "cudart.so.12", "cudart.so.11.0")
_QUERY = "name,compute_cap,driver_version,memory.total"
_DRIVER_FIX = "install the NVIDIA driver for your GPU (optional: avfuse runs on CPU without it)"
_NO_DEVICE = 100  # CUDA_ERROR_NO_DEVICE


def _cuda_version(v: int) -> str:
    """12040 -> "12.4" (CUDA's integer version encoding)."""
    return f"{v // 1000}.{(v % 1000) // 10}"


def _open_first(names: Sequence[str]) -> tuple[ctypes.CDLL | None, str]:
    """The first library of `names` that loads, with its name; (None, why) when none does."""
    why = ""
    for name in names:
        try:
            return ctypes.CDLL(name), name
        except OSError as e:
            why = str(e)
    return None, why


def _loaded_path(fragment: str) -> str | None:
    """Where the loader found a library of ours (Linux: /proc/self/maps), if it says."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            for line in f:
                path = line.rsplit(None, 1)[-1]
                if fragment in path.rsplit("/", 1)[-1]:
                    return path
    except OSError:
        return None
    return None


def check_cuda_driver() -> Check:
    """The NVIDIA driver's CUDA library (libcuda): loads, initialises, and its CUDA version."""
    lib, name = _open_first(_DRIVER_LIBS)
    if lib is None:
        return Check(
            name="CUDA driver", section="gpu", status="absent",
            detail=f"no NVIDIA driver ({_DRIVER_LIBS[0]} not found)", fix=_DRIVER_FIX,
        )  # fmt: skip
    v = ctypes.c_int(0)
    version = _cuda_version(v.value) if lib.cuDriverGetVersion(ctypes.byref(v)) == 0 else None
    rc = int(lib.cuInit(0))
    if rc == 0:
        n = ctypes.c_int(0)
        lib.cuDeviceGetCount(ctypes.byref(n))
        return Check(
            name="CUDA driver", section="gpu", status="pass", version=version,
            detail=f"CUDA {version} driver API, {n.value} device(s) "
            f"({_loaded_path('libcuda') or name})",
        )  # fmt: skip
    msg = ctypes.c_char_p()
    lib.cuGetErrorString(rc, ctypes.byref(msg))
    why = (msg.value or b"").decode(errors="replace") or f"error {rc}"
    if rc == _NO_DEVICE:
        return Check(
            name="CUDA driver", section="gpu", status="absent", version=version,
            detail=f"driver CUDA {version} installed but no GPU visible (cuInit: {why})",
            fix="check that the GPU is plugged in and visible: nvidia-smi -L",
        )  # fmt: skip
    return Check(
        name="CUDA driver", section="gpu", status="fail", version=version,
        detail=f"the driver does not initialise (cuInit {rc}: {why})",
        fix="check `nvidia-smi` and `dmesg | grep -i nvrm`; reinstall the NVIDIA driver "
        "that matches the running kernel",
    )  # fmt: skip


def check_cuda_runtime() -> Check:
    """The CUDA runtime (libcudart) the native TensorRT backend uses, and its version."""
    names = [ctypes.util.find_library(n) or (f"lib{n}" if ".so" in n else None) for n in
             _RUNTIME_NAMES]  # fmt: skip
    lib, name = _open_first([n for n in names if n])
    if lib is None:
        return Check(
            name="CUDA runtime", section="gpu", status="absent",
            detail="libcudart is not on the library path",
            fix="install the CUDA toolkit or pip install nvidia-cuda-runtime-cu12 "
            "(only the native TensorRT backend needs it)",
        )  # fmt: skip
    v = ctypes.c_int(0)
    if lib.cudaRuntimeGetVersion(ctypes.byref(v)) != 0:
        return Check(
            name="CUDA runtime", section="gpu", status="fail",
            detail=f"{name} loads but does not report its version",
            fix="reinstall the CUDA toolkit (the library is damaged or mismatched)",
        )  # fmt: skip
    version = _cuda_version(v.value)
    return Check(
        name="CUDA runtime", section="gpu", status="pass", version=version,
        detail=f"libcudart {version} ({_loaded_path('libcudart') or name})",
    )  # fmt: skip


def check_gpu() -> Check:
    """Each NVIDIA GPU's name, compute capability, driver and memory, from nvidia-smi."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return Check(
            name="GPU", section="gpu", status="absent",
            detail="no NVIDIA GPU (nvidia-smi not found)", fix=_DRIVER_FIX,
        )  # fmt: skip
    fmt = "--format=csv,noheader,nounits"
    res = run_command([smi, f"--query-gpu={_QUERY}", fmt])
    if res.returncode not in (0, None) and "compute_cap" in res.stdout + res.stderr:
        # drivers before 510 do not know the field: ask without it
        res = run_command([smi, "--query-gpu=name,driver_version,memory.total", fmt])
    if res.returncode != 0:
        return Check(
            name="GPU", section="gpu", status="fail",
            detail=f"nvidia-smi failed: {one_line(res.first_line) or 'no output'}",
            fix="the driver is not answering: check `dmesg | grep -i nvrm`, reinstall the "
            "driver or reboot",
        )  # fmt: skip
    gpus = []
    for line in res.stdout.splitlines():
        f = [x.strip() for x in line.split(",")]
        if len(f) == 4:
            gpus.append(f"{f[0]}, compute {f[1]}, driver {f[2]}, {f[3]} MiB")
        elif len(f) == 3:
            gpus.append(f"{f[0]}, compute ?, driver {f[1]}, {f[2]} MiB")
    if not gpus:
        return Check(
            name="GPU", section="gpu", status="absent",
            detail="nvidia-smi lists no GPU", fix="check that the GPU is visible: nvidia-smi -L",
        )  # fmt: skip
    return Check(name="GPU", section="gpu", status="pass", detail="; ".join(gpus))


def check_tensorrt() -> Check:
    """The TensorRT Python package (the native `tensorrt` backend)."""
    fix = "pip install 'avfuse[gpu]' on a machine with an NVIDIA GPU (optional)"
    if importlib.util.find_spec("tensorrt") is None:
        return Check(
            name="TensorRT", section="gpu", status="absent",
            detail="the tensorrt package is not installed", fix=fix,
        )  # fmt: skip
    try:
        import tensorrt as trt
    except Exception as e:  # its own libraries missing: ImportError, OSError
        return Check(
            name="TensorRT", section="gpu", status="fail",
            detail=f"installed but does not import: {one_line(str(e))}",
            fix="reinstall TensorRT for your CUDA version: pip install --force-reinstall "
            "tensorrt-cu12 (or tensorrt-cu13)",
        )  # fmt: skip
    return Check(
        name="TensorRT", section="gpu", status="pass", detail=str(trt.__version__),
        version=str(trt.__version__),
    )  # fmt: skip


def check_torch() -> Check:
    """PyTorch (the `torch` backend and training), and whether its build sees a GPU."""
    if importlib.util.find_spec("torch") is None:
        return Check(
            name="torch", section="gpu", status="absent",
            detail="PyTorch is not installed (needed only for the torch backend and training)",
            fix="pip install 'avfuse[train]'",
        )  # fmt: skip
    try:
        import torch
    except Exception as e:
        return Check(
            name="torch", section="gpu", status="fail",
            detail=f"installed but does not import: {one_line(str(e))}",
            fix="pip install --force-reinstall torch==2.13.0",
        )  # fmt: skip
    cuda = torch.version.cuda
    if cuda is None:
        where = "CPU build"
    elif torch.cuda.is_available():
        where = f"CUDA {cuda} build; GPU: {torch.cuda.get_device_name(0)}"
    else:
        where = f"CUDA {cuda} build; no GPU visible to it"
    return Check(
        name="torch", section="gpu", status="pass", detail=f"{torch.__version__} ({where})",
        version=torch.__version__,
    )  # fmt: skip


__all__ = [
    "check_cuda_driver",
    "check_cuda_runtime",
    "check_gpu",
    "check_tensorrt",
    "check_torch",
]
