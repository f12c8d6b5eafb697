"""`avfuse doctor`: what to run first on a new machine.

    from avfuse.doctor import run_doctor
    report = run_doctor(quick=True)
    print(report.table())          # or report.to_json()
    raise SystemExit(report.exit_status)

It checks the software avfuse needs (Python, numpy, ONNX Runtime and its providers,
PyAV, OpenCV, FFmpeg), the GPU side (NVIDIA driver, CUDA runtime, GPU name and compute
capability, TensorRT, torch), the capture side (PortAudio, microphones, cameras) and the
model; then every backend present runs the model on bundled samples against the CPU
reference and is timed (`avfuse.doctor.backends`). Each row is a `Check`; a failed row
carries its fix. Nothing is installed or downloaded, and every probe is bounded in time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from avfuse.doctor import checks, gpu
from avfuse.doctor.backends import backend_rows
from avfuse.doctor.base import Check, Measure, bounded
from avfuse.doctor.report import SCHEMA_VERSION, DoctorReport, doctor_schema

#: batch-1 calls timed per backend (and with --quick)
LATENCY_CALLS = 200
QUICK_LATENCY_CALLS = 30


@dataclass(frozen=True)
class _Probe:
    fn: Callable[[], Check]
    name: str
    section: str
    timeout_s: float
    fix: str


_SLOW_DRIVER = "the NVIDIA driver is not answering: check `dmesg | grep -i nvrm`, or reboot"
_SLOW_IMPORT = "the package hangs on import: reinstall it"

#: the environment checks, in table order
PROBES: tuple[_Probe, ...] = (
    _Probe(checks.check_python, "Python", "software", 5, _SLOW_IMPORT),
    _Probe(checks.check_avfuse, "avfuse", "software", 5, _SLOW_IMPORT),
    _Probe(checks.check_numpy, "numpy", "software", 15, _SLOW_IMPORT),
    _Probe(checks.check_onnxruntime, "ONNX Runtime", "software", 15, _SLOW_IMPORT),
    _Probe(gpu.check_cuda_driver, "CUDA driver", "gpu", 15, _SLOW_DRIVER),
    _Probe(gpu.check_cuda_runtime, "CUDA runtime", "gpu", 15, _SLOW_DRIVER),
    _Probe(gpu.check_gpu, "GPU", "gpu", 25, _SLOW_DRIVER),
    _Probe(gpu.check_tensorrt, "TensorRT", "gpu", 30, _SLOW_IMPORT),
    _Probe(gpu.check_torch, "torch", "gpu", 60, _SLOW_IMPORT),
    _Probe(checks.check_ffmpeg, "FFmpeg", "media", 15, "reinstall it: apt-get install ffmpeg"),
    _Probe(checks.check_pyav, "PyAV", "media", 15, _SLOW_IMPORT),
    _Probe(checks.check_opencv, "OpenCV", "media", 15, _SLOW_IMPORT),
    _Probe(checks.check_portaudio, "PortAudio", "media", 15,
           "the sound system is not answering: restart the sound server"),
    _Probe(checks.check_microphones, "microphones", "media", 15,
           "the sound system is not answering: restart the sound server"),
    _Probe(checks.check_cameras, "cameras", "media", 30,
           "a camera does not answer: unplug and replug it"),
)  # fmt: skip


def run_doctor(*, model: str | Path | None = None, quick: bool = False) -> DoctorReport:
    """Run every check and return the report (it never raises for what it finds).

    Args:
        model: model folder, manifest or ONNX file to check the backends with (default:
            the bundled model).
        quick: time fewer calls per backend (`QUICK_LATENCY_CALLS`).
    """
    import avfuse
    from avfuse.assets import default_model_path

    t0 = time.monotonic()
    created = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    path = Path(model) if model is not None else default_model_path()
    rows = [
        bounded(p.fn, name=p.name, section=p.section, timeout_s=p.timeout_s, fix=p.fix)
        for p in PROBES
    ]
    rows.append(checks.check_model(path))
    env = {r.name: r for r in rows}
    calls = QUICK_LATENCY_CALLS if quick else LATENCY_CALLS
    rows += backend_rows(path, env=env, calls=calls)
    return DoctorReport(
        checks=tuple(rows), avfuse=avfuse.__version__, model=str(path.resolve()), quick=quick,
        created=created, elapsed_s=time.monotonic() - t0,
    )  # fmt: skip


__all__ = [
    "LATENCY_CALLS",
    "QUICK_LATENCY_CALLS",
    "SCHEMA_VERSION",
    "Check",
    "DoctorReport",
    "Measure",
    "doctor_schema",
    "run_doctor",
]
