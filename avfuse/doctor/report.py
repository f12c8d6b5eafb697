"""The doctor's report: the rows, the table a person reads, the JSON a script reads, its schema.

The JSON (`DoctorReport.to_dict`) carries ``"schema": SCHEMA_VERSION`` and validates
against the JSON Schema `doctor_schema()` makes, published as
``avfuse/schema/doctor.schema.json`` (`write_schema` writes it; a test keeps the file
and the code equal). A field added to `Check` or `Measure` changes the schema; a change
that breaks readers bumps `SCHEMA_VERSION`.
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, get_type_hints

from avfuse.doctor.base import SECTIONS, STATUSES, Check, Measure

SCHEMA_VERSION = 1
SCHEMA_FILE = Path(__file__).resolve().parents[1] / "schema" / "doctor.schema.json"
_STATUS_WIDTH = max(len(s) for s in STATUSES)


@dataclass(frozen=True, kw_only=True)
class DoctorReport:
    """Everything one doctor run found.

    Attributes:
        checks: the rows, in table order.
        avfuse: the avfuse version that ran them.
        model: the model the backends were checked with.
        quick: whether fewer latency calls were made.
        created: UTC time of the run (ISO 8601 with a Z).
        elapsed_s: how long the run took.
    """

    checks: tuple[Check, ...]
    avfuse: str
    model: str
    quick: bool
    created: str
    elapsed_s: float

    def __post_init__(self) -> None:
        names = [c.name for c in self.checks]
        if len(set(names)) != len(names):
            raise ValueError(f"row names must be unique, got {names}")

    @property
    def counts(self) -> dict[str, int]:
        """Rows per status."""
        return {s: sum(c.status == s for c in self.checks) for s in STATUSES}

    @property
    def ok(self) -> bool:
        """True when nothing failed (absent optional parts and warnings are fine)."""
        return not any(c.status == "fail" for c in self.checks)

    @property
    def exit_status(self) -> int:
        """0 when nothing failed, 1 when a check failed."""
        return 0 if self.ok else 1

    def row(self, name: str) -> Check:
        """The row named `name` (KeyError when there is none)."""
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (see the module docstring)."""
        return {
            "schema": SCHEMA_VERSION,
            "avfuse": self.avfuse,
            "created": self.created,
            "model": self.model,
            "quick": self.quick,
            "elapsed_s": round(self.elapsed_s, 3),
            "ok": self.ok,
            "exit_status": self.exit_status,
            "counts": self.counts,
            "checks": [c.to_dict() for c in self.checks],
        }

    def to_json(self) -> str:
        """`to_dict` as indented JSON text."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def table(self) -> str:
        """The report as a person reads it: one line per row, then the fixes."""
        width = max(len(c.name) for c in self.checks)
        out = [f"avfuse doctor: avfuse {self.avfuse}, model {self.model} ({self.elapsed_s:.1f} s)"]
        for section in SECTIONS:
            rows = [c for c in self.checks if c.section == section]
            if not rows:
                continue
            head = section
            measured = next((c.measure for c in rows if c.measure is not None), None)
            if measured is not None:
                head += f" (each against {measured.reference}, {measured.samples} samples)"
            out += ["", head]
            out += [f"  {c.status:<{_STATUS_WIDTH}}  {c.name:<{width}}  {c.detail}" for c in rows]
        broken = [c for c in self.checks if c.status in ("fail", "warn")]
        if broken:
            out += ["", "Fixes"]
            out += [f"  {c.status:<{_STATUS_WIDTH}}  {c.name}: {c.fix}" for c in broken]
        missing = [c for c in self.checks if c.status == "absent" and c.fix]
        if missing:
            out += ["", "To add what is absent (optional)"]
            out += [f"  {c.name}: {c.fix}" for c in missing]
        counts = ", ".join(f"{n} {s}" for s, n in self.counts.items())
        verdict = "nothing failed" if self.ok else "a check failed"
        out += ["", f"{counts}: {verdict} (exit {self.exit_status})"]
        return "\n".join(out)


# ---------------------------------------------------------------------- the JSON Schema


def _json_type(hint: Any) -> dict[str, Any]:
    """JSON Schema of one field's type hint (the few shapes the rows use)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        subs = [_json_type(a) for a in args if a is not type(None)]
        sub = subs[0] if len(subs) == 1 else {"anyOf": subs}
        return {"anyOf": [sub, {"type": "null"}]} if type(None) in args else sub
    if origin is typing.Literal:
        return {"enum": list(args)}
    if hint is Measure:
        return {"$ref": "#/$defs/Measure"}
    simple = {bool: "boolean", int: "integer", float: "number", str: "string"}
    if hint in simple:
        return {"type": simple[hint]}
    raise TypeError(f"no JSON Schema for {hint!r}")


def _object(cls: type, **override: dict[str, Any]) -> dict[str, Any]:
    hints = get_type_hints(cls)
    props = {f.name: override.get(f.name) or _json_type(hints[f.name]) for f in fields(cls)}
    return {
        "type": "object",
        "properties": props,
        "required": list(props),  # to_dict writes every field, empty ones as null
        "additionalProperties": False,
    }


def doctor_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of `avfuse doctor --json`."""
    counts = {s: {"type": "integer", "minimum": 0} for s in STATUSES}
    props: dict[str, Any] = {
        "schema": {"const": SCHEMA_VERSION},
        "avfuse": {"type": "string"},
        "created": {"type": "string"},
        "model": {"type": "string"},
        "quick": {"type": "boolean"},
        "elapsed_s": {"type": "number", "minimum": 0},
        "ok": {"type": "boolean"},
        "exit_status": {"enum": [0, 1]},
        "counts": {
            "type": "object",
            "properties": counts,
            "required": list(counts),
            "additionalProperties": False,
        },
        "checks": {"type": "array", "items": {"$ref": "#/$defs/Check"}},
    }
    fraction = {"anyOf": [{"type": "number", "minimum": 0, "maximum": 1}, {"type": "null"}]}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:avfuse:doctor:{SCHEMA_VERSION}",
        "title": f"avfuse doctor report, schema {SCHEMA_VERSION}",
        "description": "What `avfuse doctor --json` prints: one row per check.",
        "type": "object",
        "properties": props,
        "required": list(props),
        "additionalProperties": False,
        "$defs": {
            "Check": _object(Check, section={"enum": list(SECTIONS)}),
            "Measure": _object(Measure, top1_agreement=fraction, label_accuracy=fraction),
        },
    }


def write_schema(path: str | Path = SCHEMA_FILE) -> Path:
    """Write `doctor_schema()` to `path` (by default the published file)."""
    p = Path(path)
    p.write_text(json.dumps(doctor_schema(), indent=2) + "\n", encoding="utf-8")
    return p


__all__ = [
    "SCHEMA_FILE",
    "SCHEMA_VERSION",
    "DoctorReport",
    "doctor_schema",
    "write_schema",
]
