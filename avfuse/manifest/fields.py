"""Reading typed fields out of manifest JSON, with errors that name the field.

Every reader takes the enclosing object, the key and the dotted path of the object
(`inputs[1].audio`), and raises `ManifestError(field="inputs[1].audio.chunk")` with
what was expected. `dataclass_from` fills a frozen parameter dataclass from an object
by its type hints: keys it does not know are refused (a typo is not silently
ignored), keys left out take the dataclass's defaults.
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import MISSING, fields
from typing import Any

from avfuse.errors import ManifestError


def where_(where: str, key: str | int) -> str:
    """The dotted path of `key` inside `where`."""
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


def obj(v: Any, where: str) -> dict[str, Any]:
    """`v` as a JSON object."""
    if not isinstance(v, dict):
        raise ManifestError(f"must be an object, got {_tn(v)}", field=where)
    return v


def _tn(v: Any) -> str:
    return "null" if v is None else type(v).__name__


def coerce(v: Any, hint: Any, where: str) -> Any:
    """`v` checked (and converted: int -> float, list -> tuple) against a type hint."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if v is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return coerce(v, a, where)
            except ManifestError as e:
                errors.append(e)
        raise errors[0]
    if hint is Any:
        return v
    if hint is dict:
        return obj(v, where)
    if hint is list:
        if not isinstance(v, list):
            raise ManifestError(f"must be a list, got {_tn(v)}", field=where)
        return v
    if hint is bool:
        if not isinstance(v, bool):
            raise ManifestError(f"must be true or false, got {_tn(v)}", field=where)
        return v
    if hint is int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ManifestError(f"must be an integer, got {_tn(v)} {v!r}", field=where)
        return v
    if hint is float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ManifestError(f"must be a number, got {_tn(v)} {v!r}", field=where)
        if not math.isfinite(v):
            raise ManifestError(f"must be a finite number, got {v!r}", field=where)
        return float(v)
    if hint is str:
        if not isinstance(v, str):
            raise ManifestError(f"must be a string, got {_tn(v)}", field=where)
        return v
    if origin is tuple:
        if not isinstance(v, list):
            raise ManifestError(f"must be a list, got {_tn(v)}", field=where)
        item = args[0] if args else Any
        if len(args) == 2 and args[1] is Ellipsis or len(args) <= 1:
            return tuple(coerce(x, item, where_(where, i)) for i, x in enumerate(v))
        if len(v) != len(args):
            raise ManifestError(f"must be a list of {len(args)} items", field=where)
        return tuple(
            coerce(x, a, where_(where, i)) for i, (x, a) in enumerate(zip(v, args, strict=True))
        )
    if origin is dict:
        return {str(k): coerce(x, args[1], where_(where, str(k))) for k, x in obj(v, where).items()}
    raise ManifestError(f"cannot be read (no rule for {hint!r})", field=where)


def dataclass_from(cls: type, d: Any, where: str, *, skip: tuple[str, ...] = ()) -> Any:
    """An instance of the frozen dataclass `cls` from JSON object `d` (see the module)."""
    d = obj(d, where)
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls) if f.init}
    for key in d:
        if key not in known and key not in skip:
            raise ManifestError(
                f"unknown setting; known: {', '.join(sorted(known))}", field=where_(where, key)
            )
    kwargs: dict[str, Any] = {}
    for key, f in known.items():
        if key not in d:
            if f.default is MISSING and f.default_factory is MISSING:
                raise ManifestError("is missing", field=where_(where, key))
            continue
        kwargs[key] = coerce(d[key], hints[key], where_(where, key))
    try:
        out = cls(**kwargs)
        validate = getattr(out, "validate", None)
        if validate is not None:
            validate()
    except (ValueError, TypeError) as e:
        raise ManifestError(str(e), field=where) from None
    return out


def need(d: dict[str, Any], key: str, hint: Any, where: str) -> Any:
    """A required field."""
    if key not in d:
        raise ManifestError("is missing", field=where_(where, key))
    return coerce(d[key], hint, where_(where, key))


def opt(d: dict[str, Any], key: str, hint: Any, where: str, default: Any = None) -> Any:
    """An optional field (absent or null: `default`)."""
    if d.get(key) is None:
        return default
    return coerce(d[key], hint, where_(where, key))


def choice(d: dict[str, Any], key: str, options: tuple[str, ...], where: str, default: Any) -> Any:
    """An optional string field restricted to `options`."""
    v = opt(d, key, str, where, default)
    if v is not None and v not in options:
        raise ManifestError(f"{v!r} is not one of {', '.join(options)}", field=where_(where, key))
    return v


__all__ = ["choice", "coerce", "dataclass_from", "need", "obj", "opt", "where_"]
