"""ONNX Runtime execution providers: the list and option dicts a session is made with, and
what is missing where one cannot run.

Option names are ONNX Runtime's own (tests/backends/test_providers.py pins them against
the names its documentation and provider sources list); values are strings, as the
Python API passes them through:

    CUDA      device_id, cudnn_conv_algo_search, do_copy_in_default_stream
    TensorRT  device_id, trt_fp16_enable, trt_int8_enable, trt_engine_cache_enable,
              trt_engine_cache_path, trt_timing_cache_enable, trt_timing_cache_path,
              trt_profile_min_shapes / _opt_shapes / _max_shapes

The TensorRT provider is given explicit optimisation profiles (batch 1 .. the largest
batch of the run) so that it builds one engine up front instead of a new one at every
batch size it meets mid-stream, and caches engines and timings on disk under the
avfuse cache folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from avfuse.backends.select import EP_NAMES, GPU_INSTALL, TRT_INSTALL, gpu_names, have_tensorrt
from avfuse.errors import BackendUnavailable, UsageError
from avfuse.manifest import Manifest


def cache_root() -> Path:
    """avfuse's cache folder (AVFUSE_CACHE_DIR overrides the user cache folder)."""
    root = os.environ.get("AVFUSE_CACHE_DIR")
    if root:
        return Path(root)
    try:
        from platformdirs import user_cache_dir
    except ImportError:  # platformdirs comes with the gpu extra; fall back to XDG
        return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "avfuse"
    return Path(user_cache_dir("avfuse"))


def cuda_options(device_id: int) -> dict[str, str]:
    """CUDA provider options.

    HEURISTIC convolution search: the exhaustive default times every cuDNN algorithm at
    each new input shape, which stalls a live stream the first time a batch size occurs.
    """
    return {
        "device_id": str(device_id),
        "cudnn_conv_algo_search": "HEURISTIC",
        "do_copy_in_default_stream": "1",
    }


def _shapes(manifest: Manifest, batch: int) -> str:
    """`name:dim1xdim2,...` of every fed input at batch size `batch` (the profile syntax)."""
    parts = []
    for s in manifest.inputs:
        if not s.shape:
            continue
        dims = []
        for axis, d in enumerate(s.shape):
            if isinstance(d, int):
                dims.append(d)
            elif axis == (s.batch_axis if s.batch_axis is not None else -1):
                dims.append(batch)
            else:
                raise UsageError(
                    f"input {s.name!r} has a dynamic dim {axis} ({d!r}) that is not its batch "
                    "axis: the TensorRT provider needs its range; export the model with a "
                    "fixed size there or use --provider cuda"
                )
        parts.append(f"{s.name}:{'x'.join(str(x) for x in dims)}")
    return ",".join(parts)


def tensorrt_options(
    device_id: int, manifest: Manifest, *, precision: str, max_batch: int, cache: Path
) -> dict[str, str]:
    """TensorRT provider options: precision, on-disk caches, one profile 1..max_batch."""
    opts = {
        "device_id": str(device_id),
        "trt_fp16_enable": "1" if precision == "fp16" else "0",
        "trt_int8_enable": "1" if precision == "int8" else "0",
        "trt_engine_cache_enable": "1",
        "trt_engine_cache_path": str(cache / "ort-tensorrt"),
        "trt_timing_cache_enable": "1",
        "trt_timing_cache_path": str(cache / "ort-tensorrt"),
    }
    dynamic = any(not isinstance(d, int) for s in manifest.inputs if s.shape for d in s.shape)
    if dynamic:
        opts["trt_profile_min_shapes"] = _shapes(manifest, 1)
        opts["trt_profile_opt_shapes"] = _shapes(manifest, max(1, min(8, max_batch)))
        opts["trt_profile_max_shapes"] = _shapes(manifest, max_batch)
    return opts


def session_providers(
    provider: str,
    *,
    device_id: int,
    manifest: Manifest,
    precision: str = "fp32",
    max_batch: int = 64,
    available: list[str],
) -> list[tuple[str, dict[str, str]]]:
    """The `providers=` list of an InferenceSession for `provider`, checked against the
    providers this onnxruntime has (`available`); raises with what is missing."""
    if EP_NAMES[provider] not in available:
        raise BackendUnavailable(missing_provider(provider, available))
    if provider == "cpu":
        return [(EP_NAMES["cpu"], {})]
    if not gpu_names():
        raise BackendUnavailable(
            f"the {provider} provider needs an NVIDIA GPU and driver, and nvidia-smi lists "
            "none here: check the driver or use --provider cpu"
        )
    cuda = (EP_NAMES["cuda"], cuda_options(device_id))
    if provider == "cuda":
        return [cuda, (EP_NAMES["cpu"], {})]
    if not have_tensorrt():
        raise BackendUnavailable(f"the tensorrt provider needs TensorRT's libraries: {TRT_INSTALL}")
    cache = cache_root()
    trt = tensorrt_options(
        device_id, manifest, precision=precision, max_batch=max_batch, cache=cache
    )
    (cache / "ort-tensorrt").mkdir(parents=True, exist_ok=True)
    return [(EP_NAMES["tensorrt"], trt), cuda, (EP_NAMES["cpu"], {})]


def missing_provider(provider: str, available: list[str]) -> str:
    """Why `provider` is not in this onnxruntime, and the install that adds it."""
    import onnxruntime as ort

    have = ", ".join(p.removesuffix("ExecutionProvider") for p in available)
    return (
        f"the {provider} provider is not in onnxruntime {ort.__version__} (it has {have}): "
        f"{GPU_INSTALL}"
    )


def first_provider(session: Any) -> str:
    """The short name of the provider a session runs on first."""
    names = {v: k for k, v in EP_NAMES.items()}
    return names.get(session.get_providers()[0], session.get_providers()[0])


__all__ = [
    "cache_root",
    "cuda_options",
    "first_provider",
    "missing_provider",
    "session_providers",
    "tensorrt_options",
]
