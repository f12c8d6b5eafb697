"""The API's docstrings show only calls that exist: every keyword in `avfuse.api`'s
examples and in `run`'s Args is a parameter of what it is passed to."""

from __future__ import annotations

import ast
import inspect
import re
import textwrap

import pytest

import avfuse.api as api
from avfuse.engine.pipeline import PipelineConfig

pytestmark = pytest.mark.timeout(60)


def _example_calls(doc: str) -> list[ast.Call]:
    """The calls in the indented example lines of a docstring."""
    lines = [ln for ln in doc.splitlines() if ln.startswith("    ")]
    code = textwrap.dedent("\n".join(lines))
    tree = ast.parse(code)
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)]


def test_every_keyword_of_the_module_examples_is_a_parameter() -> None:
    targets = {
        "run": inspect.signature(api.start).parameters,
        "demo": inspect.signature(api.demo).parameters,
        "PipelineConfig": inspect.signature(PipelineConfig).parameters,
    }
    calls = _example_calls(api.__doc__ or "")
    seen = set()
    for call in calls:
        name = call.func.id if isinstance(call.func, ast.Name) else None
        if name not in targets:
            continue
        for kw in call.keywords:
            assert kw.arg in targets[name], f"{name}({kw.arg}=...) in avfuse.api's docstring"
            seen.add((name, kw.arg))
    assert ("run", "sources") in seen and ("PipelineConfig", "av_offset_ms") in seen


def test_every_argument_run_documents_is_a_parameter_of_start() -> None:
    doc = api.run.__doc__ or ""
    args = doc.split("Args (the main ones):", 1)[1].split("Returns", 1)[0]
    names = set()
    for line in args.splitlines():
        m = re.match(r"\s{8}([a-z_]+(?: / [a-z_]+)*):", line)
        if m:
            names.update(m.group(1).split(" / "))
    assert {"model", "backend", "device", "provider", "precision", "options"} <= names
    params = inspect.signature(api.start).parameters
    assert names <= set(params), names - set(params)
