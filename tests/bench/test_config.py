"""BenchConfig validation and the variant expansion."""

from __future__ import annotations

import pytest

from avfuse.bench.config import BenchConfig, Variant
from avfuse.errors import UsageError


def test_variants_cover_backends_side_by_side_and_are_unique() -> None:
    cfg = BenchConfig(backends=("torch", "ort", "tensorrt"), threads=(1, 2))
    labels = [v.label for v in cfg.variants()]
    assert len(labels) == len(set(labels))
    assert "torch t1 fp32" in labels and "torch t2 fp32" in labels
    for level in ("disable", "basic", "extended", "all"):
        assert f"ort t1 opt-{level} fp32" in labels
    assert "ort t2 opt-all fp32" in labels
    assert "ort t1 opt-all int8-dynamic" in labels
    assert any(v.backend == "tensorrt" and v.device == "cuda" for v in cfg.variants())


def test_static_int8_and_fp16_variants_when_asked() -> None:
    cfg = BenchConfig(
        backends=("ort",),
        threads=(1,),
        precisions=("fp32", "int8", "fp16"),
        quant=("dynamic", "static"),
        optimizations=("all",),
    )
    labels = {v.label for v in cfg.variants()}
    assert labels == {
        "ort t1 opt-all fp32",
        "ort t1 opt-all int8-dynamic",
        "ort t1 opt-all int8-static",
        "ort t1 opt-all fp16",
    }


def test_scenario_all_expands_in_order() -> None:
    assert BenchConfig(scenario="all").scenarios() == (
        "single-stream",
        "multi-stream",
        "offline",
        "end-to-end",
    )
    assert Variant(backend="ort").to_dict()["label"] == "ort t1 opt-all fp32"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"scenario": "server"},
        {"precisions": ("fp8",)},
        {"optimizations": ("max",)},
        {"threads": (0,)},
        {"batch_sizes": ()},
        {"streams": (4, 2)},
        {"repeats": 0},
        {"fps": 0.0},
        {"quant": ("qat",)},
    ],
)
def test_contradictory_settings_are_refused(kwargs: dict) -> None:
    with pytest.raises(UsageError):
        BenchConfig(**kwargs)


def test_unknown_data_choice_is_refused() -> None:
    with pytest.raises(UsageError, match="data"):
        BenchConfig(data="imagenet")


@pytest.mark.parametrize(
    ("kwargs", "single", "multi"),
    [
        # the defaults: 100 queries, and multi-stream at LoadGen's early-stopping minimum for
        # its p99 (662): below that every multi-stream run is INVALID by construction
        ({}, 100, 662),
        ({"min_query_count": 20}, 20, 662),  # a quick run does not lower multi-stream's floor
        ({"min_query_count": 2000}, 2000, 2000),  # a longer one raises it
        ({"min_query_count": 0}, 0, 0),  # LoadGen's own rules, in every scenario
        ({"min_query_count": 20, "multi_stream_min_query_count": 0}, 20, 20),
    ],
)
def test_multi_stream_minimum_query_count_meets_early_stopping(
    kwargs: dict, single: int, multi: int
) -> None:
    cfg = BenchConfig(**kwargs)
    assert cfg.min_queries("single-stream") == single
    assert cfg.min_queries("offline") == single
    assert cfg.min_queries("multi-stream") == multi


def test_negative_minimum_query_counts_are_refused() -> None:
    for kwargs in ({"min_query_count": -1}, {"multi_stream_min_query_count": -1}):
        with pytest.raises(UsageError, match="min-queries"):
            BenchConfig(**kwargs)
