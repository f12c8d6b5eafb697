"""Backends by name, loaded lazily so the runtime imports no torch, TensorRT or CUDA.

from avfuse.backends import create_backend
with create_backend("ort", threads=1).load(manifest) as be:
    out = be.infer(feeds)
"""

from __future__ import annotations

import importlib
from typing import Any

from avfuse.backends.base import Backend, BackendOptions
from avfuse.errors import UsageError

#: name -> (module, class, install hint)
REGISTRY: dict[str, tuple[str, str, str]] = {
    "ort": ("avfuse.backends.ort", "OnnxRuntimeBackend", "pip install onnxruntime"),
    "torch": ("avfuse.backends.torch_backend", "TorchBackend", "pip install 'avfuse[train]'"),
    "tensorrt": ("avfuse.backends.tensorrt", "TensorRTBackend", "pip install 'avfuse[gpu]'"),
    "triton": ("avfuse.backends.triton", "TritonBackend", "pip install 'avfuse[triton]'"),
}
#: backends whose spec may name a server: "triton:grpc://HOST:PORT?OPTIONS"
TAKES_URL = ("triton",)


def available_backends() -> list[str]:
    """Names accepted by `create_backend`."""
    return sorted(REGISTRY)


def backend_class(name: str) -> type[Backend]:
    """The Backend subclass registered as `name` (imports its module now)."""
    if name not in REGISTRY:
        raise UsageError(f"unknown backend {name!r}; choose one of {available_backends()}")
    module, cls, _ = REGISTRY[name]
    return getattr(importlib.import_module(module), cls)


def create_backend(name: str, **options: Any) -> Backend:
    """Instantiate a backend by name with `BackendOptions` fields as keywords.

    `name` may carry a server URL for a remote backend ("triton:grpc://HOST:8001"), which
    becomes ``extra["url"]``; this is how a command line's `--triton-url` reaches it.
    """
    extra = dict(options.pop("extra", {}) or {})
    base, sep, url = name.partition(":")
    if sep:
        if base not in TAKES_URL:
            raise UsageError(f"backend {base!r} takes no server URL (got {name!r})")
        if "url" in extra:
            raise UsageError(f"the {base} server URL is given twice ({url!r} and {extra['url']!r})")
        extra["url"] = url
    return backend_class(base)(options=BackendOptions(extra=extra, **options))


__all__ = ["Backend", "BackendOptions", "available_backends", "backend_class", "create_backend"]
