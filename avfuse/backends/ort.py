"""ONNX Runtime backend: the CPU provider, and the CUDA / TensorRT providers where installed.

Session options come from `BackendOptions` (threads, graph optimisation level); the
provider from `BackendOptions.provider` ("cpu", "cuda", "tensorrt"; by default the one
the device implies), with the options in `avfuse.backends.providers`. A provider that
cannot start raises `BackendUnavailable` naming the package, driver or device it lacks,
and a session that ONNX Runtime quietly moved to another provider is refused the same
way, never run on the wrong one.

Calls go through IO binding (`avfuse.backends.ort_binding`): outputs land in buffers
bound once per batch size, inputs are bound by address and rebound only when it
changes; on a GPU provider host feeds and outputs live in page-locked memory (one copy
each way) and device feeds (`DeviceTensor`, e.g. written by the CUDA pre-processing
kernels) are read where they are. benchmarks/ort_binding.py measures it against plain
`InferenceSession.run`; the CUDA and TensorRT paths have never run on a GPU here.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from avfuse.backends.base import Backend
from avfuse.backends.ort_binding import IoBinder
from avfuse.backends.providers import first_provider, session_providers
from avfuse.errors import BackendUnavailable, ModelError
from avfuse.manifest import ORT_TYPES, Manifest, resolve

_OPT_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


def _ort() -> Any:
    try:
        import onnxruntime as ort
    except ImportError as e:  # pragma: no cover - a core dependency
        raise BackendUnavailable("onnxruntime is not installed: pip install onnxruntime") from e
    return ort


def _dims(shape: list[Any]) -> tuple[Any, ...]:
    return tuple(d if isinstance(d, int) and d > 0 else None for d in shape)


def _resolved(manifest: Manifest, session: Any) -> Manifest:
    return resolve(
        manifest,
        {i.name: (_dims(i.shape), ORT_TYPES.get(i.type)) for i in session.get_inputs()},
        {o.name: (_dims(o.shape), ORT_TYPES.get(o.type)) for o in session.get_outputs()},
    )


def complete_from_graph(manifest: Manifest) -> Manifest:
    """The manifest with what it leaves out (shapes, dtypes) read from its ONNX graph,
    through a CPU session: for runtimes that do not read the graph themselves (TensorRT's
    optimisation profile needs every input's shape)."""
    ort = _ort()
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    try:
        session = ort.InferenceSession(
            str(manifest.model_path), sess_options=so, providers=["CPUExecutionProvider"]
        )
    except Exception as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ModelError(
            f"cannot read the graph of {manifest.model_path.name}: {first}; re-export it"
        ) from e
    return _resolved(manifest, session)


def auto_threads() -> int:
    """Intra-op threads when none are asked for: half the usable cores, 1 to 4.

    ONNX Runtime's own default (one per physical core) leaves no core to the capture,
    decode and pipeline threads, and at batch 1 a small model gains nothing from more:
    measured on 2 cores (benchmarks/cpu_usage.json), one thread ran a 30 fps stream with
    less CPU and 8 streams at full speed faster than two.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(4, cores // 2))


class OnnxRuntimeBackend(Backend):
    """`ort`: an ONNX Runtime InferenceSession on the CPU, CUDA or TensorRT provider.

    Extra options (``BackendOptions.extra``):
        io_binding: run through IO binding (default True; False: `InferenceSession.run`,
            which allocates the outputs of every call).
        max_batch: largest batch the TensorRT provider's optimisation profile covers
            (default 64).
        inter_threads: inter-op threads (default 1: the graphs here are sequential).
        spin: let idle worker threads spin (default False: they sleep; spinning shaves
            microseconds off back-to-back calls and costs a core on a live stream).
    """

    name = "ort"

    def _load(self, manifest: Manifest) -> None:
        ort = _ort()
        opts = self.options
        provider = opts.provider or ("cuda" if opts.device.startswith("cuda") else "cpu")
        if provider != "cpu" and not opts.device.startswith("cuda"):
            raise BackendUnavailable(f"the {provider} provider needs --device cuda[:N]")
        providers = session_providers(
            provider,
            device_id=opts.device_index,
            manifest=manifest,
            precision=opts.precision,
            max_batch=int(opts.extra.get("max_batch", 64)),
            available=ort.get_available_providers(),
        )
        so = ort.SessionOptions()
        so.graph_optimization_level = getattr(
            ort.GraphOptimizationLevel, _OPT_LEVELS[opts.optimization]
        )
        so.intra_op_num_threads = opts.threads or auto_threads()
        so.inter_op_num_threads = int(opts.extra.get("inter_threads", 1))
        # idle worker threads sleep instead of spinning: a live stream calls the model
        # every 33 ms, and spinning between calls burnt most of a core for nothing
        spin = "1" if opts.extra.get("spin", False) else "0"
        so.add_session_config_entry("session.intra_op.allow_spinning", spin)
        so.add_session_config_entry("session.inter_op.allow_spinning", spin)
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                str(manifest.model_path), sess_options=so, providers=providers
            )
        except Exception as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            if provider != "cpu":
                raise BackendUnavailable(
                    f"ONNX Runtime could not start the {provider} provider: {first}; check "
                    "the CUDA, cuDNN and TensorRT versions this onnxruntime-gpu is built for"
                ) from e
            raise ModelError(
                f"ONNX Runtime cannot load {manifest.model_path.name}: {first}; the file is "
                "corrupt or not an ONNX model: re-export it"
            ) from e
        started = first_provider(self._session)
        if started != provider:
            self._session = None
            raise BackendUnavailable(
                f"asked for the {provider} provider but ONNX Runtime started {started} "
                f"(it could not load {provider}'s libraries); check the CUDA/TensorRT install"
            )
        self.manifest = _resolved(manifest, self._session)
        # fetch what the manifest describes (a graph may have outputs nobody reads)
        self._output_names = [o.name for o in self.manifest.outputs]
        self.provider = provider
        self._gpu = provider != "cpu"
        self._binder: IoBinder | None = None
        if opts.extra.get("io_binding", True):
            self._binder = IoBinder(
                self._session,
                self._output_names,
                device_id=opts.device_index,
                alloc=self.host_buffer if self._gpu else None,
            )
        self.reuses_outputs = self._binder is not None
        self.device_inputs = self._gpu and self._binder is not None

    def _infer(self, feeds: dict[str, Any]) -> dict[str, np.ndarray]:
        if self._binder is not None:
            return self._binder.run(feeds)
        outs = self._session.run(self._output_names, feeds)
        return dict(zip(self._output_names, outs, strict=True))

    def host_buffer(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """Page-locked memory on the GPU providers (where the CUDA runtime loads)."""
        if not getattr(self, "_gpu", False):
            return super().host_buffer(shape, dtype)
        from avfuse.backends import cudart

        try:
            return cudart.host_array(shape, dtype)
        except BackendUnavailable:  # onnxruntime-gpu found its CUDA; ctypes did not
            return super().host_buffer(shape, dtype)

    def _close(self) -> None:
        if self._binder is not None:
            self._binder.close()
        self._binder = None
        self._session = None

    @property
    def providers(self) -> list[str]:
        """The execution providers the session actually uses."""
        return list(self._session.get_providers())
