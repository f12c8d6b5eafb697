"""Triton Python-backend model: ONNX Runtime inside the server's Python stub.

`avfuse export --triton` copies this file as ``<model>/1/model.py`` beside
``model.onnx``, for servers whose only backend is `python` (the `tritonserver` that the
nvidia-pytriton wheel ships). It needs only numpy and onnxruntime in the stub's Python
environment, never avfuse.

When the config batches (max_batch_size > 0), the requests the dynamic batcher hands
over together are concatenated along axis 0, run once and split back, so the server
batches across clients as the onnxruntime backend would. A request that fails gets an
error response; the others are answered.

Parameters read from config.pbtxt: ``intra_op_threads`` (default 1) and
``inter_op_threads`` (default 1).
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

_NP = {
    "TYPE_FP32": np.float32,
    "TYPE_FP16": np.float16,
    "TYPE_FP64": np.float64,
    "TYPE_INT64": np.int64,
    "TYPE_INT32": np.int32,
    "TYPE_INT16": np.int16,
    "TYPE_INT8": np.int8,
    "TYPE_UINT8": np.uint8,
    "TYPE_BOOL": np.bool_,
}


def _param(config: dict[str, Any], key: str, default: str) -> str:
    return config.get("parameters", {}).get(key, {}).get("string_value", default)


class TritonPythonModel:
    """One ONNX Runtime session per model instance."""

    def initialize(self, args: dict[str, str]) -> None:
        """Open the session on ``model.onnx`` in this version's folder."""
        config = json.loads(args["model_config"])
        folder = os.path.join(args["model_repository"], args["model_version"])
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(_param(config, "intra_op_threads", "1"))
        so.inter_op_num_threads = int(_param(config, "inter_op_threads", "1"))
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.add_session_config_entry("session.inter_op.allow_spinning", "0")
        so.log_severity_level = 3
        self.session = ort.InferenceSession(
            os.path.join(folder, "model.onnx"), sess_options=so, providers=["CPUExecutionProvider"]
        )
        self.batched = int(config.get("max_batch_size", 0)) > 0
        # the graph's rank of each input (a 0-d tensor travels as [1] with reshape [])
        self.inputs = []
        for t in config["input"]:
            reshape = t.get("reshape")
            rank = len(reshape.get("shape", [])) if reshape is not None else None
            self.inputs.append((t["name"], _NP[t["data_type"]], rank))
        self.outputs = [(t["name"], _NP[t["data_type"]]) for t in config["output"]]

    def _feeds(self, request: Any) -> dict[str, np.ndarray]:
        feeds = {}
        for name, dtype, rank in self.inputs:
            a = pb_utils.get_input_tensor_by_name(request, name).as_numpy()
            if rank == 0:
                a = a.reshape(a.shape[:1] if self.batched else ())
            feeds[name] = np.ascontiguousarray(a, dtype=dtype)
        return feeds

    def _run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run([n for n, _ in self.outputs], feeds)

    def _response(self, outs: list[np.ndarray]) -> Any:
        tensors = [
            pb_utils.Tensor(name, np.ascontiguousarray(a, dtype=dtype))
            for (name, dtype), a in zip(self.outputs, outs, strict=True)
        ]
        return pb_utils.InferenceResponse(output_tensors=tensors)

    def execute(self, requests: list[Any]) -> list[Any]:
        """Answer every request, batching them into one session run when the config batches."""
        try:
            feeds = [self._feeds(r) for r in requests]
        except Exception as e:  # a malformed request: answer each with the error
            return [pb_utils.InferenceResponse(error=pb_utils.TritonError(str(e)))] * len(requests)
        if self.batched and len(requests) > 1:
            sizes = [next(iter(f.values())).shape[0] for f in feeds]
            joined = {k: np.concatenate([f[k] for f in feeds]) for k in feeds[0]}
            try:
                outs = self._run(joined)
            except Exception:  # one bad request must not fail the others: run them alone
                return [self._one(f) for f in feeds]
            bounds = np.cumsum(sizes)[:-1]
            parts = [np.split(o, bounds) for o in outs]
            return [self._response([p[i] for p in parts]) for i in range(len(requests))]
        return [self._one(f) for f in feeds]

    def _one(self, feeds: dict[str, np.ndarray]) -> Any:
        try:
            return self._response(self._run(feeds))
        except Exception as e:
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(str(e).splitlines()[0]))

    def finalize(self) -> None:
        """Drop the session."""
        self.session = None
