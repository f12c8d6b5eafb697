"""A tiny whole run: every model scenario, JSON written, valid and complete, plots, --compare."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import pytest

from avfuse.bench import BenchConfig, compare, format_comparison, run_bench, validate
from avfuse.bench.e2e import TimedBackend
from avfuse.bench.report import load_result, summary_table, write_result
from avfuse.errors import UsageError

pytest.importorskip(
    "mlperf_loadgen", reason="MLPerf LoadGen is the bench extra: pip install 'avfuse[bench]'"
)

# at least LoadGen's early-stopping minimum for multi-stream's p99 (662), over a 1 ms
# minimum duration: every single- and multi-stream run is VALID by construction
MIN_QUERIES = 700

# the first test to use `record` also runs the benchmark (about 15 s here)
pytestmark = pytest.mark.timeout(120)


def tiny_config(model: Path, out: Path, **kw) -> BenchConfig:
    base = dict(
        scenario="all",
        model=str(model),
        backends=("torch", "ort", "tensorrt"),
        threads=(1,),
        optimizations=("disable", "all"),
        precisions=("fp32", "int8"),
        batch_sizes=(1, 4),
        streams=(1, 2),
        min_duration_ms=1,
        min_query_count=MIN_QUERIES,
        latency_bound_ms=1000.0,  # end-to-end: a bound no run of the tiny model misses
        warmup_queries=2,
        repeats=2,
        accuracy_limit=16,
        data="synthetic",
        e2e_seconds=1.0,
        out_dir=str(out),
    )
    base.update(kw)
    return BenchConfig(**base)


@pytest.fixture(scope="module")
def record(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("results")
    return run_bench(tiny_config(tiny_model, out))


def test_record_is_valid_complete_and_records_settings(record: dict) -> None:
    assert validate(record) == []
    assert record["config"]["min_query_count"] == MIN_QUERIES and record["config"]["seed"] == 0
    assert record["machine"]["cores"] >= 1 and record["versions"]["onnxruntime"]
    assert record["run"]["duration_s"] > 0
    ok = [r for r in record["results"] if r["status"] == "ok"]
    assert {r["scenario"] for r in ok} == {"single-stream", "multi-stream", "offline"}
    for r in ok:
        assert r["warmup"]["queries"] == 2
        assert len(r["repeats"]) == 2
        lat = r["latency_ms"]
        assert lat["p50"] <= lat["p99"] <= lat["max"]
        for rep in r["repeats"]:
            lg = rep["loadgen"]
            if r["scenario"] == "offline":
                # its length is set by the sample count LoadGen derives from the warm-up
                # throughput, so either outcome can happen; LoadGen's rule decides which
                assert rep["queries"] == 1
                assert lg["result"] == ("VALID" if lg["min_duration_satisfied"] else "INVALID")
            else:
                assert lg["result"] == "VALID", (r["label"], r["scenario"], lg)
                assert rep["queries"] >= MIN_QUERIES
        assert lat["count"] == sum(rep["queries"] for rep in r["repeats"])  # pooled repeats
    labels = {r["label"] for r in ok}
    assert {
        "ort t1 opt-disable fp32",
        "ort t1 opt-all fp32",
        "ort t1 opt-all int8-dynamic",
    } <= labels


def test_absent_backends_are_skipped_with_the_reason(record: dict) -> None:
    trt = [r for r in record["results"] if r["variant"]["backend"] == "tensorrt"]
    assert trt and all(r["status"] in ("skipped", "failed") and r["reason"] for r in trt)


def test_offline_and_multi_stream_summaries(record: dict) -> None:
    label = "ort t1 opt-all fp32"
    off = record["offline"][label]
    measured = {
        r["batch"]: r["throughput_per_s"]
        for r in record["results"]
        if r["label"] == label and r["scenario"] == "offline"
    }
    assert set(measured) == {1, 4}
    assert off["best_batch"] == max(measured, key=measured.get)
    assert off["throughput_per_s"] == measured[off["best_batch"]] > 0
    ms = record["multi_stream"][label]
    assert ms["limit_ms"] == pytest.approx(1000 / 30)  # min(bound 1000 ms, one frame at 30 fps)
    # a batch of 1 or 2 of the tiny model takes well under 1 ms, 1/30 of the limit
    assert ms["max_streams"] == 2
    assert [t["streams"] for t in ms["tried"]] == [1, 2]


@pytest.mark.parametrize(
    ("bound_ms", "fps", "max_streams", "tried"),
    [
        (10_000.0, 0.1, 4, [1, 2, 4]),  # a 10 s limit: every count fits
        (1e-6, 30.0, 0, [1]),  # a 1 ns limit: the first count misses, the search stops
    ],
)
def test_stream_search_stops_at_the_first_count_over_the_limit(
    tiny_model: Path, tmp_path: Path, bound_ms: float, fps: float, max_streams: int, tried: list
) -> None:
    from avfuse.backends import create_backend
    from avfuse.bench.data import synthetic_data
    from avfuse.bench.runner import _stream_search
    from avfuse.manifest import load_manifest

    cfg = tiny_config(
        tiny_model,
        tmp_path,
        streams=(1, 2, 4),
        latency_bound_ms=bound_ms,
        fps=fps,
        repeats=1,
        min_query_count=20,
    )
    m = load_manifest(tiny_model)
    out: list[dict] = []
    with create_backend("ort", threads=1).load(m) as be:
        s = _stream_search(be, synthetic_data(m, n=8, seed=0, reason="test"), cfg, {}, out)
    assert s["limit_ms"] == pytest.approx(min(bound_ms, 1000 / fps))
    assert s["max_streams"] == max_streams
    assert [t["streams"] for t in s["tried"]] == tried
    assert [e["streams"] for e in out] == tried  # one multi-stream entry per count measured


def test_write_load_and_refuse_incomplete(record: dict, tmp_path: Path) -> None:
    path = write_result(record, tmp_path)
    assert path.name.endswith("-all.json") and record["machine"]["hostname"] in path.name
    assert load_result(path)["results"] == json.loads(path.read_text())["results"]
    table = summary_table(record)
    assert "| ort t1 opt-all fp32 |" in table and "tensorrt" in table
    broken = copy.deepcopy(record)
    del broken["results"][0]["status"]
    assert validate(broken)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({k: v for k, v in record.items() if k != "machine"}))
    with pytest.raises(UsageError, match="machine"):
        load_result(bad)


def test_plots_are_written(record: dict, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from avfuse.bench.plots import write_plots

    files = write_plots(record, tmp_path / "run")
    names = {p.name for p in files}
    assert {"run-cdf.png", "run-streams.png"} <= names
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in files)


def _with_spread(record: dict, factor: float, rel: float = 0.02) -> dict:
    """A copy whose repeat spreads are `rel` wide around median * factor (latency)."""
    b = copy.deepcopy(record)
    for r in b["results"]:
        if r["status"] != "ok":
            continue
        for k in ("p50", "p90", "p99", "throughput_per_s"):
            f = factor if k != "throughput_per_s" else 1 / factor
            med = 1.0 * f
            r["spread"][k].update(
                median=med, min=med * (1 - rel / 2), max=med * (1 + rel / 2), rel_spread=rel
            )
    return b


def test_compare_same_run_has_no_regression_and_slower_run_is_flagged(record: dict) -> None:
    same = compare(record, copy.deepcopy(record))
    assert same["regressions"] == 0 and same["rows"]
    assert all(abs(v - 1.0) < 1e-9 for row in same["rows"] for v in row["ratios"].values())
    base = _with_spread(record, 1.0)
    slow = compare(base, _with_spread(record, 3.0))
    assert slow["regressions"] == len(slow["rows"])
    for row in slow["rows"]:
        metric = "throughput_per_s" if row["scenario"] == "offline" else "p90"
        assert row["ratios"][metric] == pytest.approx(3.0 if metric == "p90" else 1 / 3.0)
    assert "REGRESSION" in format_comparison(slow, "a.json", "b.json")
    faster = compare(base, _with_spread(record, 1 / 3.0))
    assert faster["regressions"] == 0
    assert all(set(row["verdicts"].values()) == {"improvement"} for row in faster["rows"])


def test_change_within_the_repeat_spread_is_not_flagged(record: dict) -> None:
    b = copy.deepcopy(record)
    for r in (record, b):
        for x in r["results"]:
            if x["status"] == "ok":
                x["spread"]["p50"].update(median=1.0, min=0.8, max=1.25, rel_spread=0.45)
    for x in b["results"]:
        if x["status"] == "ok":
            x["spread"]["p50"].update(median=1.2, min=1.0, max=1.5, rel_spread=0.42)
    c = compare(record, b)
    lat = [row for row in c["rows"] if row["scenario"] != "offline"]
    assert lat and all(row["verdicts"]["p50"] == "" for row in lat)


def _entry(backend: str, threads: int, p50: float, thr: float, device: str = "cpu") -> dict:
    from avfuse.bench.config import Variant

    v = Variant(backend=backend, threads=threads, device=device)
    return {
        "status": "ok",
        "level": "model",
        "scenario": "single-stream",
        "batch": 1,
        "label": v.label,
        "variant": v.to_dict(),
        "throughput_per_s": thr,
        "latency_ms": {"p50": p50, "p90": 2 * p50, "p99": 3 * p50},
    }


def test_speedups_are_against_cpu_torch_at_the_same_threads() -> None:
    from avfuse.bench.report import headline
    from avfuse.bench.runner import add_ratios

    results = [
        _entry("torch", 1, 1.0, 1000.0),
        _entry("torch", 2, 0.5, 2000.0),
        _entry("torch", 1, 0.1, 10000.0, device="cuda"),
        _entry("ort", 1, 0.25, 4000.0),
        _entry("ort", 2, 0.25, 4000.0),
    ]
    add_ratios(results)
    assert results[3]["speedup_vs_torch"]["p50"] == pytest.approx(4.0)
    assert results[3]["speedup_vs_torch"]["torch_label"] == "torch t1 fp32"
    assert results[4]["speedup_vs_torch"]["p90"] == pytest.approx(2.0)
    assert results[4]["speedup_vs_torch"]["throughput"] == pytest.approx(2.0)
    assert results[2]["speedup_vs_torch"]["torch_label"] == "torch t1 fp32"
    line = headline({"results": results})
    assert line is not None and "ort t1 opt-all fp32 is 4.00x (p50)" in line


def test_end_to_end_block_has_the_stage_breakdown_and_the_search(record: dict) -> None:
    e2e = record["end_to_end"]
    assert e2e["status"] == "ok", e2e.get("reason")
    single = e2e["runs"][0]
    assert single["streams"] == 1 and single["frames"] > 0
    assert {"align_wait", "preprocess", "inference"} <= set(single["stages_ms"])
    assert single["per_frame"]["overhead_ms"]["count"] > 0
    check = e2e["check"]
    # 30 fps, 20 ms audio blocks, hop 160 at 16 kHz: one frame in three waits 40 - 33.3 ms
    # for its audio block, the others none, so the wait's p99 is 20/3 ms
    assert check["algorithmic_wait_p99_ms"] == pytest.approx(20 / 3, abs=1e-3)
    # the model-only reference is the p99 of its own LoadGen single-stream run
    assert check["model_p99_ms"] == e2e["model_only_ms"]["p99"]
    assert check["expected_ms"] == pytest.approx(e2e["model_only_ms"]["p99"] + 20 / 3, abs=1e-3)
    assert check["e2e_p99_ms"] == single["latency_ms"]["p99"]
    assert [t["streams"] for t in e2e["search"]][0] == 1
    # the tiny model at 30 fps stays far under a 1000 ms bound
    assert e2e["max_streams"] >= 1, e2e["search"]
    assert "End-to-end" in summary_table(record)


class _SlowFirstQuery(TimedBackend):
    """The real ONNX Runtime backend, whose first call is 300 ms slower (a cold start)."""

    def infer(self, feeds, *, streams=None, borrow=False):  # noqa: ANN001, ANN201 - Backend.infer's
        if self.calls == 0:
            time.sleep(0.3)
        return super().infer(feeds, streams=streams, borrow=borrow)


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("scenario", "size"),
    [("single-stream", {}), ("multi-stream", {"streams": 2}), ("offline", {"batch": 4})],
)
def test_a_slow_first_warmup_query_does_not_end_the_run_before_its_minimum_duration(
    tiny_model: Path, tmp_path: Path, scenario: str, size: dict
) -> None:
    # the warm-up mean (~30 ms over 10 queries, one of them 300 ms) told LoadGen to queue
    # 300 ms / 30 ms = 10 queries (raised to the 100 minimum): done in a few ms -> INVALID
    from avfuse.backends import create_backend
    from avfuse.bench.data import synthetic_data
    from avfuse.bench.runner import _measure
    from avfuse.manifest import load_manifest

    cfg = tiny_config(
        tiny_model, tmp_path, min_duration_ms=300, min_query_count=100, warmup_queries=10
    )
    m = load_manifest(tiny_model)
    with create_backend("ort", threads=1).load(m) as inner:
        be = _SlowFirstQuery(inner)
        e = _measure(
            be, synthetic_data(m, n=8, seed=0, reason="test"), cfg, scenario=scenario, **size
        )
    assert e["warmup"]["first_ms"] >= 300
    assert len(e["repeats"]) == 2
    for rep in e["repeats"]:
        lg = rep["loadgen"]
        assert lg["min_duration_satisfied"] is True, lg
        assert lg["result"] == "VALID", lg
