"""The GPU rows: absent with the reason on a machine without a GPU, the GPU's own figures
where one exists (both read independently of the doctor's code)."""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import shutil
import subprocess

import pytest

from tests.doctor.conftest import DoctorRun

GPU_BACKENDS = ("ONNX Runtime CUDA EP", "ONNX Runtime TensorRT EP", "TensorRT engine", "torch CUDA")


def _has_libcuda() -> bool:
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has nvidia-smi")
@pytest.mark.timeout(120)
def test_without_a_gpu_the_gpu_rows_are_absent_with_the_reason(doctor_json: DoctorRun) -> None:
    gpu = doctor_json.row("GPU")
    assert gpu["status"] == "absent"
    assert gpu["detail"] == "no NVIDIA GPU (nvidia-smi not found)" and gpu["fix"]
    if not _has_libcuda():
        drv = doctor_json.row("CUDA driver")
        assert drv["status"] == "absent"
        assert drv["detail"] == "no NVIDIA driver (libcuda.so.1 not found)"
    if importlib.util.find_spec("tensorrt") is None:
        trt = doctor_json.row("TensorRT")
        assert trt["status"] == "absent" and "not installed" in trt["detail"]
    for name in GPU_BACKENDS:
        row = doctor_json.row(name)
        assert row["status"] == "absent", row
        assert "no NVIDIA GPU here" in row["detail"] and row["fix"]
        assert row["measure"] is None
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        row = doctor_json.row("ONNX Runtime CUDA EP")
        assert "has no CUDAExecutionProvider" in row["detail"]
        assert "onnxruntime-gpu" in row["fix"]
    assert doctor_json.returncode == 0 or any(
        c["status"] == "fail" and c["section"] != "gpu" for c in doctor_json.report["checks"]
    )  # an absent GPU never fails the run


@pytest.mark.timeout(120)
def test_the_cuda_runtime_row_matches_the_libcudart_on_the_library_path(
    doctor_json: DoctorRun,
) -> None:
    row = doctor_json.row("CUDA runtime")
    name = ctypes.util.find_library("cudart")
    if name is None:
        assert row["status"] == "absent" and "libcudart" in row["detail"]
        return
    v = ctypes.c_int(0)
    assert ctypes.CDLL(name).cudaRuntimeGetVersion(ctypes.byref(v)) == 0
    assert row["status"] == "pass"
    assert row["version"] == f"{v.value // 1000}.{(v.value % 1000) // 10}"


@pytest.mark.gpu
@pytest.mark.timeout(300)
def test_with_a_gpu_the_row_names_it_and_its_compute_capability(doctor_json: DoctorRun) -> None:
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    row = doctor_json.row("GPU")
    assert row["status"] == "pass", row
    for line in out.stdout.splitlines():
        name, cap = (x.strip() for x in line.split(","))
        assert f"{name}, compute {cap}" in row["detail"]
    assert doctor_json.row("CUDA driver")["status"] == "pass"
