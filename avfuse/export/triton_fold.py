"""Rank-0 const inputs folded into the graph, for Triton.

Triton refuses a scalar input in a model it cannot batch ("scalar tensors are not
supported" for `max_batch_size: 0`), and a model with a const but no batch axis on it
is such a model (silero-vad's `sr`). A const never changes, so the exported graph
takes it as an initializer instead: the served model has one input fewer, the manifest
written beside it drops the const, and the client sends nothing for it. The graph
computes exactly what it did (the value is the manifest's), which the parity of the
Triton tests against local runs checks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from avfuse.errors import ExportError
from avfuse.manifest import Manifest, TensorSpec


def scalar_consts(m: Manifest) -> tuple[TensorSpec, ...]:
    """The manifest's const inputs of rank 0 (what Triton cannot carry)."""
    return tuple(s for s in m.inputs if s.role == "const" and s.shape is not None and not s.shape)


def fold_consts(src: Path, dst: Path, consts: tuple[TensorSpec, ...]) -> None:
    """Write `src` to `dst` with each of `consts` an initializer instead of a graph input.

    Raises:
        ExportError: the onnx package is missing, or a const is not a graph input.
    """
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as e:
        raise ExportError(
            "folding the model's scalar consts for Triton needs the onnx package: "
            "pip install 'avfuse[export]'"
        ) from e
    model = onnx.load(str(src))
    graph = model.graph
    by_name = {i.name: i for i in graph.input}
    for c in consts:
        if c.name not in by_name:
            raise ExportError(f"const input {c.name!r} is not an input of {src.name}")
        graph.input.remove(by_name[c.name])
        value = np.asarray(c.value, dtype=np.dtype(c.dtype or "float32")).reshape(())
        graph.initializer.append(numpy_helper.from_array(value, name=c.name))
    onnx.save(model, str(dst))


__all__ = ["fold_consts", "scalar_consts"]
