"""Completing a manifest from the ONNX graph: shapes and dtypes it left out, checked
against what it gave.

A backend that can read its graph calls `resolve(manifest, graph_inputs,
graph_outputs)` at load time and works from the result. Every graph input must be
in the manifest (the engine never feeds an input it does not understand); dynamic
dims are named "batch" at an input's batch axis and taken from the pre-processing
elsewhere (image size, mel frames, waveform window), and a dim that stays unknown is
an error naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from avfuse.errors import ManifestError
from avfuse.kernels.waveform import WaveformParams
from avfuse.manifest.consistency import check_consistency, expected_shape
from avfuse.manifest.spec import Dim, Manifest, TensorSpec

#: ONNX Runtime type strings -> manifest dtypes
ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int16)": "int16",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
}

GraphSpec = Mapping[str, tuple[Sequence[Any], str | None]]


def _dynamic(d: Any) -> bool:
    return not isinstance(d, int) or d <= 0


def _resolve_input(s: TensorSpec, gshape: Sequence[Any], gdtype: str | None, w: str) -> TensorSpec:
    dtype = s.dtype
    if gdtype is not None:
        if dtype is None:
            dtype = gdtype
        elif dtype != gdtype:
            raise ManifestError(f"{dtype} but the graph says {gdtype}", field=f"{w}.dtype")
    base = list(s.shape) if s.shape is not None else list(gshape)
    if len(base) != len(gshape):
        raise ManifestError(
            f"rank {len(base)} contradicts the graph's {list(gshape)}", field=f"{w}.shape"
        )
    want = expected_shape(s)
    if s.modality == "audio" and isinstance(s.audio, WaveformParams):
        want = tuple([1] * (len(base) - 1) + [s.audio.window_samples])
        if s.batch_axis is not None and len(base) >= 2:
            want = ("batch", *want[1:])
    if s.modality == "history" and len(base) >= 2:
        want = ("batch", s.frames, *[d if isinstance(d, int) else None for d in base[2:]])
    if s.modality == "const" and s.value is not None and s.batch_axis is None:
        import numpy as np

        want = tuple(np.asarray(s.value).shape)
    out: list[Dim] = []
    for d, (m_dim, g_dim) in enumerate(zip(base, gshape, strict=True)):
        if isinstance(m_dim, int) and isinstance(g_dim, int) and g_dim > 0 and m_dim != g_dim:
            raise ManifestError(f"dimension {d} is {m_dim} but the graph says {g_dim}",
                                field=f"{w}.shape")  # fmt: skip
        if isinstance(m_dim, int) and m_dim > 0:
            out.append(m_dim)
        elif not _dynamic(g_dim):
            out.append(int(g_dim))
        elif d == s.batch_axis:
            out.append("batch")
        elif want is not None and len(want) == len(base) and isinstance(want[d], int):
            out.append(int(want[d]))
        else:
            raise ManifestError(
                f"dimension {d} is dynamic in the graph ({list(gshape)}) and nothing in the "
                "manifest fixes it: give the input's shape",
                field=f"{w}.shape",
            )
    if want is not None and len(want) == len(out):
        for d, (a, b) in enumerate(zip(out, want, strict=True)):
            if isinstance(a, int) and isinstance(b, int) and a != b and d != s.batch_axis:
                raise ManifestError(
                    f"the graph's input is {out} but the pre-processing makes {list(want)}",
                    field=f"{w}.shape",
                )
    return replace(s, shape=tuple(out), dtype=dtype)


def _resolve_output(o: TensorSpec, gshape: Sequence[Any], gdtype: str | None, w: str) -> TensorSpec:
    dtype = o.dtype if o.dtype is not None else gdtype
    if o.dtype is not None and gdtype is not None and o.dtype != gdtype:
        raise ManifestError(f"{o.dtype} but the graph says {gdtype}", field=f"{w}.dtype")
    base = list(o.shape) if o.shape is not None else list(gshape)
    if len(base) != len(gshape):
        raise ManifestError(
            f"rank {len(base)} contradicts the graph's {list(gshape)}", field=f"{w}.shape"
        )
    out: list[Dim] = []
    for d, (m_dim, g_dim) in enumerate(zip(base, gshape, strict=True)):
        if isinstance(m_dim, int) and isinstance(g_dim, int) and g_dim > 0 and m_dim != g_dim:
            raise ManifestError(f"dimension {d} is {m_dim} but the graph says {g_dim}",
                                field=f"{w}.shape")  # fmt: skip
        if isinstance(m_dim, int):
            out.append(m_dim)
        elif not _dynamic(g_dim):
            out.append(int(g_dim))
        elif d == 0:
            out.append("batch")
        else:
            out.append(m_dim if isinstance(m_dim, str) else str(g_dim or f"dim{d}"))
    return replace(o, shape=tuple(out), dtype=dtype)


def resolve(m: Manifest, graph_inputs: GraphSpec, graph_outputs: GraphSpec) -> Manifest:
    """The manifest completed from the graph (see the module docstring)."""
    names = {s.name for s in m.inputs}
    for g in graph_inputs:
        if g not in names:
            raise ManifestError(
                f"the graph input {g!r} is not in the manifest: add it to inputs with a role "
                "(video, audio, mask, state or const); avfuse never feeds an input it does not "
                "understand",
                field="inputs",
            )
    inputs = []
    for i, s in enumerate(m.inputs):
        if s.name not in graph_inputs:
            raise ManifestError(
                f"the ONNX graph has no input {s.name!r} (it has {sorted(graph_inputs)})",
                field=f"inputs[{i}].name",
            )
        gshape, gdtype = graph_inputs[s.name]
        inputs.append(_resolve_input(s, gshape, gdtype, f"inputs[{i}]"))
    outputs = []
    for i, o in enumerate(m.outputs):
        if o.name not in graph_outputs:
            raise ManifestError(
                f"the ONNX graph has no output {o.name!r} (it has {sorted(graph_outputs)})",
                field=f"outputs[{i}].name",
            )
        gshape, gdtype = graph_outputs[o.name]
        outputs.append(_resolve_output(o, gshape, gdtype, f"outputs[{i}]"))
    resolved = replace(m, inputs=tuple(inputs), outputs=tuple(outputs))
    check_consistency(resolved)
    return resolved


def check_against_graph(
    m: Manifest,
    graph_inputs: Mapping[str, Sequence[Any]],
    graph_outputs: Mapping[str, Sequence[Any]],
) -> Manifest:
    """`resolve` for callers that know the graph's shapes but not its dtypes."""
    return resolve(
        m,
        {k: (v, None) for k, v in graph_inputs.items()},
        {k: (v, None) for k, v in graph_outputs.items()},
    )


__all__ = ["ORT_TYPES", "check_against_graph", "resolve"]
