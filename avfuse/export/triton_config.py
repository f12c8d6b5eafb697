"""The Triton side of a manifest: tensors as `config.pbtxt` declares them, and the text.

Both ends use `wire_layout`: `avfuse export --triton` writes the config from it, and the
`triton` backend compares what a server reports with it, so the two can never drift.

Batching. Triton batches on axis 0 only. When every input and output of the resolved
manifest indexes its batch on axis 0, the config has `max_batch_size` > 0, dims
without the batch dim and a dynamic batcher; the limit is the graph's own fixed batch
dim if it has one, else `max_batch` (default 8, `avfuse run`'s `--max-batch`). A model
with a state batched on another axis (silero's `[2, batch, 128]`) or a const without a
batch axis cannot be batched by Triton: its config has `max_batch_size: 0` and full
dims (-1 for the batch), and the client sends each batch as one request.

State. A manifest's state pairs are carried by the client (`avfuse.backends.base`
stacks each stream's state into the batch and keeps what comes back), so the exported
model only exposes the state input and output as plain tensors; no sequence batcher
is configured and the server keeps nothing between requests.

Rank 0. A tensor with no dims left travels as dims `[1]` with `reshape: { shape: [ ] }`,
the form Triton documents for scalars; Triton takes it only in a model it batches, so
`avfuse export --triton` folds rank-0 consts (silero's `sr`) into the served graph
(`triton_fold`) before the layout is made.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from avfuse.errors import ModelError
from avfuse.manifest import Manifest, TensorSpec

#: manifest dtype -> config.pbtxt data_type
CONFIG_TYPES = {
    "float32": "TYPE_FP32",
    "float16": "TYPE_FP16",
    "float64": "TYPE_FP64",
    "int64": "TYPE_INT64",
    "int32": "TYPE_INT32",
    "int16": "TYPE_INT16",
    "int8": "TYPE_INT8",
    "uint8": "TYPE_UINT8",
    "bool": "TYPE_BOOL",
}
#: config data_type -> the wire datatype of the inference protocol ("FP32")
WIRE_TYPES = {v: v.removeprefix("TYPE_") for v in CONFIG_TYPES.values()}
#: the default batch limit of a dynamically batched model (avfuse run's --max-batch)
DEFAULT_MAX_BATCH = 8


@dataclass(frozen=True, kw_only=True)
class WireTensor:
    """One tensor as the config declares it.

    Attributes:
        name: the graph tensor's name.
        data_type: config type ("TYPE_FP32").
        dims: dims without the batch dim when batching, -1 where dynamic.
        reshape: the graph's shape when it differs from dims (rank 0: ``()``).
    """

    name: str
    data_type: str
    dims: tuple[int, ...]
    reshape: tuple[int, ...] | None = None

    @property
    def wire_type(self) -> str:
        """The datatype string of inference requests ("FP32")."""
        return WIRE_TYPES[self.data_type]


@dataclass(frozen=True, kw_only=True)
class WireLayout:
    """What a config declares for one manifest: the batch limit and every tensor."""

    max_batch_size: int
    inputs: tuple[WireTensor, ...]
    outputs: tuple[WireTensor, ...]

    @property
    def batched(self) -> bool:
        """Whether Triton batches along axis 0 (max_batch_size > 0)."""
        return self.max_batch_size > 0


def _dim(d: object) -> int:
    return d if isinstance(d, int) and d > 0 else -1


def _batch_limit(m: Manifest, max_batch: int) -> int:
    """0 when Triton cannot batch this model, else its max_batch_size."""
    specs = [*m.inputs, *m.outputs]
    if any(s.batch_axis != 0 or not s.shape for s in specs):
        return 0
    firsts = {s.shape[0] for s in specs if s.shape}
    if len(firsts) != 1:
        return 0  # a fixed batch here and a dynamic one there: no common batch dim
    first = next(iter(firsts))
    return first if isinstance(first, int) else max_batch


def _tensor(s: TensorSpec, batched: bool, where: str) -> WireTensor:
    if s.dtype not in CONFIG_TYPES:
        raise ModelError(f"{where} {s.name!r} has dtype {s.dtype}, which Triton cannot declare")
    shape = tuple(s.shape or ())
    if batched:
        shape = shape[1:]
    dims = tuple(_dim(d) for d in shape)
    if not dims:  # a 0-d tensor, or a [batch] one with the batch left out
        return WireTensor(name=s.name, data_type=CONFIG_TYPES[s.dtype], dims=(1,), reshape=())
    return WireTensor(name=s.name, data_type=CONFIG_TYPES[s.dtype], dims=dims)


def wire_layout(m: Manifest, *, max_batch: int = DEFAULT_MAX_BATCH) -> WireLayout:
    """The config tensors of a manifest resolved against its graph (shapes and dtypes known).

    Raises:
        ModelError: a dtype Triton has no type for.
    """
    if max_batch < 1:
        raise ModelError(f"max_batch must be >= 1, got {max_batch}")
    limit = _batch_limit(m, max_batch)
    return WireLayout(
        max_batch_size=limit,
        inputs=tuple(_tensor(s, limit > 0, "input") for s in m.inputs),
        outputs=tuple(_tensor(s, limit > 0, "output") for s in m.outputs),
    )


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _tensor_text(t: WireTensor) -> str:
    lines = [
        "  {",
        f"    name: {_q(t.name)}",
        f"    data_type: {t.data_type}",
        f"    dims: [ {', '.join(str(d) for d in t.dims)} ]",
    ]
    if t.reshape is not None:
        lines.append(f"    reshape: {{ shape: [ {', '.join(str(d) for d in t.reshape)} ] }}")
    lines.append("  }")
    return "\n".join(lines)


def config_text(
    *,
    name: str,
    layout: WireLayout,
    backend: str | None = None,
    platform: str | None = None,
    preferred_batch: Sequence[int] = (),
    queue_delay_us: int = 500,
    instances: int = 1,
    kind: str = "KIND_CPU",
    parameters: dict[str, str] | None = None,
    header: Sequence[str] = (),
) -> str:
    """The text of a `config.pbtxt` (protobuf text format of Triton's ModelConfig).

    Args:
        name: the model's name in the repository (its folder's name).
        layout: from `wire_layout`.
        backend / platform: "python", "onnxruntime" / "tensorrt_plan".
        preferred_batch: the dynamic batcher's preferred sizes (batched models only).
        queue_delay_us: how long the batcher waits to fill a batch.
        instances: model instances (copies running in parallel).
        kind: "KIND_CPU" or "KIND_GPU".
        parameters: string parameters (the manifest and model hashes).
        header: comment lines written first.
    """
    out = [f"# {line}" if line else "#" for line in header]
    out.append(f"name: {_q(name)}")
    if backend:
        out.append(f"backend: {_q(backend)}")
    if platform:
        out.append(f"platform: {_q(platform)}")
    out.append(f"max_batch_size: {layout.max_batch_size}")
    out += ["input ["] + [",\n".join(_tensor_text(t) for t in layout.inputs)] + ["]"]
    out += ["output ["] + [",\n".join(_tensor_text(t) for t in layout.outputs)] + ["]"]
    if layout.batched and layout.max_batch_size > 1:
        sizes = sorted({b for b in preferred_batch if 1 <= b <= layout.max_batch_size})
        out.append("dynamic_batching {")
        if sizes:
            out.append(f"  preferred_batch_size: [ {', '.join(str(b) for b in sizes)} ]")
        out.append(f"  max_queue_delay_microseconds: {int(queue_delay_us)}")
        out.append("}")
    out += ["instance_group [", "  {", f"    count: {int(instances)}", f"    kind: {kind}"]
    out += ["  }", "]"]
    if parameters:
        items = [
            f"  {{ key: {_q(k)} value: {{ string_value: {_q(v)} }} }}"
            for k, v in parameters.items()
        ]
        out += ["parameters [", ",\n".join(items), "]"]
    return "\n".join(out) + "\n"


def default_preferred(max_batch_size: int) -> tuple[int, ...]:
    """Half the limit and the limit (8 -> (4, 8)): a full batch, or a half one sooner."""
    return tuple(sorted({max(1, max_batch_size // 2), max_batch_size}))


__all__ = [
    "CONFIG_TYPES",
    "DEFAULT_MAX_BATCH",
    "WIRE_TYPES",
    "WireLayout",
    "WireTensor",
    "config_text",
    "default_preferred",
    "wire_layout",
]
