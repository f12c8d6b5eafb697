"""Which backend, device, provider and precision a run uses: contradictions refused once.

`choose(backend, device=, provider=, precision=)` is what `avfuse run/bench` and the
Python API call before loading anything. It fills what was left out (a provider that
needs a GPU implies `cuda`), refuses what contradicts itself with one line naming both
settings (`--provider cpu --device cuda`), and resolves `backend="auto"` to the best
runtime present here, saying which and why:

    GPU (device cuda, or not given and a GPU present): native TensorRT, else ONNX
        Runtime's TensorRT provider, else its CUDA provider
    CPU: ONNX Runtime's CPU provider

Probes are cheap and import nothing heavy: `importlib.util.find_spec` for packages,
`nvidia-smi -L` for a GPU, `onnxruntime.get_available_providers()` for providers.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache

from avfuse.backends.base import PROVIDERS
from avfuse.errors import BackendUnavailable, UsageError

#: ONNX Runtime's class names of the providers
EP_NAMES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
PRECISIONS = ("fp32", "fp16", "int8")
#: how to get each missing piece
GPU_INSTALL = "pip uninstall -y onnxruntime && pip install onnxruntime-gpu"
TRT_INSTALL = "pip install 'avfuse[gpu]'"


@dataclass(frozen=True, kw_only=True)
class Choice:
    """Settled backend settings.

    Attributes:
        backend: registry name ("ort", "tensorrt", "torch"), or "triton:URL".
        device: "cpu" or "cuda[:N]".
        provider: ONNX Runtime provider short name (ort only; None elsewhere).
        precision: "fp32", "fp16" or "int8".
        reason: for backend "auto", the one line saying what was picked and why.
    """

    backend: str
    device: str
    provider: str | None
    precision: str
    reason: str | None = None


@lru_cache(maxsize=1)
def gpu_names() -> tuple[str, ...]:
    """The GPUs `nvidia-smi -L` lists (empty without a driver)."""
    if shutil.which("nvidia-smi") is None:
        return ()
    try:
        r = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ()
    if r.returncode:
        return ()
    return tuple(ln.strip() for ln in r.stdout.splitlines() if ln.strip())


def ort_providers() -> list[str]:
    """ONNX Runtime's providers compiled into the installed wheel."""
    import onnxruntime as ort

    return list(ort.get_available_providers())


def have_tensorrt() -> bool:
    """Whether the tensorrt package is importable (not imported here)."""
    return importlib.util.find_spec("tensorrt") is not None


def _is_gpu(device: str) -> bool:
    return device.startswith("cuda")


def _auto(device: str | None, provider: str | None, precision: str) -> Choice:
    gpu = gpu_names()
    want_gpu = _is_gpu(device) if device is not None else bool(gpu)
    if not want_gpu:
        why = "auto: ONNX Runtime on the CPU (no GPU asked for or found)"
        return Choice(backend="ort", device="cpu", provider="cpu", precision=precision, reason=why)
    dev = device or "cuda"
    if not gpu:
        raise BackendUnavailable(
            f"--backend auto --device {dev}: no NVIDIA GPU here (nvidia-smi lists none); "
            "check the driver or use --device cpu"
        )
    eps = ort_providers()
    if have_tensorrt() and provider in (None, "tensorrt"):
        if provider is None:
            return Choice(
                backend="tensorrt",
                device=dev,
                provider=None,
                precision=precision,
                reason=f"auto: native TensorRT on {dev} ({gpu[0]})",
            )
        if EP_NAMES["tensorrt"] in eps:
            return Choice(
                backend="ort",
                device=dev,
                provider="tensorrt",
                precision=precision,
                reason=f"auto: ONNX Runtime's TensorRT provider on {dev}",
            )
    if EP_NAMES["cuda"] in eps and provider in (None, "cuda"):
        return Choice(
            backend="ort",
            device=dev,
            provider="cuda",
            precision=precision,
            reason=f"auto: ONNX Runtime's CUDA provider on {dev} ({gpu[0]}); "
            f"TensorRT is not installed ({TRT_INSTALL})",
        )
    raise BackendUnavailable(
        f"--backend auto --device {dev}: a GPU is here but no runtime for it: onnxruntime "
        f"has {', '.join(eps)}, and tensorrt is {'present' if have_tensorrt() else 'absent'}; "
        f"{GPU_INSTALL}"
    )


def _triton(backend: str, device: str | None, precision: str) -> Choice:
    """A Triton server runs the model its repository holds, on the devices its
    instance_group names: the client sets neither."""
    if device is not None and _is_gpu(device):
        raise UsageError(
            f"--backend triton --device {device}: the Triton server decides devices "
            "(`avfuse export --triton --gpu`): drop --device"
        )
    if precision != "fp32":
        raise UsageError(
            f"--backend triton --precision {precision}: the server runs the model its "
            "repository holds (export it at that precision): drop --precision"
        )
    return Choice(backend=backend, device="cpu", provider=None, precision=precision)


def choose(
    backend: str = "ort",
    *,
    device: str | None = None,
    provider: str | None = None,
    precision: str = "fp32",
) -> Choice:
    """Settle the backend settings (see the module docstring).

    Raises:
        UsageError: settings that contradict each other, or an unknown name.
        BackendUnavailable: `auto` found nothing that runs on the device asked for.
    """
    if provider is not None and provider not in PROVIDERS:
        raise UsageError(f"unknown provider {provider!r}; use one of {', '.join(PROVIDERS)}")
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    base = backend.partition(":")[0]  # "triton:URL" names its server
    if provider is not None and base not in ("ort", "auto"):
        raise UsageError(f"--provider applies to --backend ort only, not {base}: drop it")
    if base == "triton":
        return _triton(backend, device, precision)
    if provider == "cpu" and device is not None and _is_gpu(device):
        raise UsageError(
            f"--provider cpu contradicts --device {device}: use --provider cuda or tensorrt "
            "for the GPU, or drop --device"
        )
    if provider in ("cuda", "tensorrt") and device == "cpu":
        raise UsageError(
            f"--provider {provider} runs on the GPU but --device is cpu: use --device cuda[:N] "
            "or drop --device"
        )
    if backend == "tensorrt" and device == "cpu":
        raise UsageError("--backend tensorrt runs on the GPU only: use --device cuda[:N]")
    if backend == "auto":
        return _auto(device, provider, precision)
    gpu_side = provider in ("cuda", "tensorrt") or backend == "tensorrt"
    dev = device or ("cuda" if gpu_side else "cpu")
    if backend == "ort":
        provider = provider or ("cuda" if _is_gpu(dev) else "cpu")
        if precision != "fp32" and provider != "tensorrt":
            raise UsageError(
                f"--precision {precision}: the {provider} provider runs the model in the "
                "precision it was saved in; for int8 quantise it first (`avfuse build MODEL "
                "--precision int8 --onnx-only`, then --model that folder), or use "
                "--provider tensorrt"
            )
    elif backend == "torch" and precision != "fp32":
        raise UsageError(f"--precision {precision}: the torch backend runs fp32 only")
    return Choice(backend=backend, device=dev, provider=provider, precision=precision)


__all__ = ["EP_NAMES", "PRECISIONS", "Choice", "choose", "gpu_names", "have_tensorrt"]
