"""Serialising a `Manifest` as version-2 JSON (what `avfuse export` and `manifest init`
write); parse(write(m)) == m for every manifest."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from avfuse.kernels.reference import AudioParams
from avfuse.kernels.waveform import WaveformParams
from avfuse.manifest.spec import (
    FORMAT,
    SCHEMA_VERSION,
    AgreementSpec,
    DecisionSpec,
    Manifest,
    TensorSpec,
)


def _plain(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def _input(s: TensorSpec) -> dict[str, Any]:
    d: dict[str, Any] = {"name": s.name, "role": s.modality}
    if s.shape is not None:
        d["shape"] = list(s.shape)
    if s.dtype is not None:
        d["dtype"] = s.dtype
    if s.batch_axis != (None if s.modality == "const" else 0):
        d["batch_axis"] = s.batch_axis
    if s.modality == "video" and s.video is not None:
        d["video"] = _plain(asdict(s.video))
    elif s.modality == "audio" and isinstance(s.audio, WaveformParams):
        d["audio"] = {"feature": "waveform", **_plain(asdict(s.audio))}
    elif s.modality == "audio" and isinstance(s.audio, AudioParams):
        d["audio"] = {"feature": "logmel", **_plain(asdict(s.audio))}
    elif s.modality == "mask":
        d["order"] = list(s.order)
    elif s.modality == "state":
        d["from"] = s.source
        if s.init:
            d["init"] = s.init
    elif s.modality == "const":
        d["value"] = s.value
    elif s.modality == "history":
        d["from"] = s.source
        d["frames"] = s.frames
        if s.init:
            d["init"] = s.init
    return d


def _output(o: TensorSpec, labels: tuple[str, ...]) -> dict[str, Any]:
    d: dict[str, Any] = {"name": o.name, "kind": o.kind}
    if o.shape is not None:
        d["shape"] = list(o.shape)
    if o.dtype is not None:
        d["dtype"] = o.dtype
    if o.labels and o.labels != labels:
        d["labels"] = list(o.labels)
    if o.pool != "none":
        d["pool"] = o.pool
    if o.drives:
        d["drives"] = True
    if o.modality is not None:
        d["modality"] = o.modality
    return d


def manifest_dict(m: Manifest) -> dict[str, Any]:
    """JSON-ready dict in the version-2 layout."""
    out: dict[str, Any] = {
        "format": FORMAT,
        "version": SCHEMA_VERSION,
        "name": m.name,
        "model": {"file": m.model_file, "sha256": m.sha256, "opset": m.opset},
    }
    if m.fusion is not None:
        out["fusion"] = m.fusion
    out["labels"] = list(m.labels)
    out["inputs"] = [_input(s) for s in m.inputs]
    out["outputs"] = [_output(o, m.labels) for o in m.outputs]
    cadence = {k: v for k, v in asdict(m.cadence).items() if v is not None}
    if cadence:
        out["cadence"] = cadence
    decision = asdict(m.decision)
    default = asdict(DecisionSpec())
    changed = {k: _plain(v) for k, v in decision.items() if v != default[k]}
    if changed:
        out["decision"] = changed
    agreement = {k: v for k, v in asdict(m.agreement).items() if v != asdict(AgreementSpec())[k]}
    if agreement:
        out["agreement"] = agreement
    out["metrics"] = m.metrics
    out["provenance"] = m.provenance
    return out


__all__ = ["manifest_dict"]
