"""The model manifest: the contract between training/export and the runtime.

`manifest.json` sits beside `model.onnx`. It says what the graph's inputs and
outputs are, exactly how to pre-process audio and video for it, what the labels
are, and where the model came from. The runtime refuses a model whose manifest is
missing or inconsistent, with a `ManifestError` naming the field.

Input roles (``inputs[i].modality``):
    video  the image tensor, shape [batch, C, H, W]
    audio  the log-mel tensor, shape [batch, n_mels, n_frames]
    mask   per-sample modality presence, shape [batch, len(mask_order)], 1.0 present,
           0.0 missing, columns in ``mask_order``
    state  recurrent state carried between calls; paired with an output in ``state``

A dimension is an int or a string naming a dynamic axis (``"batch"``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from avfuse.errors import ManifestError
from avfuse.kernels.reference import AudioParams, VideoParams

FORMAT = "avfuse-manifest"
SCHEMA_VERSION = 1
MODALITIES = ("video", "audio", "mask", "state")
FUSIONS = ("early", "late", "attention", "hybrid", "audio", "video")
DTYPES = ("float32", "float16", "int64", "int32", "uint8", "bool")
MANIFEST_NAME = "manifest.json"

Dim = int | str


@dataclass(frozen=True, kw_only=True)
class TensorSpec:
    """One graph input or output."""

    name: str
    shape: tuple[Dim, ...]
    dtype: str = "float32"
    modality: str | None = None


@dataclass(frozen=True, kw_only=True)
class StatePair:
    """A recurrent-state input fed by an output of the previous call."""

    input: str
    output: str


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """A validated manifest. Build with `load_manifest` or `Manifest.from_dict`."""

    model_file: str
    fusion: str
    labels: tuple[str, ...]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    audio: AudioParams | None
    video: VideoParams | None
    mask_order: tuple[str, ...] = ()
    state: tuple[StatePair, ...] = ()
    name: str = "model"
    sha256: str | None = None
    opset: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None  # where it was loaded from; not serialised

    # ------------------------------------------------------------------ queries
    def input_for(self, modality: str) -> TensorSpec | None:
        """The input with this role, or None when the model does not take it."""
        return next((s for s in self.inputs if s.modality == modality), None)

    @property
    def modalities(self) -> tuple[str, ...]:
        """Sensor modalities the model consumes, in ("audio", "video") order."""
        return tuple(m for m in ("audio", "video") if self.input_for(m) is not None)

    @property
    def model_path(self) -> Path:
        """Absolute path of the ONNX file (relative to the manifest's folder)."""
        base = self.path.parent if self.path else Path.cwd()
        return (base / self.model_file).resolve()

    # ------------------------------------------------------------------ (de)serialise
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict in the on-disk layout."""
        pre: dict[str, Any] = {}
        if self.audio is not None:
            pre["audio"] = asdict(self.audio)
        if self.video is not None:
            v = asdict(self.video)
            v["mean"], v["std"] = list(v["mean"]), list(v["std"])
            pre["video"] = v
        return {
            "format": FORMAT,
            "version": SCHEMA_VERSION,
            "name": self.name,
            "model": {"file": self.model_file, "sha256": self.sha256, "opset": self.opset},
            "fusion": self.fusion,
            "labels": list(self.labels),
            "inputs": [_spec_dict(s) for s in self.inputs],
            "outputs": [_spec_dict(s) for s in self.outputs],
            "mask_order": list(self.mask_order),
            "state": [{"input": p.input, "output": p.output} for p in self.state],
            "preprocess": pre,
            "metrics": self.metrics,
            "provenance": self.provenance,
        }

    @classmethod
    def from_dict(cls, data: Any, *, path: Path | None = None) -> Manifest:
        """Parse and validate; raises ManifestError naming the first bad field."""
        return _parse(data, path)

    def save(self, path: str | Path) -> Path:
        """Write as JSON (indent 2) and return the path."""
        p = Path(path)
        p.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return p


def _spec_dict(s: TensorSpec) -> dict[str, Any]:
    d: dict[str, Any] = {"name": s.name, "shape": list(s.shape), "dtype": s.dtype}
    if s.modality is not None:
        d["modality"] = s.modality
    return d


# ---------------------------------------------------------------------- parsing helpers


def _need(d: dict, key: str, typ: type | tuple[type, ...], where: str) -> Any:
    fname = f"{where}.{key}" if where else key
    if key not in d:
        raise ManifestError("is missing", field=fname)
    v = d[key]
    if typ is float and isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    if isinstance(v, bool) and typ is not bool or not isinstance(v, typ):
        tn = typ.__name__ if isinstance(typ, type) else "/".join(t.__name__ for t in typ)
        raise ManifestError(f"must be {tn}, got {type(v).__name__}", field=fname)
    return v


def _spec(d: Any, where: str, *, role: bool) -> TensorSpec:
    if not isinstance(d, dict):
        raise ManifestError("must be an object", field=where)
    name = _need(d, "name", str, where)
    shape = _need(d, "shape", list, where)
    for i, dim in enumerate(shape):
        if (
            isinstance(dim, bool)
            or not isinstance(dim, (int, str))
            or (isinstance(dim, int) and dim <= 0)
        ):
            raise ManifestError(
                f"dimension {dim!r} must be a positive int or a name", field=f"{where}.shape[{i}]"
            )
    dtype = d.get("dtype", "float32")
    if dtype not in DTYPES:
        raise ManifestError(f"unknown dtype {dtype!r}; use one of {DTYPES}", field=f"{where}.dtype")
    modality = d.get("modality")
    if role and modality not in MODALITIES:
        raise ManifestError(f"must be one of {MODALITIES}", field=f"{where}.modality")
    return TensorSpec(name=name, shape=tuple(shape), dtype=dtype, modality=modality)


def _params(cls: type, d: Any, where: str) -> Any:
    if not isinstance(d, dict):
        raise ManifestError("must be an object", field=where)
    known = {f.name: f for f in fields(cls)}
    for key in d:
        if key not in known:
            raise ManifestError(
                f"unknown pre-processing parameter; known: {sorted(known)}", field=f"{where}.{key}"
            )
    kwargs: dict[str, Any] = {}
    for key, f in known.items():
        if key not in d:
            raise ManifestError("is missing", field=f"{where}.{key}")
        v = d[key]
        default = f.default
        if isinstance(default, tuple):
            if not isinstance(v, list) or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in v
            ):
                raise ManifestError("must be a list of numbers", field=f"{where}.{key}")
            v = tuple(float(x) for x in v)
        elif isinstance(default, bool) or isinstance(v, bool):
            raise ManifestError("must be a number", field=f"{where}.{key}")
        elif isinstance(default, int):
            if not isinstance(v, int):
                raise ManifestError(f"must be int, got {type(v).__name__}", field=f"{where}.{key}")
        elif isinstance(default, float):
            if not isinstance(v, (int, float)):
                raise ManifestError(
                    f"must be a number, got {type(v).__name__}", field=f"{where}.{key}"
                )
            v = float(v)
        elif isinstance(default, str) and not isinstance(v, str):
            raise ManifestError(f"must be str, got {type(v).__name__}", field=f"{where}.{key}")
        kwargs[key] = v
    obj = cls(**kwargs)
    try:
        obj.validate()
    except ValueError as e:
        raise ManifestError(str(e), field=where) from None
    return obj


def _parse(data: Any, path: Path | None) -> Manifest:
    if not isinstance(data, dict):
        raise ManifestError("manifest must be a JSON object", field="")
    if data.get("format") != FORMAT:
        raise ManifestError(f"must be {FORMAT!r}", field="format")
    version = _need(data, "version", int, "")
    if version != SCHEMA_VERSION:
        raise ManifestError(
            f"schema version {version} is not supported (this avfuse reads "
            f"{SCHEMA_VERSION}); re-export the model",
            field="version",
        )
    model = _need(data, "model", dict, "")
    model_file = _need(model, "file", str, "model")
    sha = model.get("sha256")
    if sha is not None and not isinstance(sha, str):
        raise ManifestError("must be a string", field="model.sha256")
    opset = model.get("opset")
    fusion = _need(data, "fusion", str, "")
    if fusion not in FUSIONS:
        raise ManifestError(f"must be one of {FUSIONS}", field="fusion")
    labels = _need(data, "labels", list, "")
    if not labels or not all(isinstance(x, str) for x in labels):
        raise ManifestError("must be a non-empty list of strings", field="labels")
    inputs = tuple(
        _spec(s, f"inputs[{i}]", role=True) for i, s in enumerate(_need(data, "inputs", list, ""))
    )
    outputs = tuple(
        _spec(s, f"outputs[{i}]", role=False)
        for i, s in enumerate(_need(data, "outputs", list, ""))
    )
    if not inputs:
        raise ManifestError("needs at least one input", field="inputs")
    if not outputs:
        raise ManifestError("needs at least one output", field="outputs")
    names = [s.name for s in inputs]
    if len(set(names)) != len(names):
        raise ManifestError("input names must be unique", field="inputs")
    pre = _need(data, "preprocess", dict, "")
    for key in pre:
        if key not in ("audio", "video"):
            raise ManifestError(
                "unknown pre-processing block; use 'audio' and/or 'video'",
                field=f"preprocess.{key}",
            )
    audio = _params(AudioParams, pre["audio"], "preprocess.audio") if "audio" in pre else None
    video = _params(VideoParams, pre["video"], "preprocess.video") if "video" in pre else None
    mask_order = data.get("mask_order", [])
    if not isinstance(mask_order, list) or not all(isinstance(x, str) for x in mask_order):
        raise ManifestError("must be a list of modality names", field="mask_order")
    raw_state = data.get("state", [])
    if not isinstance(raw_state, list):
        raise ManifestError("must be a list of {input, output} pairs", field="state")
    for i, p in enumerate(raw_state):
        if not isinstance(p, dict):
            raise ManifestError("must be an object {input, output}", field=f"state[{i}]")
    state = tuple(
        StatePair(
            input=_need(p, "input", str, f"state[{i}]"),
            output=_need(p, "output", str, f"state[{i}]"),
        )
        for i, p in enumerate(raw_state)
    )
    for key in ("metrics", "provenance"):
        if not isinstance(data.get(key, {}), dict):
            raise ManifestError("must be an object", field=key)
    m = Manifest(
        model_file=model_file,
        fusion=fusion,
        labels=tuple(labels),
        inputs=inputs,
        outputs=outputs,
        audio=audio,
        video=video,
        mask_order=tuple(mask_order),
        state=state,
        name=str(data.get("name", "model")),
        sha256=sha,
        opset=opset,
        metrics=dict(data.get("metrics", {})),
        provenance=dict(data.get("provenance", {})),
        path=path,
    )
    _check_consistency(m)
    return m


def _check_consistency(m: Manifest) -> None:
    """Cross-field checks: roles vs pre-processing, shapes vs parameters, labels vs output."""
    for i, s in enumerate(m.inputs):
        if s.modality == "audio":
            if m.audio is None:
                raise ManifestError(
                    "an audio input needs preprocess.audio", field="preprocess.audio"
                )
            want = (m.audio.n_mels, m.audio.frames)
            if len(s.shape) != 3 or tuple(s.shape[1:]) != want:
                raise ManifestError(
                    f"audio input must be [batch, {want[0]}, {want[1]}] for these "
                    f"pre-processing parameters, got {list(s.shape)}",
                    field=f"inputs[{i}].shape",
                )
        elif s.modality == "video":
            if m.video is None:
                raise ManifestError(
                    "a video input needs preprocess.video", field="preprocess.video"
                )
            want = (m.video.channels, m.video.height, m.video.width)
            if len(s.shape) != 4 or tuple(s.shape[1:]) != want:
                raise ManifestError(
                    f"video input must be [batch, {want[0]}, {want[1]}, {want[2]}] "
                    f"for these pre-processing parameters, got {list(s.shape)}",
                    field=f"inputs[{i}].shape",
                )
        elif s.modality == "mask":
            if not m.mask_order or any(x not in ("audio", "video") for x in m.mask_order):
                raise ManifestError(
                    "a mask input needs mask_order listing 'audio'/'video'", field="mask_order"
                )
            if len(s.shape) != 2 or s.shape[1] != len(m.mask_order):
                raise ManifestError(
                    f"mask input must be [batch, {len(m.mask_order)}]", field=f"inputs[{i}].shape"
                )
    if not m.modalities:
        raise ManifestError("needs an input with modality 'audio' or 'video'", field="inputs")
    in_names = {s.name for s in m.inputs}
    out_names = {s.name for s in m.outputs}
    for i, p in enumerate(m.state):
        if p.input not in in_names:
            raise ManifestError(f"no input named {p.input!r}", field=f"state[{i}].input")
        if p.output not in out_names:
            raise ManifestError(f"no output named {p.output!r}", field=f"state[{i}].output")
    logits = m.outputs[0]
    if not logits.shape:
        raise ManifestError("the logits output needs a class dimension", field="outputs[0].shape")
    if isinstance(logits.shape[-1], int) and logits.shape[-1] != len(m.labels):
        raise ManifestError(
            f"{len(m.labels)} labels but the first output has {logits.shape[-1]} classes",
            field="labels",
        )


# ---------------------------------------------------------------------- files


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file (model identity for caches and manifests)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


#: how to make the files load_manifest looks for
_EXPORT_FIX = (
    "export the model with `avfuse export CHECKPOINT --out DIR`, which writes model.onnx "
    f"and {MANIFEST_NAME} into DIR"
)


def _manifest_file(p: Path) -> Path:
    """The manifest file `p` names; ManifestError saying which file is missing if none."""
    if p.is_dir():
        m = p / MANIFEST_NAME
        if m.is_file():
            return m
        if m.exists():
            raise ManifestError(f"{m} is not a file: replace it with the model's {MANIFEST_NAME}")
        models = sorted(x.name for x in p.glob("*.onnx"))
        if models:
            raise ManifestError(
                f"folder {p} has {models[0]} but no {MANIFEST_NAME} beside it: {_EXPORT_FIX}"
            )
        raise ManifestError(
            f"folder {p} holds no model ({MANIFEST_NAME} is missing): give the folder of an "
            f"exported model, or {_EXPORT_FIX}"
        )
    if p.suffix == ".onnx":
        if not p.exists():
            raise ManifestError(f"model file {p} does not exist: check the path, or {_EXPORT_FIX}")
        if not p.is_file():
            raise ManifestError(f"model file {p} is not a file: give the path of model.onnx")
        m = p.parent / MANIFEST_NAME
        if not m.is_file():
            raise ManifestError(
                f"model file {p} has no {MANIFEST_NAME} beside it (looked for {m}): {_EXPORT_FIX}"
            )
        return m
    what = "manifest" if p.suffix == ".json" else "model"
    if not p.exists():
        raise ManifestError(
            f"{what} {p} does not exist: give a model folder, its model.onnx or its "
            f"{MANIFEST_NAME}, or {_EXPORT_FIX}"
        )
    if not p.is_file():
        raise ManifestError(f"{what} {p} is not a file: give a model folder or its {MANIFEST_NAME}")
    return p


def load_manifest(path: str | Path, *, check_hash: bool = True) -> Manifest:
    """Load the manifest for a model.

    Args:
        path: the manifest JSON, the ONNX file (its folder's manifest.json is used) or
            the model folder.
        check_hash: compare ``model.sha256`` with the ONNX file when both exist.

    Raises:
        ManifestError: a missing file (the message says which: the path given, the
            manifest beside a model, the manifest in a folder), a file that is not
            UTF-8 JSON, or any invalid field (named).
    """
    p = _manifest_file(Path(path))
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ManifestError(
            f"{p} is not valid JSON ({e.msg} at line {e.lineno}); re-export it"
        ) from None
    except UnicodeDecodeError:
        raise ManifestError(f"{p} is not a text file (not UTF-8 JSON); re-export it") from None
    except RecursionError:
        raise ManifestError(f"{p} nests JSON too deeply to be a manifest; re-export it") from None
    except OSError as e:
        raise ManifestError(f"{p} cannot be read ({e.strerror or e}); check the path") from None
    m = Manifest.from_dict(data, path=p.resolve())
    if check_hash and m.sha256 and m.model_path.exists() and file_sha256(m.model_path) != m.sha256:
        raise ManifestError(
            f"{m.model_path.name} does not match the recorded hash; the model "
            "file was changed or corrupted: re-export it",
            field="model.sha256",
        )
    return m


def check_against_graph(
    m: Manifest, graph_inputs: dict[str, tuple[Any, ...]], graph_outputs: dict[str, tuple[Any, ...]]
) -> None:
    """Check the manifest's tensor specs against the ONNX graph's (name -> shape).

    Dynamic graph dims (None or str) match anything; a fixed graph dim must equal a
    fixed manifest dim.
    """
    for kind, specs, graph in (
        ("inputs", m.inputs, graph_inputs),
        ("outputs", m.outputs, graph_outputs),
    ):
        if kind == "inputs" and set(graph) != {s.name for s in specs}:
            raise ManifestError(
                f"the graph's inputs are {sorted(graph)}, the manifest lists "
                f"{sorted(s.name for s in specs)}",
                field="inputs",
            )
        for i, s in enumerate(specs):
            if s.name not in graph:
                raise ManifestError(
                    f"the ONNX graph has no {kind[:-1]} {s.name!r} (it has {sorted(graph)})",
                    field=f"{kind}[{i}].name",
                )
            gshape = graph[s.name]
            if len(gshape) != len(s.shape):
                raise ManifestError(
                    f"rank {len(s.shape)} contradicts the graph's {list(gshape)}",
                    field=f"{kind}[{i}].shape",
                )
            for d, (a, b) in enumerate(zip(s.shape, gshape, strict=True)):
                if isinstance(a, int) and isinstance(b, int) and a != b:
                    raise ManifestError(
                        f"dimension {d} is {a} but the graph says {b}", field=f"{kind}[{i}].shape"
                    )
