"""Parsing manifest JSON (version 1 or 2) into a validated `Manifest`.

Version 2 (the reference, with every default, is README's "Bring your own model"):

    {"format": "avfuse-manifest", "version": 2, "name": "silero-vad",
     "model": {"file": "silero_vad.onnx"},
     "inputs": [
       {"name": "input", "role": "audio",
        "audio": {"feature": "waveform", "sample_rate": 16000, "chunk": 512, "context": 64}},
       {"name": "state", "role": "state", "from": "stateN", "batch_axis": 1},
       {"name": "sr", "role": "const", "dtype": "int64", "value": 16000}],
     "outputs": [{"name": "output", "kind": "score", "labels": ["speech"]},
                 {"name": "stateN", "kind": "state"}],
     "decision": {"on": 0.5, "off": 0.35, "min_duration_ms": 250, "smoothing": "none"}}

Version 1 (what avfuse 0.1 exported: a top-level `preprocess` block and `modality`
roles) keeps loading; it is read into the same types. Shapes and dtypes left out are
taken from the ONNX graph when the model is loaded (`avfuse.manifest.resolve`).
Every error names the field.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from avfuse.errors import ManifestError
from avfuse.kernels.reference import AudioParams, VideoParams
from avfuse.kernels.waveform import WaveformParams
from avfuse.manifest.consistency import check_consistency, expected_shape
from avfuse.manifest.fields import choice, coerce, dataclass_from, need, obj, opt, where_
from avfuse.manifest.spec import (
    DECISION_KINDS,
    DTYPES,
    FORMAT,
    FUSIONS,
    KINDS,
    MODALITY_KINDS,
    POOLS,
    ROLES,
    SCHEMA_VERSION,
    VERSIONS,
    AgreementSpec,
    Cadence,
    DecisionSpec,
    Dim,
    Manifest,
    TensorSpec,
)

_SHAPE = tuple[int | str, ...]


def parse_manifest(data: Any, path: Path | None) -> Manifest:
    """A validated Manifest from parsed JSON (see the module docstring)."""
    d = obj(data, "")
    if d.get("format") != FORMAT:
        raise ManifestError(f"must be {FORMAT!r}", field="format")
    version = need(d, "version", int, "")
    if version not in VERSIONS:
        raise ManifestError(
            f"schema version {version} is not supported (this avfuse reads versions "
            f"{', '.join(map(str, VERSIONS))}); re-export the model or upgrade avfuse",
            field="version",
        )
    m = _parse_v1(d, path) if version == 1 else _parse_v2(d, path)
    check_consistency(m)
    return m


# ---------------------------------------------------------------------- common pieces


def _shape(d: dict[str, Any], where: str, *, required: bool) -> tuple[Dim, ...] | None:
    if d.get("shape") is None:
        if required:
            raise ManifestError("is missing", field=where_(where, "shape"))
        return None
    shape = coerce(d["shape"], tuple[int | str, ...], where_(where, "shape"))
    for i, dim in enumerate(shape):
        if isinstance(dim, int) and dim <= 0:
            raise ManifestError(
                f"dimension {dim!r} must be a positive int or a name",
                field=where_(where_(where, "shape"), i),
            )
    return shape


def _dtype(d: dict[str, Any], where: str, default: str | None) -> str | None:
    return choice(d, "dtype", DTYPES, where, default)


def _model_block(d: dict[str, Any]) -> tuple[str, str | None, int | None]:
    model = obj(need(d, "model", dict, ""), "model")
    file = need(model, "file", str, "model")
    sha = opt(model, "sha256", str, "model")
    opset = opt(model, "opset", int, "model")
    return file, sha, opset


def _labels(d: dict[str, Any], where: str, key: str = "labels") -> tuple[str, ...]:
    labels = opt(d, key, tuple[str, ...], where, ())
    if len(set(labels)) != len(labels):
        raise ManifestError("labels must be unique", field=where_(where, key))
    return labels


def _dicts(d: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    out = []
    for key in ("metrics", "provenance"):
        v = d.get(key, {})
        if not isinstance(v, dict):
            raise ManifestError("must be an object", field=key)
        out.append(dict(v))
    return out[0], out[1]


# ---------------------------------------------------------------------- version 1


def _cadence(d: dict[str, Any]) -> Cadence:
    cad = obj(d.get("cadence", {}), "cadence")
    cadence = dataclass_from(Cadence, cad, "cadence", skip=("comment",))
    if cadence.every_frames is not None and cadence.every_ms is not None:
        raise ManifestError("give every_frames or every_ms, not both", field="cadence")
    if cadence.every_frames is not None and cadence.every_frames < 1:
        raise ManifestError("must be >= 1", field="cadence.every_frames")
    if cadence.every_ms is not None and not 0 < cadence.every_ms <= 60_000:
        raise ManifestError("must be in (0, 60000] ms", field="cadence.every_ms")
    return cadence


_V1_KEYS = (
    "format", "version", "name", "model", "fusion", "labels", "inputs", "outputs",
    "mask_order", "state", "preprocess", "cadence", "decision", "metrics", "provenance",
    "comment",
)  # fmt: skip


def _parse_v1(d: dict[str, Any], path: Path | None) -> Manifest:
    file, sha, opset = _model_block(d)
    for key in d:  # a field v1 does not read would be ignored silently: refuse it
        if key not in _V1_KEYS:
            raise ManifestError(
                f"unknown field in a version 1 manifest; known: {', '.join(_V1_KEYS)} "
                '(version 2 has more: set "version": 2)',
                field=key,
            )
    fusion = choice(d, "fusion", FUSIONS, "", None)
    if fusion is None:
        raise ManifestError("is missing", field="fusion")
    labels = _labels(d, "")
    if not labels:
        raise ManifestError("must be a non-empty list of strings", field="labels")
    pre = obj(need(d, "preprocess", dict, ""), "preprocess")
    for key in pre:
        if key not in ("audio", "video"):
            raise ManifestError(
                "unknown pre-processing block; use 'audio' and/or 'video'",
                field=f"preprocess.{key}",
            )
    audio = (
        dataclass_from(AudioParams, pre["audio"], "preprocess.audio") if "audio" in pre else None
    )
    video = (
        dataclass_from(VideoParams, pre["video"], "preprocess.video") if "video" in pre else None
    )
    mask_order = opt(d, "mask_order", tuple[str, ...], "", ())
    raw_state = d.get("state", [])
    if not isinstance(raw_state, list):
        raise ManifestError("must be a list of {input, output} pairs", field="state")
    pairs = {}
    for i, p in enumerate(raw_state):
        p = obj(p, f"state[{i}]")
        pairs[need(p, "input", str, f"state[{i}]")] = need(p, "output", str, f"state[{i}]")
    raw_inputs = need(d, "inputs", list, "")
    if not raw_inputs:
        raise ManifestError("needs at least one input", field="inputs")
    inputs = []
    for i, s in enumerate(raw_inputs):
        w = f"inputs[{i}]"
        s = obj(s, w)
        role = choice(s, "modality", ROLES[:4], w, None)
        if role is None:
            raise ManifestError(f"must be one of {ROLES[:4]}", field=f"{w}.modality")
        name = need(s, "name", str, w)
        inputs.append(
            TensorSpec(
                name=name,
                shape=_shape(s, w, required=True),
                dtype=_dtype(s, w, "float32"),
                modality=role,
                audio=audio if role == "audio" else None,
                video=video if role == "video" else None,
                order=tuple(mask_order) if role == "mask" else (),
                source=pairs.get(name) if role == "state" else None,
            )
        )
    for i, (inp, _out) in enumerate(pairs.items()):
        if inp not in {s.name for s in inputs}:
            raise ManifestError(f"no input named {inp!r}", field=f"state[{i}].input")
    states = set(pairs.values())
    raw_outputs = need(d, "outputs", list, "")
    if not raw_outputs:
        raise ManifestError("needs at least one output", field="outputs")
    outputs = []
    for i, s in enumerate(raw_outputs):
        w = f"outputs[{i}]"
        s = obj(s, w)
        name = need(s, "name", str, w)
        kind = "state" if name in states else ("logits" if i == 0 else "values")
        outputs.append(
            TensorSpec(
                name=name,
                shape=_shape(s, w, required=True),
                dtype=_dtype(s, w, "float32"),
                kind=kind,
                labels=labels if i == 0 else (),
                drives=i == 0,
                batch_axis=0,
            )
        )
    metrics, provenance = _dicts(d)
    return Manifest(
        model_file=file,
        labels=labels,
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        name=str(d.get("name", "model")),
        fusion=fusion,
        sha256=sha,
        opset=opset,
        metrics=metrics,
        provenance=provenance,
        decision=_decision(obj(d.get("decision", {}), "decision")),
        cadence=_cadence(d),
        version=1,
        path=path,
    )


# ---------------------------------------------------------------------- version 2

_INPUT_KEYS = {
    "video": ("video",),
    "audio": ("audio",),
    "mask": ("order",),
    "state": ("from", "init"),
    "const": ("value",),
    "history": ("from", "frames", "init"),
}
_COMMON_INPUT_KEYS = ("name", "role", "shape", "dtype", "batch_axis", "comment")


def _parse_v2(d: dict[str, Any], path: Path | None) -> Manifest:
    file, sha, opset = _model_block(d)
    known = (
        "format", "version", "name", "model", "labels", "inputs", "outputs", "cadence",
        "decision", "agreement", "fusion", "metrics", "provenance", "comment",
    )  # fmt: skip
    for key in d:
        if key not in known:
            raise ManifestError(f"unknown field; known: {', '.join(known)}", field=key)
    labels = _labels(d, "")
    raw_inputs = need(d, "inputs", list, "")
    if not raw_inputs:
        raise ManifestError("needs at least one input", field="inputs")
    inputs = [_input_v2(obj(s, f"inputs[{i}]"), f"inputs[{i}]") for i, s in enumerate(raw_inputs)]
    mods = [s.modality for s in inputs]
    inputs = [
        s
        if s.modality != "mask" or s.order
        else _with(s, order=tuple(m for m in ("audio", "video") if m in mods))
        for s in inputs
    ]
    raw_outputs = need(d, "outputs", list, "")
    if not raw_outputs:
        raise ManifestError("needs at least one output", field="outputs")
    states = {s.source for s in inputs if s.modality == "state"}
    outputs = [
        _output_v2(obj(s, f"outputs[{i}]"), f"outputs[{i}]", states=states, first=i == 0)
        for i, s in enumerate(raw_outputs)
    ]
    outputs = _pick_driver(outputs)
    outputs = [_with_labels(o, labels, f"outputs[{i}]") for i, o in enumerate(outputs)]
    driver = next((o for o in outputs if o.drives), None)
    if not labels and driver is not None:
        labels = driver.labels
    metrics, provenance = _dicts(d)
    cadence = _cadence(d)
    decision = _decision(obj(d.get("decision", {}), "decision"))
    agreement = _agreement(d)
    return Manifest(
        model_file=file,
        labels=tuple(labels),
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        name=opt(d, "name", str, "", Path(file).stem),
        fusion=opt(d, "fusion", str, "", None),
        cadence=cadence,
        decision=decision,
        agreement=agreement,
        sha256=sha,
        opset=opset,
        metrics=metrics,
        provenance=provenance,
        version=SCHEMA_VERSION,
        path=path,
    )


def _with(s: TensorSpec, **kw: Any) -> TensorSpec:
    from dataclasses import replace

    return replace(s, **kw)


def _input_v2(s: dict[str, Any], w: str) -> TensorSpec:
    name = need(s, "name", str, w)
    role = choice(s, "role", ROLES, w, None)
    if role is None:
        raise ManifestError(f"is missing: one of {', '.join(ROLES)}", field=f"{w}.role")
    allowed = (*_COMMON_INPUT_KEYS, *_INPUT_KEYS[role])
    for key in s:
        if key not in allowed:
            hint = next((r for r, ks in _INPUT_KEYS.items() if key in ks), None)
            why = f" (it belongs to role {hint!r})" if hint else ""
            raise ManifestError(
                f"not a setting of a {role} input{why}; allowed: {', '.join(allowed)}",
                field=f"{w}.{key}",
            )
    shape = _shape(s, w, required=False)
    dtype = _dtype(s, w, None)
    batch_axis = s.get("batch_axis", None if role == "const" else 0)
    if batch_axis is not None:
        batch_axis = coerce(batch_axis, int, f"{w}.batch_axis")
        if batch_axis < 0 or (shape is not None and batch_axis >= len(shape)):
            raise ManifestError("must index an axis of the input", field=f"{w}.batch_axis")
    kw: dict[str, Any] = {}
    if role == "video":
        kw["video"] = _video_v2(need(s, "video", dict, w), f"{w}.video", shape)
    elif role == "audio":
        kw["audio"] = _audio_v2(need(s, "audio", dict, w), f"{w}.audio", shape)
    elif role == "mask":
        order = opt(s, "order", tuple[str, ...], w, ())
        if any(x not in ("audio", "video") for x in order):
            raise ManifestError("columns must be 'audio' and/or 'video'", field=f"{w}.order")
        kw["order"] = order
    elif role == "state":
        kw["source"] = need(s, "from", str, w)
        kw["init"] = opt(s, "init", float, w, 0.0)
    elif role == "history":
        src = s.get("from")
        if isinstance(src, dict):
            src = f"{need(src, 'model', str, f'{w}.from')}:{need(src, 'output', str, f'{w}.from')}"
        if not isinstance(src, str) or ":" not in src.strip(":"):
            raise ManifestError(
                "must name another model's output as 'MODEL:OUTPUT'", field=f"{w}.from"
            )
        kw["source"] = src
        kw["frames"] = need(s, "frames", int, w)
        if kw["frames"] < 1:
            raise ManifestError("must be >= 1", field=f"{w}.frames")
        kw["init"] = opt(s, "init", float, w, 0.0)
    else:  # const
        if dtype is None:
            raise ManifestError("is missing: a const input needs its dtype", field=f"{w}.dtype")
        if "value" not in s:
            raise ManifestError("is missing", field=f"{w}.value")
        try:
            value = np.asarray(s["value"], dtype=dtype)
        except (TypeError, ValueError, OverflowError):
            raise ManifestError(
                f"cannot be a {dtype} tensor (a number or nested lists of numbers)",
                field=f"{w}.value",
            ) from None
        if value.dtype == object or (
            value.dtype.kind == "f" and not np.all(np.isfinite(value))
        ):  # fmt: skip
            raise ManifestError("must be finite numbers", field=f"{w}.value")
        if shape is not None and batch_axis is None and tuple(shape) != value.shape:
            raise ManifestError(
                f"shape {list(shape)} does not match the value's {list(value.shape)}",
                field=f"{w}.shape",
            )
        kw["value"] = value.tolist()
        if shape is None and batch_axis is None:
            shape = tuple(value.shape)
    if dtype is None and role in ("video",):
        v = kw["video"]
        dtype = "uint8" if v.dtype == "uint8" else None
    return TensorSpec(
        name=name, shape=shape, dtype=dtype, modality=role, batch_axis=batch_axis, **kw
    )


def _video_v2(v: dict[str, Any], w: str, shape: tuple[Dim, ...] | None) -> VideoParams:
    v = dict(v)
    layout = v.get("layout", "NCHW")
    if shape is not None and len(shape) == 4 and isinstance(layout, str):
        h_ax, w_ax = (2, 3) if layout == "NCHW" else (1, 2)
        for key, ax in (("height", h_ax), ("width", w_ax)):
            if key not in v and isinstance(shape[ax], int):
                v[key] = shape[ax]
    for key in ("height", "width"):
        if key not in v:
            raise ManifestError(
                "is missing (and the input's shape does not give it)", field=f"{w}.{key}"
            )
    if "mean" in v and "std" not in v and isinstance(v["mean"], list):
        v["std"] = [1.0] * len(v["mean"])
    if "std" in v and "mean" not in v and isinstance(v["std"], list):
        v["mean"] = [0.0] * len(v["std"])
    colour = v.get("colour", "rgb")
    v["colour"] = colour
    if "mean" not in v and isinstance(colour, str):
        n = 1 if colour == "gray" else 3
        v["mean"], v["std"] = [0.0] * n, [1.0] * n
    known = {f.name for f in fields(VideoParams)}
    if v.get("resize") != "area" and "interpolation" in known:  # "area": the v1 exact path
        v.setdefault("resize", "stretch")
        v.setdefault("interpolation", "bilinear")  # what cv2.resize does by default
    return dataclass_from(VideoParams, v, w, skip=("comment",))


def _audio_v2(a: dict[str, Any], w: str, shape: tuple[Dim, ...] | None) -> Any:
    a = dict(a)
    feature = a.pop("feature", "logmel")
    a.pop("comment", None)
    if feature == "waveform":
        if "context" not in a and shape and isinstance(shape[-1], int) and "chunk" in a:
            chunk = a["chunk"]
            if isinstance(chunk, int) and not isinstance(chunk, bool):
                a["context"] = max(0, shape[-1] - chunk)
        return dataclass_from(WaveformParams, a, w)
    if feature == "logmel":
        return dataclass_from(AudioParams, a, w)
    raise ManifestError(
        f"unknown audio feature {feature!r}; use 'logmel' or 'waveform'", field=f"{w}.feature"
    )


def _output_v2(s: dict[str, Any], w: str, *, states: set[Any], first: bool) -> TensorSpec:
    allowed = (
        "name", "kind", "shape", "dtype", "labels", "label", "pool", "drives", "modality",
        "comment",
    )  # fmt: skip
    for key in s:
        if key not in allowed:
            raise ManifestError(
                f"unknown setting; allowed: {', '.join(allowed)}", field=f"{w}.{key}"
            )
    name = need(s, "name", str, w)
    default = "state" if name in states else ("logits" if first else "values")
    kind = choice(s, "kind", KINDS, w, default)
    labels = _labels(s, w)
    if "label" in s:
        if labels:
            raise ManifestError("give label or labels, not both", field=f"{w}.label")
        labels = (need(s, "label", str, w),)
    pool = choice(s, "pool", POOLS, w, "none")
    drives = s.get("drives")
    if drives is not None:
        drives = coerce(drives, bool, f"{w}.drives")
        if drives and kind not in DECISION_KINDS:
            raise ManifestError(
                f"a {kind} output cannot drive events; use one of {', '.join(DECISION_KINDS)}",
                field=f"{w}.drives",
            )
    modality = choice(s, "modality", ("audio", "video"), w, None)
    if modality is not None:
        if kind not in MODALITY_KINDS:
            raise ManifestError(
                f"a {kind} output has no modality; only {', '.join(MODALITY_KINDS)} outputs "
                "may be one modality's own",
                field=f"{w}.modality",
            )
        if drives:
            raise ManifestError(
                "a per-modality head cannot drive events: the fused output does",
                field=f"{w}.drives",
            )
    return TensorSpec(
        name=name,
        shape=_shape(s, w, required=False),
        dtype=_dtype(s, w, None),
        kind=kind,
        labels=labels,
        pool=pool,
        drives=bool(drives),
        modality=modality,
        batch_axis=0,
    )


def _agreement(d: dict[str, Any]) -> AgreementSpec:
    a = dict(obj(d.get("agreement", {}), "agreement"))
    a.pop("comment", None)
    spec = dataclass_from(AgreementSpec, a, "agreement")
    if not 0 <= spec.off <= spec.on <= 1:
        raise ManifestError("need 0 <= off <= on <= 1", field="agreement")
    for key in ("min_duration_ms", "max_gap_ms"):
        if getattr(spec, key) < 0:
            raise ManifestError("must be >= 0", field=f"agreement.{key}")
    return spec


def _pick_driver(outputs: list[TensorSpec]) -> list[TensorSpec]:
    chosen = [i for i, o in enumerate(outputs) if o.drives]
    if len(chosen) > 1:
        raise ManifestError(
            "only one output can drive events", field=f"outputs[{chosen[1]}].drives"
        )
    if not chosen:  # the first decision output that is not one modality's own head
        first = next(
            (i for i, o in enumerate(outputs) if o.kind in DECISION_KINDS and o.modality is None),
            None,
        )
        if first is not None:
            outputs[first] = _with(outputs[first], drives=True)
    return outputs


def _with_labels(o: TensorSpec, labels: tuple[str, ...], w: str) -> TensorSpec:
    if o.kind not in DECISION_KINDS or o.labels:
        if o.kind == "score" and len(o.labels) > 1:
            raise ManifestError("a score output has one label", field=f"{w}.labels")
        return o
    if o.kind == "score":
        return _with(o, labels=labels[:1] if len(labels) == 1 else ("score",))
    if not labels:
        raise ManifestError(
            f"a {o.kind} output needs one label per class: give labels here or at the top",
            field=f"{w}.labels",
        )
    return _with(o, labels=labels)


def _decision(d: dict[str, Any]) -> DecisionSpec:
    d = dict(d)
    d.pop("comment", None)
    thresholds = d.pop("thresholds", None)
    spec = dataclass_from(DecisionSpec, d, "decision")
    if not 0 <= spec.off <= spec.on <= 1:
        raise ManifestError("need 0 <= off <= on <= 1", field="decision")
    if spec.smoothing not in ("ema", "mean", "none"):
        raise ManifestError("must be 'ema', 'mean' or 'none'", field="decision.smoothing")
    if not 0 < spec.ema_alpha <= 1:
        raise ManifestError("must be in (0, 1]", field="decision.ema_alpha")
    if spec.mean_frames < 1:
        raise ManifestError("must be >= 1", field="decision.mean_frames")
    if spec.min_duration_ms < 0:
        raise ManifestError("must be >= 0", field="decision.min_duration_ms")
    if thresholds is not None:
        per = {}
        for label, pair in obj(thresholds, "decision.thresholds").items():
            wl = f"decision.thresholds.{label}"
            if isinstance(pair, (int, float)) and not isinstance(pair, bool):
                pair = [pair, min(float(pair), spec.off)]
            on, off = coerce(pair, tuple[float, float], wl)
            if not 0 <= off <= on <= 1:
                raise ManifestError("need [on, off] with 0 <= off <= on <= 1", field=wl)
            per[str(label)] = (on, off)
        from dataclasses import replace

        spec = replace(spec, thresholds=per)
    return spec


__all__ = ["check_consistency", "expected_shape", "parse_manifest"]
