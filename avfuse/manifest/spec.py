"""The manifest's types: what a model takes, what it gives, when it runs, how it decides.

A `Manifest` is the validated, immutable description the runtime works from, whatever
the file's version. Inputs and outputs are `TensorSpec`s: the graph tensor (name, shape,
dtype) plus its role and the role's settings. A shape or dtype left out of the file
(None) is taken from the ONNX graph when a backend loads the model
(`avfuse.manifest.resolve`).

Input roles (`TensorSpec.modality`):
    video   a camera frame, pre-processed as `video` (VideoParams) says
    audio   audio, as `audio` says: a log-mel (AudioParams) or raw waveform chunks
            (WaveformParams)
    mask    per-sample modality presence, 1.0 present / 0.0 missing, columns in `order`
    state   recurrent state carried between calls of one stream: fed from output
            `source` of the previous call, `init` at start and after a gap; its batch
            axis is `batch_axis` (e.g. 1 for [2, batch, 128])
    const   a fixed tensor, `value`, of any dtype and rank (0-d included); no batch
            axis unless `batch_axis` says so
    history the last `frames` outputs of another model of the run, `source` =
            "MODEL:OUTPUT" (a chain: see avfuse.engine.history)

Output kinds (`TensorSpec.kind`):
    logits          class scores; the runtime applies softmax
    probabilities   class probabilities (the graph already ends in Softmax)
    sigmoid         independent per-label probabilities (multi-label)
    score           one probability for one label (e.g. speech)
    values          regression values, reported as `value` records
    embedding       a vector, reported on request
    state           recurrent state (paired with a state input)
Sequence outputs ([batch, steps, classes]) are pooled over steps by `pool`
("mean", "max", "last"; "none" refuses a sequence).

Per-modality outputs: an output with a `modality` ("audio" or "video") is that modality's
own opinion, computed from its input alone: a `logits` or `probabilities` head (never
the driving output) or an `embedding` in a space shared with the other modality. A model
with a head for each modality gets an agreement check at run time (`agreement`, see
avfuse.engine.agreement): a `conflict` record when both heads are confident and say
different labels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avfuse.kernels.reference import AudioParams, VideoParams
from avfuse.kernels.waveform import WaveformParams

FORMAT = "avfuse-manifest"
VERSIONS = (1, 2)
SCHEMA_VERSION = 2
MANIFEST_NAME = "manifest.json"
ROLES = ("video", "audio", "mask", "state", "const", "history")
MODALITIES = ROLES  # the v1 name of the role field's values
KINDS = ("logits", "probabilities", "sigmoid", "score", "values", "embedding", "state")
#: kinds an output with a `modality` may have
HEAD_KINDS = ("logits", "probabilities")
MODALITY_KINDS = (*HEAD_KINDS, "embedding")
DECISION_KINDS = ("logits", "probabilities", "sigmoid", "score")
POOLS = ("none", "mean", "max", "last")
DTYPES = (
    "float32", "float16", "float64", "int64", "int32", "int16", "int8", "uint8", "bool",
)  # fmt: skip
FUSIONS = ("early", "late", "attention", "hybrid", "audio", "video")

Dim = int | str


@dataclass(frozen=True, kw_only=True)
class TensorSpec:
    """One graph input or output, with its role (inputs) or kind (outputs).

    Attributes:
        name: the graph tensor's name.
        shape: dims (int, or a name for a dynamic axis); None: from the graph.
        dtype: element type; None: from the graph.
        modality: the input's role (see the module docstring); for an output, the
            modality whose input alone it is computed from ("audio", "video"), or None.
        batch_axis: the axis that indexes the batch (None: none, e.g. a 0-d const).
        audio / video: the pre-processing of an audio / video input.
        order: a mask input's columns.
        source: the output that feeds a state input; "MODEL:OUTPUT" for a history input.
        init: a state input's initial value (a history input's, before the start).
        frames: a history input's length (outputs of the source model).
        value: a const input's value (a number or nested lists).
        kind: an output's kind (see the module docstring).
        labels: an output's class names (default: the manifest's labels).
        pool: how a sequence output is pooled over its steps.
        drives: this output makes the events (one output does).
    """

    name: str
    shape: tuple[Dim, ...] | None = None
    dtype: str | None = "float32"
    modality: str | None = None
    batch_axis: int | None = 0
    audio: AudioParams | WaveformParams | None = None
    video: VideoParams | None = None
    order: tuple[str, ...] = ()
    source: str | None = None
    init: float = 0.0
    frames: int = 0
    value: Any = None
    kind: str | None = None
    labels: tuple[str, ...] = ()
    pool: str = "none"
    drives: bool = False

    @property
    def role(self) -> str | None:
        """The input's role (same as `modality`)."""
        return self.modality


@dataclass(frozen=True, kw_only=True)
class StatePair:
    """A recurrent-state input fed by an output of the previous call."""

    input: str
    output: str


@dataclass(frozen=True, kw_only=True)
class Cadence:
    """When the model runs, independent of the camera's frame rate.

    Attributes:
        every_frames: run on every N-th video frame (video-driven).
        every_ms: run every X ms of audio (audio-driven; rounded to whole hops).
    Both None: every frame when the model takes video, else every audio chunk
    (waveform) or every 100 ms (log-mel).
    """

    every_frames: int | None = None
    every_ms: float | None = None


@dataclass(frozen=True, kw_only=True)
class DecisionSpec:
    """How the driving output becomes onsets and events (see avfuse.engine.postprocess).

    Attributes:
        on: smoothed score that opens a decision.
        off: score below which an open decision closes (<= on).
        min_duration_ms: shorter decisions are not reported.
        smoothing: "ema", "mean" or "none".
        ema_alpha: weight of the newest output in the EMA.
        mean_frames: outputs in the moving average.
        background: the label that means "nothing there" (never an event).
        thresholds: per-label (on, off) overriding `on`/`off`.
    """

    on: float = 0.6
    off: float = 0.4
    min_duration_ms: float = 400.0
    smoothing: str = "ema"
    ema_alpha: float = 0.4
    mean_frames: int = 5
    background: str | None = "none"
    thresholds: dict[str, tuple[float, float]] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class AgreementSpec:
    """When the per-modality heads' disagreement is a conflict (avfuse.engine.agreement).

    Attributes:
        on: both heads' top probabilities at least this, with different labels (neither
            the decision's background label), open a candidate conflict.
        off: an open conflict goes on while both stay at least this (<= on) on the same
            two labels.
        min_duration_ms: a candidate becomes a conflict once it has lasted this long.
        max_gap_ms: a conflict ends when its condition has failed for longer than this
            (shorter dips do not split it); its end is the last moment the condition held.
    """

    on: float = 0.8
    off: float = 0.6
    min_duration_ms: float = 300.0
    max_gap_ms: float = 200.0


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """A validated manifest. Build with `load_manifest` or `Manifest.from_dict`."""

    model_file: str
    labels: tuple[str, ...]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    name: str = "model"
    fusion: str | None = None
    cadence: Cadence = field(default_factory=Cadence)
    decision: DecisionSpec = field(default_factory=DecisionSpec)
    agreement: AgreementSpec = field(default_factory=AgreementSpec)
    sha256: str | None = None
    opset: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    version: int = SCHEMA_VERSION
    path: Path | None = None  # where it was loaded from; not serialised

    # ------------------------------------------------------------------ queries
    def input_for(self, modality: str) -> TensorSpec | None:
        """The input with this role, or None when the model does not take it."""
        return next((s for s in self.inputs if s.modality == modality), None)

    def output(self, name: str) -> TensorSpec:
        """The output named `name` (KeyError when there is none)."""
        for o in self.outputs:
            if o.name == name:
                return o
        raise KeyError(name)

    @property
    def history_inputs(self) -> tuple[TensorSpec, ...]:
        """Inputs fed by other models' outputs (a chain)."""
        return tuple(s for s in self.inputs if s.modality == "history")

    @property
    def modalities(self) -> tuple[str, ...]:
        """Sensor modalities the model consumes, in ("audio", "video") order."""
        return tuple(m for m in ("audio", "video") if self.input_for(m) is not None)

    @property
    def audio(self) -> AudioParams | WaveformParams | None:
        """The audio input's pre-processing, or None."""
        s = self.input_for("audio")
        return s.audio if s is not None else None

    @property
    def video(self) -> VideoParams | None:
        """The video input's pre-processing, or None."""
        s = self.input_for("video")
        return s.video if s is not None else None

    @property
    def mask_order(self) -> tuple[str, ...]:
        """The mask input's columns, or ()."""
        s = self.input_for("mask")
        return s.order if s is not None else ()

    @property
    def state(self) -> tuple[StatePair, ...]:
        """State inputs and the outputs that feed them."""
        return tuple(
            StatePair(input=s.name, output=s.source or "")
            for s in self.inputs
            if s.modality == "state"
        )

    def head_for(self, modality: str) -> TensorSpec | None:
        """The per-modality logits/probabilities output of `modality`, or None."""
        return next(
            (o for o in self.outputs if o.modality == modality and o.kind in HEAD_KINDS), None
        )

    def embedding_for(self, modality: str) -> TensorSpec | None:
        """The per-modality embedding output of `modality`, or None."""
        return next(
            (o for o in self.outputs if o.modality == modality and o.kind == "embedding"), None
        )

    @property
    def has_agreement(self) -> bool:
        """Whether the model has a head for each modality (the agreement check runs)."""
        return self.head_for("audio") is not None and self.head_for("video") is not None

    @property
    def driving_output(self) -> TensorSpec:
        """The output whose values make the events."""
        return next(o for o in self.outputs if o.drives)

    @property
    def model_path(self) -> Path:
        """Absolute path of the ONNX file (relative to the manifest's folder)."""
        base = self.path.parent if self.path else Path.cwd()
        return (base / self.model_file).resolve()

    # ------------------------------------------------------------------ (de)serialise
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict in the version-2 layout."""
        from avfuse.manifest.write import manifest_dict

        return manifest_dict(self)

    @classmethod
    def from_dict(cls, data: Any, *, path: Path | None = None) -> Manifest:
        """Parse and validate (version 1 or 2); raises ManifestError naming the field."""
        from avfuse.manifest.parse import parse_manifest

        return parse_manifest(data, path)

    def save(self, path: str | Path) -> Path:
        """Write as JSON (indent 2) and return the path."""
        p = Path(path)
        p.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return p


__all__ = [
    "DECISION_KINDS",
    "HEAD_KINDS",
    "MODALITY_KINDS",
    "AgreementSpec",
    "DTYPES",
    "FORMAT",
    "FUSIONS",
    "KINDS",
    "MANIFEST_NAME",
    "MODALITIES",
    "POOLS",
    "ROLES",
    "SCHEMA_VERSION",
    "VERSIONS",
    "Cadence",
    "DecisionSpec",
    "Dim",
    "Manifest",
    "StatePair",
    "TensorSpec",
]
