"""Typed records: everything the pipeline tells its sinks, with one serialiser and one schema.

What crosses the pipeline -> sink boundary is one of these frozen dataclasses, never a
dict: a sink reads `record.label`, and a field the producer does not fill cannot be
read by mistake. Each record serialises once (`json_line`, cached), so several JSONL
sinks share the work. The JSON layout is published as a JSON Schema
(`avfuse/schema/records.schema.json`, made by `records_schema()`), versioned by
`SCHEMA_VERSION`; a field is never renamed or removed within a version.

Every record carries:
    type         "onset", "event", "value", "conflict", "warning", "fault", "stats",
                 "summary"
    schema       the record schema version
    stream       the stream id (its sources' names, credentials redacted), or None for a
                 record about the whole run
    model        the model id (the manifest's name), or None
    stream_time  seconds of stream time the record is about (0 at the stream's first
                 timestamp), or None
    wall_time    UTC wall-clock time the record was made, ISO 8601 with milliseconds

Decisions: an `Onset` is written the moment a decision opens (once it has lasted the
model's minimum duration, so an onset is never withdrawn), the `Event` when it closes;
both carry the same `event_id` (per stream, from 1).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any, ClassVar, get_type_hints

import numpy as np

#: version of the record layout; bumped only when a field changes meaning or goes away
SCHEMA_VERSION = 1

_COMMON = ("stream", "model", "stream_time", "wall_time")


def utc_now() -> str:
    """UTC wall-clock time, ISO 8601 with milliseconds and a Z: 2026-12-01T21:11:36.123Z."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _plain(v: Any) -> Any:
    """A JSON-ready copy of a field value (tuples -> lists, numpy scalars -> Python)."""
    if isinstance(v, Record):
        return v.to_dict()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return None  # JSON has no NaN/inf; a non-finite figure is "unknown"
    return v


@dataclass(frozen=True, kw_only=True)
class Record:
    """Fields every record has (see the module docstring)."""

    TYPE: ClassVar[str] = ""

    stream: str | None = None
    model: str | None = None
    stream_time: float | None = None
    wall_time: str = field(default_factory=utc_now)
    _line: list[str] = field(default_factory=list, init=False, repr=False, compare=False)

    @property
    def type(self) -> str:
        """The record's `type` in JSON."""
        return self.TYPE

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: type and schema first, then the record's own fields, then the
        common ones."""
        own = [f.name for f in fields(self) if f.name not in _COMMON and f.name != "_line"]
        d: dict[str, Any] = {"type": self.TYPE, "schema": SCHEMA_VERSION}
        for name in (*own, *_COMMON):
            d[name] = _plain(getattr(self, name))
        return d

    def json_line(self) -> str:
        """The record as one compact JSON line (no newline); computed once."""
        if not self._line:
            self._line.append(json.dumps(self.to_dict(), allow_nan=False, separators=(", ", ": ")))
        return self._line[0]


# ---------------------------------------------------------------------- decisions


@dataclass(frozen=True, kw_only=True)
class Onset(Record):
    """A decision opened: `label` has been on since `start` (stream s)."""

    TYPE: ClassVar[str] = "onset"
    event_id: int
    label: str
    score: float
    start: float
    modalities: tuple[str, ...]
    degraded: bool
    latency_ms: float


@dataclass(frozen=True, kw_only=True)
class Event(Record):
    """A decision closed: `label` from `start` to `end` (stream s).

    `score` is the mean smoothed probability over the segment; `latency_ms` the
    capture -> decision latency of the frame that closed it; `degraded` is True when a
    modality the model takes was missing in any frame of it.
    """

    TYPE: ClassVar[str] = "event"
    event_id: int
    label: str
    score: float
    start: float
    end: float
    modalities: tuple[str, ...]
    degraded: bool
    latency_ms: float


@dataclass(frozen=True, kw_only=True)
class Value(Record):
    """A non-classification output (regression values, an embedding) at `stream_time`."""

    TYPE: ClassVar[str] = "value"
    output: str
    values: tuple[float, ...]
    degraded: bool = False
    latency_ms: float = 0.0


@dataclass(frozen=True, kw_only=True)
class Conflict(Record):
    """The camera and the microphone confidently disagree (e.g. the card says 3, the voice 5).

    Made by `avfuse.engine.agreement` from a model's per-modality heads, once the conflict
    has ended: `start`/`end` are the first and last moments (stream s) both heads were
    confident on these two labels; each score is that head's mean top probability over
    it; `similarity` the mean cosine similarity of the two embeddings (None when the
    model gives none); `conflict_id` counts a stream's conflicts of that model from 1.
    """

    TYPE: ClassVar[str] = "conflict"
    conflict_id: int
    audio_label: str
    audio_score: float
    video_label: str
    video_score: float
    start: float
    end: float
    similarity: float | None = None


# ---------------------------------------------------------------------- health


@dataclass(frozen=True, kw_only=True)
class WarningRecord(Record):
    """Something the user should know; the run goes on unchanged or degraded.

    Attributes:
        source: what it is about ("pipeline", a source or sink name, "backend:ort").
        kind: a stable name (av_sync, audio_gap, disconnected, reconnected, clock_jump,
            track_ended, track_resumed, format_changed, ring_resized, batch, audio_late, ...).
        modality: "audio", "video" or None.
        message: one line for a person, naming the problem and, where there is one, the fix.
        data: kind-specific figures (e.g. ``residual_offset_ms``), for scripts.
    """

    TYPE: ClassVar[str] = "warning"
    source: str
    kind: str
    message: str
    modality: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class FaultRecord(Record):
    """Something failed; `recoverable` says whether the component goes on (retries) or not."""

    TYPE: ClassVar[str] = "fault"
    source: str
    kind: str
    message: str
    recoverable: bool
    modality: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Stats(Record):
    """Live figures, about once a second (for status lines and health checks)."""

    TYPE: ClassVar[str] = "stats"
    fps: float
    frames: int
    events: int
    latency_p50_ms: float
    latency_p99_ms: float
    drops: int
    streams: int
    labels: Mapping[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Summary(Record):
    """The last record of a run.

    Attributes:
        frames: decisions made (frames or audio windows processed).
        events: event records written.
        drops: items lost, by reason.
        sink_errors: failed sink writes (a failed file or stream sink makes the run fail).
        latency_ms: per-stage latency summaries (count, mean, p50, p90, p99, max).
        wall_s: wall time from start to the summary.
        batches: inference calls.
        wakeups: times the pipeline's loop woke up (it sleeps until there is work, so an
            idle or slow stream costs few; a polling loop would show thousands a second).
        streams: per-stream figures (clocks, rings, counters, sync estimate).
        models: per-model figures (decisions, inference calls).
        sinks: figures of sinks that keep some (a webhook's sent / dropped / failures).
        stopped_by: why the run ended: "end" (sources ended), "stop" (asked to),
            "duration", a signal name ("SIGINT", "SIGTERM", "SIGHUP"), "stdout_closed",
            "sinks_failed" or "error".
    """

    TYPE: ClassVar[str] = "summary"
    frames: int
    events: int
    drops: Mapping[str, int]
    sink_errors: int
    latency_ms: Mapping[str, Any]
    wall_s: float
    batches: int
    wakeups: int
    streams: tuple[Mapping[str, Any], ...]
    models: tuple[Mapping[str, Any], ...] = ()
    sinks: tuple[Mapping[str, Any], ...] = ()
    stopped_by: str = "end"


#: every record type, by its JSON `type`
RECORD_TYPES: dict[str, type[Record]] = {
    c.TYPE: c for c in (Onset, Event, Value, Conflict, WarningRecord, FaultRecord, Stats, Summary)
}


# ---------------------------------------------------------------------- sinks' view of a run


@dataclass(frozen=True, kw_only=True)
class StreamInfo:
    """What a sink may want to know about one stream before the first frame."""

    name: str
    fps: float | None
    width: int | None
    height: int | None
    sample_rate: int | None
    live: bool


@dataclass(frozen=True, kw_only=True)
class RunInfo:
    """Handed to every sink's `on_start`, after sources and model are open, before frame 1."""

    model: str
    labels: tuple[str, ...]
    streams: tuple[StreamInfo, ...]
    schema: int = SCHEMA_VERSION

    @property
    def fps(self) -> float | None:
        """Frame rate of the first stream with video (what a video sink writes at)."""
        return next((s.fps for s in self.streams if s.fps), None)


# ---------------------------------------------------------------------- the JSON Schema


def _json_type(hint: Any) -> dict[str, Any]:
    """JSON Schema of one field's type hint (the few shapes records use)."""
    import types
    import typing

    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        subs = [_json_type(a) for a in args if a is not type(None)]
        sub = subs[0] if len(subs) == 1 else {"anyOf": subs}
        return {"anyOf": [sub, {"type": "null"}]} if type(None) in args else sub
    if hint is bool:
        return {"type": "boolean"}
    if hint is int:
        return {"type": "integer"}
    if hint is float:
        return {"type": "number"}
    if hint is str:
        return {"type": "string"}
    if origin in (tuple, list):
        item = _json_type(args[0]) if args else {}
        return {"type": "array", "items": item}
    if origin is not None and issubclass(origin, Mapping):
        val = _json_type(args[1]) if len(args) == 2 and args[1] is not Any else {}
        return {"type": "object", "additionalProperties": val} if val else {"type": "object"}
    if hint is Any:
        return {}
    raise TypeError(f"no JSON Schema for {hint!r}")


def records_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) every record line validates against."""
    defs: dict[str, Any] = {}
    for typ, cls in RECORD_TYPES.items():
        hints = get_type_hints(cls)
        props: dict[str, Any] = {
            "type": {"const": typ},
            "schema": {"const": SCHEMA_VERSION},
        }
        for f in fields(cls):
            if f.name != "_line":
                props[f.name] = _json_type(hints[f.name])
        defs[cls.__name__] = {
            "type": "object",
            "properties": props,
            "required": list(props),  # to_dict writes every field, defaults too
            "additionalProperties": False,
        }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:avfuse:records:{SCHEMA_VERSION}",
        "title": f"avfuse record, schema {SCHEMA_VERSION}",
        "description": "One JSON object per line of `avfuse run --sink jsonl:PATH`.",
        "oneOf": [{"$ref": f"#/$defs/{name}"} for name in defs],
        "$defs": defs,
    }


__all__ = [
    "RECORD_TYPES",
    "SCHEMA_VERSION",
    "Conflict",
    "Event",
    "FaultRecord",
    "Onset",
    "Record",
    "RunInfo",
    "Stats",
    "StreamInfo",
    "Summary",
    "Value",
    "WarningRecord",
    "records_schema",
    "utc_now",
]
