"""The LoadGen system under test, on a real ONNX Runtime session and the real LoadGen."""

from __future__ import annotations

from pathlib import Path

import pytest

from avfuse.backends import create_backend
from avfuse.bench.data import synthetic_data
from avfuse.bench.loadgen import parse_summary, run_scenario, warmup
from avfuse.manifest import load_manifest

pytest.importorskip("mlperf_loadgen")


@pytest.fixture(scope="module")
def loaded(tiny_model: Path):
    m = load_manifest(tiny_model)
    data = synthetic_data(m, n=16, seed=1, reason="test")
    with create_backend("ort", threads=1).load(m) as be:
        yield be, data


@pytest.mark.parametrize(
    ("scenario", "batch", "streams", "per_query"),
    [("single-stream", 1, 1, 1), ("multi-stream", 1, 3, 3), ("offline", 4, 1, None)],
)
def test_scenarios_issue_queries_and_parse_loadgen_summary(
    loaded, tmp_path: Path, scenario: str, batch: int, streams: int, per_query: int | None
) -> None:
    be, data = loaded
    warm = warmup(be, data, batch=max(batch, streams), queries=3)
    assert warm["queries"] == 3
    r = run_scenario(
        be,
        data,
        scenario=scenario,
        batch=batch,
        streams=streams,
        min_duration_ms=50,
        min_query_count=20,
        expected_ms=warm["mean_ms"],
        workdir=tmp_path,
    )
    assert r["loadgen"]["result"] in ("VALID", "INVALID")
    assert r["loadgen"]["min_queries_satisfied"] is True
    assert r["samples"] >= 20
    if per_query is not None:
        assert r["samples"] == r["latency_ms"]["count"] * per_query
        assert r["loadgen"]["latency_ms"]["p99"] > 0
    else:
        assert r["loadgen"]["samples_per_second"] > 0
    assert list(tmp_path.iterdir()) == []  # LoadGen's logs are cleaned up


def test_parse_summary_reads_validity_and_percentiles() -> None:
    text = (
        "Result is : INVALID\n  Min duration satisfied : NO\n  Min queries satisfied : Yes\n"
        "  Early stopping satisfied: Yes\n50.00 percentile latency (ns)   : 1500000\n"
        "99.90 percentile latency (ns)   : 3000000\nMax latency (ns)                : 4000000\n"
        "Samples per second: 123.5\n"
    )
    s = parse_summary(text)
    assert s["result"] == "INVALID" and s["min_duration_satisfied"] is False
    assert s["latency_ms"] == {"p50": 1.5, "p99.9": 3.0, "max": 4.0}
    assert s["samples_per_second"] == 123.5
