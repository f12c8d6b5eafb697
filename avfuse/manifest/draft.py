"""Drafting a version-2 manifest from an ONNX graph (`avfuse manifest init`).

The graph tells names, shapes, dtypes and dynamic axes, which recurrent-state input
pairs with which output, and whether an output already ends in Softmax or Sigmoid
(`avfuse.manifest.graph`). From these the draft guesses each input's role
(`avfuse.manifest.roles`) and each output's kind: Softmax -> probabilities, Sigmoid ->
score (one class) or sigmoid (several), anything else -> logits for the first output
and values for the others; class names come from the ONNX metadata when it has them
("labels", "classes", "names", "character"). What the graph cannot tell is written as
"TODO" (`avfuse.manifest.todo`), so the file is refused, naming the field, until the
user fills it in; every block's "comment" says what was read, guessed and left to do.

    path, todo = write_draft("silero_vad.onnx")
    todo   # ['inputs[0].audio.sample_rate', 'inputs[0].audio.chunk', ...]
"""

from __future__ import annotations

import ast
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from avfuse.errors import UsageError
from avfuse.manifest.files import file_sha256
from avfuse.manifest.graph import GraphInfo, TensorInfo, read_graph
from avfuse.manifest.roles import draft_inputs, pair_states, shape_of
from avfuse.manifest.spec import FORMAT, MANIFEST_NAME, SCHEMA_VERSION, DecisionSpec
from avfuse.manifest.todo import TODO, todo_fields

#: ONNX metadata keys that hold class names, in the order they are tried
LABEL_KEYS = ("labels", "classes", "class_names", "names", "character", "id2label")


def _parse_labels(text: str) -> list[str] | None:
    """Class names from a metadata value: a JSON or Python list or {index: name} dict,
    else one name per line, else comma-separated."""
    for parse in (json.loads, ast.literal_eval):
        try:
            v = parse(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        if isinstance(v, list) and all(isinstance(x, (str, int)) for x in v):
            return [str(x) for x in v]
        if isinstance(v, dict):
            try:
                return [str(v[k]) for k in sorted(v, key=lambda k: int(k))]
            except (TypeError, ValueError):
                return None
    sep = "\n" if "\n" in text else ","
    names = [x.strip() for x in text.strip().split(sep)]
    return names if len(names) > 1 and all(names) else None


def labels_from_metadata(meta: dict[str, str], classes: int | None) -> tuple[list[str], str]:
    """(class names, what the comment says about them) from the ONNX metadata; no names
    when none are there or their count differs from the output's `classes`."""
    for key in LABEL_KEYS:
        if key not in meta:
            continue
        names = _parse_labels(meta[key])
        if names is None:
            return [], f"The metadata's '{key}' could not be read as class names"
        if len(set(names)) != len(names):
            return [], f"The metadata's '{key}' repeats names, so it is not used as labels"
        if classes is not None and len(names) != classes:
            return [], (
                f"The metadata's '{key}' has {len(names)} entries but the output has "
                f"{classes} classes, so it is not used as labels"
            )
        return names, f"Labels from the ONNX metadata '{key}'"
    return [], ""


def _output(
    o: TensorInfo, g: GraphInfo, pairs: dict[str, str], first: bool
) -> tuple[dict[str, Any], bool]:
    """(the output's entry, whether it is a class output)."""
    d: dict[str, Any] = {"name": o.name}
    fed = [i for i, out in pairs.items() if out == o.name]
    if fed:
        d.update(kind="state", comment=f"from the graph: the next value of state input '{fed[0]}'")
        d.update(shape=shape_of(o, None), dtype=o.dtype)
        return d, False
    classes = o.fixed(-1) if o.rank >= 2 else (1 if o.rank == 1 else None)
    op = o.ends_in
    ends = f"it ends in {op}" if op else "its last op is unknown (install onnx to read it)"
    if op == "Softmax":
        kind, why = "probabilities", f"from the graph: {ends}: class probabilities"
    elif op == "Sigmoid" and o.rank >= 1:
        kind = "score" if classes == 1 else "sigmoid"
        why = f"from the graph: {ends}: " + (
            "one probability" if kind == "score" else "independent per-label probabilities"
        )
    elif first and o.rank >= 1:
        kind = "logits"
        why = (
            f"guessed: {ends}, so these are taken as class logits (softmax applied); if "
            "they are regression values write kind values, an embedding: embedding"
        )
        if op == "LogSoftmax":
            why = f"from the graph: {ends}: log-probabilities, whose softmax is the probabilities"
    else:
        kind = "values"
        why = f"guessed: {ends}; reported as value records (give it a class kind to use it)"
    d.update(kind=kind, comment=why, shape=shape_of(o, 0 if o.rank else None), dtype=o.dtype)
    if kind in ("logits", "probabilities", "sigmoid"):
        labels, said = labels_from_metadata(g.metadata, classes)
        d["labels"] = labels if labels else TODO
        if said:
            d["comment"] += f". {said}"
        if not labels:
            n = f"{classes} " if classes else ""
            d["comment"] += f". TODO: labels, the {n}class names in output order"
    elif kind == "score":
        d["comment"] += ". Its events are labelled 'score': add \"label\": NAME to name them"
    if kind != "values" and o.rank >= 3:
        d["pool"] = TODO
        d["comment"] += ". TODO: pool, how its steps become one row per call (mean, max, last)"
    return d, kind != "values"


def _cadence_comment(inputs: list[dict[str, Any]]) -> str:
    roles = {d["role"] for d in inputs}
    if "video" in roles:
        return "guessed: every video frame; add every_frames: N to run on every N-th frame"
    audio = next((d.get("audio", {}) for d in inputs if d["role"] == "audio"), {})
    if audio.get("feature") == "waveform":
        return "guessed: once per audio chunk; add every_ms to run less often"
    return "guessed: every 100 ms of audio; add every_ms to change it"


def draft_manifest(
    model: str | Path,
    *,
    manifest_dir: str | Path | None = None,
    graph: GraphInfo | None = None,
) -> dict[str, Any]:
    """A draft version-2 manifest (a JSON-ready dict) for the ONNX file `model`.

    Args:
        model: the .onnx file.
        manifest_dir: the folder the manifest will be written to (model.file is relative
            to it); default the model's folder.
        graph: the graph as already read (default: `read_graph(model)`).

    Raises:
        ModelError: the file is missing or not an ONNX model.
    """
    g = graph if graph is not None else read_graph(model)
    path = Path(model)
    base = Path(manifest_dir) if manifest_dir is not None else path.parent
    pairs = pair_states(g)
    inputs = draft_inputs(g, pairs)
    outputs, first = [], True
    for o in g.outputs:
        d, decides = _output(o, g, pairs, first)
        first = first and not decides
        outputs.append(d)
    decision = {k: v for k, v in asdict(DecisionSpec()).items() if k != "thresholds"}
    return {
        "format": FORMAT,
        "version": SCHEMA_VERSION,
        "comment": (
            f"Drafted by `avfuse manifest init` from {path.name} (read with {g.reader}). Each "
            f"block's comment says what came from the graph, what was guessed and what is "
            f"{TODO}; `avfuse info` names every field still {TODO}, and `avfuse manifest "
            "check` runs the model on demo media and says whether its outputs look as declared."
        ),
        "name": path.stem,
        "model": {
            "file": Path(os.path.relpath(path.resolve(), base.resolve())).as_posix(),
            "sha256": file_sha256(path),
            "opset": g.opset,
        },
        "inputs": inputs,
        "outputs": outputs,
        "cadence": {"comment": _cadence_comment(inputs)},
        "decision": {
            "comment": "avfuse's defaults (a guess): tune on, off and min_duration_ms on real "
            "media; smoothing is ema, mean or none",
            **decision,
        },
    }


def dumps(data: Any, indent: int = 0) -> str:
    """JSON with two-space indents and lists of plain values on one line."""
    pad, inner = "  " * indent, "  " * (indent + 1)
    if isinstance(data, dict) and data:
        items = [f"{inner}{json.dumps(k)}: {dumps(v, indent + 1)}" for k, v in data.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(data, list) and any(isinstance(x, (dict, list)) for x in data):
        items = [f"{inner}{dumps(v, indent + 1)}" for v in data]
        return "[\n" + ",\n".join(items) + f"\n{pad}]"
    return json.dumps(data)


def write_draft(
    model: str | Path, out: str | Path | None = None, *, force: bool = False
) -> tuple[Path, list[str]]:
    """Draft the manifest of `model` and write it (default: manifest.json beside it).

    Returns:
        The path written and the fields left TODO (`todo_fields`).

    Raises:
        UsageError: the target exists and `force` is not set.
        ModelError: the model is missing or not an ONNX model.
    """
    target = Path(out) if out is not None else Path(model).parent / MANIFEST_NAME
    if target.is_dir():
        target = target / MANIFEST_NAME
    data = draft_manifest(model, manifest_dir=target.parent)  # a bad model is said first
    if target.exists() and not force:
        raise UsageError(
            f"{target} already exists: give --out another path, or --force to replace it"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(dumps(data) + "\n", encoding="utf-8")
    return target, todo_fields(data)


__all__ = ["LABEL_KEYS", "draft_manifest", "dumps", "labels_from_metadata", "write_draft"]
