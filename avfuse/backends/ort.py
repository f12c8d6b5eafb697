"""ONNX Runtime backend: CPU, and the CUDA / TensorRT execution providers where installed.

Session options come from `BackendOptions` (threads, graph optimisation level).
On CPU, feeds are passed straight to `InferenceSession.run` (IO binding saves
nothing there: the arrays are already in host memory). On CUDA, IO binding keeps
outputs on the device between calls; that path has never run on a GPU here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from avfuse.backends.base import Backend
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


class OnnxRuntimeBackend(Backend):
    """`ort`: ONNX Runtime InferenceSession with the provider picked from the device.

    Extra options (``BackendOptions.extra``):
        provider: force an execution provider ("CPUExecutionProvider",
            "CUDAExecutionProvider", "TensorrtExecutionProvider").
        inter_threads: inter-op threads (default 1: the graphs here are sequential).
        spin: let idle worker threads spin (default False: they sleep; spinning shaves
            microseconds off back-to-back calls and costs a core on a live stream).
    """

    name = "ort"

    def _providers(self, ort: Any) -> list[str]:
        forced = self.options.extra.get("provider")
        available = ort.get_available_providers()
        if forced:
            if forced not in available:
                raise BackendUnavailable(
                    f"ONNX Runtime provider {forced} is not available (have {available}); "
                    "for CUDA/TensorRT: pip install onnxruntime-gpu"
                )
            return [forced]
        if self.options.device.startswith("cuda"):
            if "CUDAExecutionProvider" not in available:
                raise BackendUnavailable(
                    f"device {self.options.device} needs onnxruntime-gpu (have {available}): "
                    "pip uninstall onnxruntime && pip install onnxruntime-gpu"
                )
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        return ["CPUExecutionProvider"]

    def _load(self, manifest: Manifest) -> None:
        ort = _ort()
        so = ort.SessionOptions()
        so.graph_optimization_level = getattr(
            ort.GraphOptimizationLevel, _OPT_LEVELS[self.options.optimization]
        )
        so.intra_op_num_threads = self.options.threads
        so.inter_op_num_threads = int(self.options.extra.get("inter_threads", 1))
        # idle worker threads sleep instead of spinning: a live stream calls the model
        # every 33 ms, and spinning between calls burnt most of a core for nothing
        spin = "1" if self.options.extra.get("spin", False) else "0"
        so.add_session_config_entry("session.intra_op.allow_spinning", spin)
        so.add_session_config_entry("session.inter_op.allow_spinning", spin)
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                str(manifest.model_path), sess_options=so, providers=self._providers(ort)
            )
        except BackendUnavailable:
            raise
        except Exception as e:
            raise ModelError(
                f"ONNX Runtime cannot load {manifest.model_path.name}: "
                f"{str(e).splitlines()[0]}; the file is corrupt or not an ONNX "
                "model: re-export it"
            ) from e
        self.manifest = resolve(
            manifest,
            {i.name: (_dims(i.shape), ORT_TYPES.get(i.type)) for i in self._session.get_inputs()},
            {o.name: (_dims(o.shape), ORT_TYPES.get(o.type)) for o in self._session.get_outputs()},
        )
        # fetch what the manifest describes (a graph may have outputs nobody reads)
        self._output_names = [o.name for o in self.manifest.outputs]
        self._device = self.options.device
        self._binding = None
        if self._device.startswith("cuda"):
            self._binding = self._session.io_binding()

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._binding is None:
            outs = self._session.run(self._output_names, feeds)
            return dict(zip(self._output_names, outs, strict=True))
        b = self._binding
        b.clear_binding_inputs()
        b.clear_binding_outputs()
        dev_id = int(self._device.split(":")[1]) if ":" in self._device else 0
        for k, v in feeds.items():
            b.bind_cpu_input(k, np.ascontiguousarray(v))
        for n in self._output_names:
            b.bind_output(n, "cuda", dev_id)
        self._session.run_with_iobinding(b)
        outs = b.copy_outputs_to_cpu()
        return dict(zip(self._output_names, outs, strict=True))

    def _close(self) -> None:
        self._session = None
        self._binding = None

    @property
    def providers(self) -> list[str]:
        """The execution providers the session actually uses."""
        return list(self._session.get_providers())
