"""Native TensorRT backend: an engine per model, cached on disk, one copy each way, CUDA graphs.

Written to the TensorRT 10 Python API (tensor-name I/O, `execute_async_v3`) and the CUDA
runtime (through `avfuse.backends.cudart`). Everything is allocated at load, sized for
the largest batch of the optimisation profile: a device buffer per input and output and
a page-locked host buffer per output. A call then copies each input once to the device
(from the caller's array: the engine's feed buffers are page-locked too, `host_buffer`;
a `DeviceTensor` feed is copied device to device, so a captured graph keeps its
addresses), replays the enqueue captured once per batch size as a CUDA graph, and copies
each output once into its host buffer, returned as a view (`reuses_outputs`). `close`
destroys the graphs, the stream and the buffers it made.

Engines (`avfuse.export.trt_build`) are found, in order: `model.engine` beside the model
when its `model.engine.json` records this machine's key (what `avfuse build` writes),
then ``<cache>/tensorrt/<key>.engine``, else built now and cached. The key covers the
model hash, the GPU (name and compute capability), the TensorRT, CUDA runtime and driver
versions, the precision and the profile, so a changed model, GPU or driver never loads
a stale engine.

This path has never run on a GPU in this project (no GPU machine and no TensorRT wheel
where it is developed); without TensorRT or a GPU it raises `BackendUnavailable`
naming what to install.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from avfuse.backends import cudart
from avfuse.backends.base import Backend
from avfuse.backends.device import DeviceTensor
from avfuse.backends.ort import complete_from_graph
from avfuse.backends.providers import cache_root
from avfuse.errors import BackendUnavailable, ModelError, UsageError
from avfuse.export.quantize import has_qdq
from avfuse.export.trt_build import build_engine, build_plan, engine_key, profile_shapes, trt
from avfuse.manifest import Manifest, file_sha256


def engine_cache_dir() -> Path:
    """Where built engines are kept (AVFUSE_CACHE_DIR overrides the user cache folder)."""
    return cache_root() / "tensorrt"


def machine_key(device: int) -> dict[str, Any]:
    """This GPU and its software, as `engine_key` takes them (needs a driver)."""
    return {
        "gpu": cudart.device_name(device),
        "compute_capability": cudart.compute_capability(device),
        "trt_version": trt().__version__,
        "cuda_runtime": cudart.runtime_version(),
        "cuda_driver": cudart.driver_version(),
    }


def key_for(m: Manifest, *, precision: str, max_batch: int, device: int) -> str:
    """The engine cache key of `m` on GPU `device` (refuses int8 without Q/DQ first)."""
    ident = machine_key(device)
    build_plan(precision, ident["trt_version"], qdq=has_qdq(m.model_path))
    profile = profile_shapes(m, max_batch=max_batch)
    return engine_key(
        m.sha256 or file_sha256(m.model_path), precision=precision, profile=profile, **ident
    )


def locate_engine(m: Manifest, *, precision: str, max_batch: int, device: int) -> Path:
    """The engine file for `m` on this GPU (see the module docstring); builds it if none."""
    qdq = has_qdq(m.model_path)
    ident = machine_key(device)
    key = key_for(m, precision=precision, max_batch=max_batch, device=device)
    beside = m.model_path.with_suffix(".engine")
    note = beside.with_suffix(".engine.json")
    if beside.is_file() and note.is_file():
        try:
            if json.loads(note.read_text()).get("key") == key:
                return beside
        except (OSError, ValueError):
            pass  # an unreadable note: use the cache
    cached = engine_cache_dir() / f"{key}.engine"
    if not cached.is_file():
        slug = re.sub(r"[^A-Za-z0-9]+", "-", ident["gpu"]).strip("-")
        timing = engine_cache_dir() / f"timing-{slug}-trt{ident['trt_version']}.cache"
        blob = build_engine(
            m.model_path, m, precision=precision, max_batch=max_batch, timing_cache=timing, qdq=qdq
        )
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(blob)
        tmp.replace(cached)  # another process building the same key meets a whole file
    return cached


class TensorRTBackend(Backend):
    """`tensorrt`: a TensorRT engine per model, cached on disk.

    Extra options (``BackendOptions.extra``):
        max_batch: largest batch the optimisation profile covers (default 64).
        cuda_graphs: capture and replay the enqueue per batch size (default True).
    """

    name = "tensorrt"

    def _load(self, manifest: Manifest) -> None:
        t = trt()
        if not self.options.device.startswith("cuda"):
            raise BackendUnavailable("the tensorrt backend runs on a GPU only: use --device cuda")
        dev = self.options.device_index
        if cudart.device_count() <= dev:
            raise BackendUnavailable(f"no CUDA device {dev}: nvidia-smi lists the ones present")
        cudart.set_device(dev)
        self._max_batch = int(self.options.extra.get("max_batch", 64))
        self._use_graphs = bool(self.options.extra.get("cuda_graphs", True))
        self.manifest = manifest = complete_from_graph(manifest)
        path = locate_engine(
            manifest, precision=self.options.precision, max_batch=self._max_batch, device=dev
        )
        self._stream = 0
        self._device: dict[str, int] = {}
        self._graphs: dict[int, int] = {}
        try:
            self._start(t, manifest, path)
        except BaseException:
            self._close()
            raise
        self.reuses_outputs = True
        self.device_inputs = True

    def _start(self, t: Any, m: Manifest, path: Path) -> None:
        self._runtime = t.Runtime(t.Logger(t.Logger.WARNING))
        self._engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self._engine is None:
            raise ModelError(f"TensorRT could not load the engine {path}; delete it to rebuild")
        self._ctx = self._engine.create_execution_context()
        self._stream = cudart.stream_create()
        top = profile_shapes(m, max_batch=self._max_batch)
        for name, (_, _, hi) in top.items():
            self._ctx.set_input_shape(name, hi)
        self._inputs = list(top)
        self._outputs = [s.name for s in m.outputs]
        self._host: dict[str, np.ndarray] = {}
        for name in [*self._inputs, *self._outputs]:
            shape = tuple(self._ctx.get_tensor_shape(name))
            dtype = np.dtype(t.nptype(self._engine.get_tensor_dtype(name)))
            nbytes = max(1, int(np.prod(shape)) * dtype.itemsize)
            self._device[name] = cudart.malloc(nbytes)
            self._ctx.set_tensor_address(name, self._device[name])
            if name in self._outputs:
                self._host[name] = cudart.host_array((int(np.prod(shape)),), dtype)
        batched = [s for s in m.inputs if s.batch_axis is not None and s.shape]
        self._batch_of = (batched[0].name, batched[0].batch_axis) if batched else None
        self._views: dict[int, dict[str, np.ndarray]] = {}
        self._shaped_for = -1

    def host_buffer(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """Page-locked: the one copy to the GPU is a DMA transfer."""
        return cudart.host_array(shape, dtype)

    def _outputs_for(self, batch: int) -> dict[str, np.ndarray]:
        views = self._views.get(batch)
        if views is None:
            views = {}
            for name in self._outputs:
                shape = tuple(self._ctx.get_tensor_shape(name))
                views[name] = self._host[name][: int(np.prod(shape))].reshape(shape)
            self._views[batch] = views
        return views

    def _infer(self, feeds: dict[str, Any]) -> dict[str, np.ndarray]:
        name0, axis = self._batch_of or (None, 0)
        batch = feeds[name0].shape[axis] if name0 is not None else 1
        if batch > self._max_batch:
            raise UsageError(
                f"batch {batch} exceeds the engine's profile (1..{self._max_batch}); "
                "set extra max_batch higher and rebuild"
            )
        if batch != self._shaped_for:
            for name in self._inputs:
                self._ctx.set_input_shape(name, tuple(feeds[name].shape))
            self._shaped_for = batch
        for name in self._inputs:
            v = feeds[name]
            if isinstance(v, DeviceTensor):
                src, nbytes, kind = v.ptr, v.nbytes, cudart.MEMCPY_D2D
            else:
                a = v if v.flags.c_contiguous else np.ascontiguousarray(v)
                src, nbytes, kind = a.__array_interface__["data"][0], a.nbytes, cudart.MEMCPY_H2D
            cudart.memcpy_async(self._device[name], src, nbytes, kind, self._stream)
        if self._use_graphs:
            exe = self._graphs.get(batch)
            if exe is None:
                self._ctx.execute_async_v3(self._stream)  # the first run outside capture
                cudart.graph_capture_begin(self._stream)
                self._ctx.execute_async_v3(self._stream)
                exe = self._graphs[batch] = cudart.graph_capture_end(self._stream)
            cudart.graph_launch(exe, self._stream)
        else:
            self._ctx.execute_async_v3(self._stream)
        outs = self._outputs_for(batch)
        for name, out in outs.items():
            cudart.memcpy_async(
                out.__array_interface__["data"][0],
                self._device[name],
                out.nbytes,
                cudart.MEMCPY_D2H,
                self._stream,
            )
        cudart.stream_synchronize(self._stream)
        return outs

    def _close(self) -> None:
        for exe in getattr(self, "_graphs", {}).values():
            cudart.graph_destroy(exe)
        for ptr in getattr(self, "_device", {}).values():
            cudart.free(ptr)
        if getattr(self, "_stream", 0):
            cudart.stream_destroy(self._stream)
        self._graphs, self._device, self._stream = {}, {}, 0
        # page-locked outputs are freed when the last view of them goes (cudart.host_array)
        self._host, self._views = {}, {}
        self._ctx = None  # context, then engine, then runtime: TensorRT's teardown order
        self._engine = None
        self._runtime = None
