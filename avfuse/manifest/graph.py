"""What an ONNX file says about itself: its inputs and outputs, the op each output ends
in, and its metadata. `manifest init` drafts a manifest from this.

Two loaders compose into `read_graph`: `graph_from_onnx` (the `onnx` package, from
`avfuse[export]`) sees the nodes, so it can tell a graph that already ends in Softmax
or Sigmoid; `graph_from_ort` (ONNX Runtime, always installed) sees only the I/O and
the metadata, and leaves `ends_in` unknown. Dims are ints for fixed axes and the
graph's own name (or None) for dynamic ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avfuse.errors import ModelError

#: ONNX TensorProto element types -> manifest dtypes
_ONNX_TYPES = {1: "float32", 10: "float16", 11: "float64", 7: "int64", 6: "int32", 5: "int16",
               3: "int8", 2: "uint8", 9: "bool"}  # fmt: skip
#: ops that pass their first input's value range through (walked back to find the last op
#: that decides what kind of numbers an output holds)
_PASS_THROUGH = frozenset(
    ["Identity", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Transpose", "Cast",
     "ReduceMean", "ReduceMax", "ReduceMin", "Slice", "Gather", "Expand", "Tile", "Dropout",
     "Concat", "Split"]
)  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class TensorInfo:
    """One graph input or output.

    Attributes:
        name: the tensor's name.
        dims: one entry per axis: an int (fixed), a str (the graph's name of a dynamic
            axis) or None (dynamic, unnamed).
        dtype: manifest dtype ("float32", ...), or None for a type avfuse has no name for.
        ends_in: for outputs, the op that makes its values ("Softmax", "Sigmoid", ...),
            looking through reshapes, casts and reductions; None when unknown.
    """

    name: str
    dims: tuple[int | str | None, ...]
    dtype: str | None
    ends_in: str | None = None

    @property
    def rank(self) -> int:
        """Number of axes."""
        return len(self.dims)

    def fixed(self, axis: int) -> int | None:
        """The size of `axis` when the graph fixes it, else None."""
        d = self.dims[axis]
        return d if isinstance(d, int) else None


@dataclass(frozen=True, kw_only=True)
class GraphInfo:
    """The I/O of an ONNX file, its metadata and its default-domain opset."""

    path: Path
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    metadata: dict[str, str] = field(default_factory=dict)
    opset: int | None = None
    reader: str = "onnx"


def _dims_onnx(value_info: Any) -> tuple[int | str | None, ...]:
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return ()
    out: list[int | str | None] = []
    for d in t.shape.dim:
        if d.HasField("dim_value") and d.dim_value > 0:
            out.append(int(d.dim_value))
        else:
            out.append(d.dim_param or None)
    return tuple(out)


def _producers(graph: Any, outer: dict[str, Any] | None = None) -> dict[str, Any]:
    prod = dict(outer or {})
    for node in graph.node:
        for o in node.output:
            prod[o] = node
    return prod


def _ends_in(name: str, prod: dict[str, Any], depth: int = 0) -> str | None:
    """The op that makes tensor `name`, looking through `_PASS_THROUGH` ops and `If`s."""
    for _ in range(64):
        node = prod.get(name)
        if node is None:
            return None
        if node.op_type == "If" and depth < 8:
            k = list(node.output).index(name)
            found = set()
            for attr in node.attribute:
                if attr.name in ("then_branch", "else_branch"):
                    sub = attr.g
                    found.add(_ends_in(sub.output[k].name, _producers(sub, prod), depth + 1))
            return found.pop() if len(found) == 1 else None
        if node.op_type not in _PASS_THROUGH or not node.input:
            return str(node.op_type)
        name = node.input[0]
    return None


def graph_from_onnx(path: str | Path) -> GraphInfo:
    """Read the graph with the `onnx` package (nodes included)."""
    import onnx

    p = Path(path)
    try:
        model = onnx.load(str(p), load_external_data=False)
    except Exception as e:  # onnx raises DecodeError, ValueError, OSError...
        raise ModelError(
            f"{p} is not a readable ONNX model ({str(e).splitlines()[0] if str(e) else e}): "
            "give the .onnx file the model was exported to"
        ) from None
    g = model.graph
    inits = {i.name for i in g.initializer}
    prod = _producers(g)

    def info(v: Any, *, output: bool) -> TensorInfo:
        elem = v.type.tensor_type.elem_type
        return TensorInfo(
            name=v.name,
            dims=_dims_onnx(v),
            dtype=_ONNX_TYPES.get(elem),
            ends_in=_ends_in(v.name, prod) if output else None,
        )

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    return GraphInfo(
        path=p,
        inputs=tuple(info(v, output=False) for v in g.input if v.name not in inits),
        outputs=tuple(info(v, output=True) for v in g.output),
        metadata={m.key: m.value for m in model.metadata_props},
        opset=opset,
        reader="onnx",
    )


def graph_from_ort(path: str | Path) -> GraphInfo:
    """Read the I/O and metadata through ONNX Runtime (no nodes: `ends_in` stays None)."""
    import onnxruntime as ort

    from avfuse.manifest.resolve import ORT_TYPES

    p = Path(path)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    try:
        sess = ort.InferenceSession(str(p), sess_options=so, providers=["CPUExecutionProvider"])
    except Exception as e:  # ORT raises its own Fail/InvalidProtobuf types
        raise ModelError(
            f"ONNX Runtime cannot load {p.name}: {str(e).splitlines()[0]}; give the .onnx file "
            "the model was exported to"
        ) from None

    def info(v: Any) -> TensorInfo:
        dims = tuple(d if isinstance(d, int) and d > 0 else (d or None) for d in v.shape)
        return TensorInfo(name=v.name, dims=dims, dtype=ORT_TYPES.get(v.type))

    meta = sess.get_modelmeta().custom_metadata_map
    return GraphInfo(
        path=p,
        inputs=tuple(info(v) for v in sess.get_inputs()),
        outputs=tuple(info(v) for v in sess.get_outputs()),
        metadata=dict(meta),
        reader="onnxruntime",
    )


def read_graph(path: str | Path) -> GraphInfo:
    """`graph_from_onnx` where the onnx package is installed, else `graph_from_ort`.

    Raises:
        ModelError: the file is missing or is not an ONNX model.
    """
    p = Path(path)
    if not p.is_file():
        what = "is a folder" if p.is_dir() else "does not exist"
        raise ModelError(f"model {p} {what}: give the path of the .onnx file")
    try:
        import onnx  # noqa: F401
    except ImportError:
        return graph_from_ort(p)
    return graph_from_onnx(p)


__all__ = ["GraphInfo", "TensorInfo", "graph_from_onnx", "graph_from_ort", "read_graph"]
