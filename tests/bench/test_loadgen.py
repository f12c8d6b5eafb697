"""The LoadGen system under test, on a real ONNX Runtime session and the real LoadGen."""

from __future__ import annotations

from pathlib import Path

import pytest

from avfuse.backends import create_backend
from avfuse.bench.data import synthetic_data
from avfuse.bench.loadgen import latency_hint_ms, parse_summary, run_scenario, warmup
from avfuse.manifest import load_manifest

pytest.importorskip(
    "mlperf_loadgen", reason="MLPerf LoadGen is the bench extra: pip install 'avfuse[bench]'"
)

# LoadGen's early-stopping rule needs at least this many queries to bound the percentile it
# reports, whatever the latencies: 64 for single-stream's p90, 662 for multi-stream's p99.
EARLY_STOP_QUERIES = {"single-stream": 64, "multi-stream": 662}


@pytest.fixture(scope="module")
def loaded(tiny_model: Path):
    m = load_manifest(tiny_model)
    data = synthetic_data(m, n=16, seed=1, reason="test")
    with create_backend("ort", threads=1).load(m) as be:
        yield be, data


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("scenario", "streams"), [("single-stream", 1), ("multi-stream", 3)])
@pytest.mark.parametrize(
    ("expected_ms", "min_duration_ms", "result"),
    [
        # LoadGen queues min_duration / expected latency queries (at least min_query_count)
        # and stops once both minimums are met. A 1 us hint queues 20000 for 20 ms, more
        # than 20 ms of real queries: every rule holds -> VALID.
        (0.001, 20, "VALID"),
        # A 1 s hint queues only the minimum count for a 10 s run; those real queries are
        # over in milliseconds -> min duration not met -> INVALID.
        (1000.0, 10_000, "INVALID"),
    ],
)
def test_validity_follows_loadgen_rules_and_every_query_is_answered(
    loaded,
    tmp_path: Path,
    scenario: str,
    streams: int,
    expected_ms: float,
    min_duration_ms: int,
    result: str,
) -> None:
    be, data = loaded
    warm = warmup(be, data, batch=streams, queries=3)
    assert warm["queries"] == 3 and warm["first_ms"] > 0
    queries = EARLY_STOP_QUERIES[scenario]
    r = run_scenario(
        be,
        data,
        scenario=scenario,
        streams=streams,
        min_duration_ms=min_duration_ms,
        min_query_count=queries,
        expected_ms=expected_ms,
        workdir=tmp_path,
    )
    lg = r["loadgen"]
    assert lg["result"] == result
    assert lg["min_duration_satisfied"] is (result == "VALID")
    assert lg["min_queries_satisfied"] is True and lg["early_stopping_satisfied"] is True
    assert r["batch"] == streams
    if result == "INVALID":
        assert r["latency_ms"]["count"] == queries  # exactly the queued minimum
    else:
        assert r["latency_ms"]["count"] >= queries  # one latency per query LoadGen issued
    assert r["samples"] == r["latency_ms"]["count"] * streams
    assert 0 < lg["latency_ms"]["p50"] <= lg["latency_ms"]["max"]
    assert list(tmp_path.iterdir()) == []  # LoadGen's logs are cleaned up


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("expected_ms", "min_duration_ms", "result"),
    [
        # claiming 1 s per batch of 4 (~15000x the real ~0.07 ms): LoadGen sends 48 samples
        # for a 10 s run (4 / s x 1.1 x 10 s x 1.1), over in milliseconds -> INVALID
        (1000.0, 10_000, "INVALID"),
        # claiming 4 us (~18x faster than it is): 24200 samples for 20 ms, which take
        # about 18 x 20 ms -> the minimum duration is met -> VALID
        (0.004, 20, "VALID"),
    ],
)
def test_offline_validity_follows_the_minimum_duration(
    loaded, tmp_path: Path, expected_ms: float, min_duration_ms: int, result: str
) -> None:
    be, data = loaded
    r = run_scenario(
        be,
        data,
        scenario="offline",
        batch=4,
        min_duration_ms=min_duration_ms,
        min_query_count=1,
        expected_ms=expected_ms,
        workdir=tmp_path,
    )
    lg = r["loadgen"]
    assert lg["result"] == result
    assert lg["min_duration_satisfied"] is (result == "VALID")
    assert lg["min_queries_satisfied"] is True
    assert r["latency_ms"]["count"] == 1  # offline: every sample in one query
    assert r["samples"] == (48 if result == "INVALID" else 24200)
    assert lg["samples_per_second"] > 0
    assert list(tmp_path.iterdir()) == []


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


@pytest.mark.parametrize("scenario", ["single-stream", "multi-stream", "offline"])
def test_latency_hint_is_below_the_fastest_warmup_query_not_the_mean(scenario: str) -> None:
    # one 300 ms first query among 0.05 ms ones: the mean (30 ms) would queue 600x too few
    warm = {"queries": 10, "first_ms": 300.0, "min_ms": 0.05, "mean_ms": 30.045}
    assert latency_hint_ms(warm, scenario=scenario, min_duration_ms=1000) < 0.05


def test_latency_hint_trades_margin_for_memory_but_stays_at_most_the_fastest_query() -> None:
    # LoadGen's own 600 s minimum: a quarter of a 4 ms query would queue 600 000 queries
    warm = {"queries": 10, "first_ms": 9.0, "min_ms": 4.0, "mean_ms": 4.5}
    # the margin gives way to memory: 600 s / 3 ms = 200 000 queued queries, the budget
    assert latency_hint_ms(warm, scenario="multi-stream", min_duration_ms=0) == pytest.approx(3.0)
    # a 1 us query needs 600 million queries whatever the hint: it stays at that latency
    fast = {"queries": 10, "first_ms": 0.001, "min_ms": 0.001, "mean_ms": 0.001}
    assert latency_hint_ms(fast, scenario="single-stream", min_duration_ms=0) <= 0.001
