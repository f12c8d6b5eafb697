"""Native TensorRT backend: engine built from the ONNX file, cached on disk, CUDA graphs.

Written to the TensorRT 10 Python API (tensor-name I/O, `execute_async_v3`) and the
CUDA runtime (through `avfuse.backends.cudart`); inputs are staged in pinned host
memory, copied asynchronously, and the whole enqueue is captured once into a CUDA
graph per batch size and replayed. Engines are cached under
``<cache>/tensorrt/<key>.engine`` with the key built from the model hash, the GPU's
compute capability, the TensorRT version, the precision and the batch range, so a
changed model or GPU never loads a stale engine.

This path has never run on a GPU in this project (no GPU machine and no TensorRT
wheel are available where it is developed); without TensorRT or a GPU it raises
`BackendUnavailable` naming what to install.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from avfuse.backends import cudart
from avfuse.backends.base import Backend
from avfuse.errors import BackendUnavailable, ModelError
from avfuse.manifest import Manifest, file_sha256


def _trt() -> Any:
    try:
        import tensorrt as trt
    except ImportError as e:
        raise BackendUnavailable(
            "TensorRT is not installed: pip install 'avfuse[gpu]' (needs an NVIDIA GPU and driver)"
        ) from e
    return trt


def engine_cache_dir() -> Path:
    """Where built engines are kept (AVFUSE_CACHE_DIR overrides the user cache folder)."""
    root = os.environ.get("AVFUSE_CACHE_DIR")
    if root:
        return Path(root) / "tensorrt"
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("avfuse")) / "tensorrt"


def engine_key(
    model_sha256: str, *, gpu: str, trt_version: str, precision: str, max_batch: int
) -> str:
    """Cache key of an engine: everything that makes a built engine invalid when it changes."""
    raw = f"{model_sha256}|{gpu}|trt{trt_version}|{precision}|b{max_batch}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


class TensorRTBackend(Backend):
    """`tensorrt`: a TensorRT engine per model, cached on disk.

    Extra options (``BackendOptions.extra``):
        max_batch: largest batch the optimisation profile covers (default 64).
        cuda_graphs: capture and replay the enqueue per batch size (default True).
    """

    name = "tensorrt"

    def _load(self, manifest: Manifest) -> None:
        trt = _trt()
        if not self.options.device.startswith("cuda"):
            raise BackendUnavailable("the tensorrt backend runs on a GPU only: use --device cuda")
        dev = int(self.options.device.split(":")[1]) if ":" in self.options.device else 0
        if cudart.device_count() <= dev:
            raise BackendUnavailable(f"no CUDA device {dev}: nvidia-smi lists the ones present")
        cudart.set_device(dev)
        self._max_batch = int(self.options.extra.get("max_batch", 64))
        self._use_graphs = bool(self.options.extra.get("cuda_graphs", True))
        self._logger = trt.Logger(trt.Logger.WARNING)
        major, minor = ctypes.c_int(), ctypes.c_int()
        lib = cudart._lib()
        lib.cudaDeviceGetAttribute(ctypes.byref(major), 75, dev)  # compute capability major
        lib.cudaDeviceGetAttribute(ctypes.byref(minor), 76, dev)
        gpu = f"sm_{major.value}{minor.value}"
        sha = manifest.sha256 or file_sha256(manifest.model_path)
        key = engine_key(
            sha,
            gpu=gpu,
            trt_version=trt.__version__,
            precision=self.options.precision,
            max_batch=self._max_batch,
        )
        path = engine_cache_dir() / f"{key}.engine"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(self._build(trt, manifest))
        runtime = trt.Runtime(self._logger)
        self._engine = runtime.deserialize_cuda_engine(path.read_bytes())
        if self._engine is None:
            raise ModelError(
                f"TensorRT could not load the cached engine {path}; delete it to rebuild"
            )
        self._ctx = self._engine.create_execution_context()
        self._stream = cudart.stream_create()
        self._buffers: dict[str, tuple[int, int, int]] = {}  # name -> (device, pinned, nbytes)
        self._graphs: dict[int, int] = {}
        self._outputs = [s.name for s in manifest.outputs]

    def _build(self, trt: Any, manifest: Manifest) -> bytes:
        builder = trt.Builder(self._logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse(manifest.model_path.read_bytes()):
            errs = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ModelError(f"TensorRT cannot parse {manifest.model_path.name}: {errs}")
        config = builder.create_builder_config()
        if self.options.precision == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)
        elif self.options.precision == "int8":
            raise BackendUnavailable(
                "int8 TensorRT engines need a calibration cache; build one "
                "with ONNX Runtime int8 instead (--precision int8 --backend "
                "ort)"
            )
        profile = builder.create_optimization_profile()
        for spec in manifest.inputs:
            fixed = [d if isinstance(d, int) else 1 for d in spec.shape]
            opt = [d if isinstance(d, int) else max(1, self._max_batch // 4) for d in spec.shape]
            top = [d if isinstance(d, int) else self._max_batch for d in spec.shape]
            profile.set_shape(spec.name, fixed, opt, top)
        config.add_optimization_profile(profile)
        blob = builder.build_serialized_network(network, config)
        if blob is None:
            raise ModelError("TensorRT failed to build an engine; see the log above")
        return bytes(blob)

    def _buffer(self, name: str, nbytes: int) -> tuple[int, int]:
        have = self._buffers.get(name)
        if have is None or have[2] < nbytes:
            if have is not None:
                cudart.free(have[0])
                cudart.free(have[1], host=True)
            have = (cudart.malloc(nbytes), cudart.malloc_host(nbytes), nbytes)
            self._buffers[name] = have
            self._graphs.clear()  # addresses changed: captured graphs are stale
        return have[0], have[1]

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch = next(iter(feeds.values())).shape[0]
        outs: dict[str, np.ndarray] = {}
        for name, arr in feeds.items():
            a = np.ascontiguousarray(arr)
            dev, pinned = self._buffer(name, a.nbytes)
            ctypes.memmove(pinned, a.ctypes.data, a.nbytes)
            cudart.memcpy_async(dev, pinned, a.nbytes, cudart.MEMCPY_H2D, self._stream)
            self._ctx.set_input_shape(name, a.shape)
            self._ctx.set_tensor_address(name, dev)
        for name in self._outputs:
            shape = tuple(self._ctx.get_tensor_shape(name))
            out = np.empty(shape, dtype=np.float32)
            dev, _ = self._buffer(name, out.nbytes)
            self._ctx.set_tensor_address(name, dev)
            outs[name] = out
        if self._use_graphs:
            exe = self._graphs.get(batch)
            if exe is None:
                self._ctx.execute_async_v3(self._stream)  # first run outside capture
                cudart.graph_capture_begin(self._stream)
                self._ctx.execute_async_v3(self._stream)
                exe = self._graphs[batch] = cudart.graph_capture_end(self._stream)
            cudart.graph_launch(exe, self._stream)
        else:
            self._ctx.execute_async_v3(self._stream)
        for name, out in outs.items():
            dev, pinned = self._buffers[name][:2]
            cudart.memcpy_async(pinned, dev, out.nbytes, cudart.MEMCPY_D2H, self._stream)
        cudart.stream_synchronize(self._stream)
        for name, out in outs.items():
            ctypes.memmove(out.ctypes.data, self._buffers[name][1], out.nbytes)
        return outs

    def _close(self) -> None:
        for exe in self._graphs.values():
            cudart.graph_destroy(exe)
        for dev, pinned, _ in self._buffers.values():
            cudart.free(dev)
            cudart.free(pinned, host=True)
        self._graphs.clear()
        self._buffers.clear()
        cudart.stream_destroy(self._stream)
        self._ctx = None
        self._engine = None
