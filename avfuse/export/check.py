"""Step 2 of export: validate the ONNX file with `onnx.checker` and read its I/O shapes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from avfuse.errors import ExportError


def graph_io(path: str | Path) -> tuple[dict[str, tuple[Any, ...]], dict[str, tuple[Any, ...]]]:
    """(inputs, outputs) as name -> shape, a dynamic dim as its name (or None)."""
    import onnx

    model = onnx.load(str(path))

    def dims(vi: Any) -> tuple[Any, ...]:
        return tuple(
            d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
            for d in vi.type.tensor_type.shape.dim
        )

    inits = {i.name for i in model.graph.initializer}
    ins = {i.name: dims(i) for i in model.graph.input if i.name not in inits}
    outs = {o.name: dims(o) for o in model.graph.output}
    return ins, outs


def check_onnx(path: str | Path) -> None:
    """Run the full ONNX checker (with shape inference) on a file.

    Raises:
        ExportError: the file is not a valid ONNX model, with the checker's message.
    """
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as e:
        raise ExportError(
            f"{Path(path).name} fails onnx.checker: {str(e).splitlines()[0]}; "
            "re-export with --no-slim or another opset"
        ) from e
    ins, _ = graph_io(path)
    for name, shape in ins.items():
        if shape and isinstance(shape[0], int):
            raise ExportError(
                f"input {name!r} has a fixed batch dimension {shape[0]}; "
                "export with a dynamic batch axis"
            )
