"""`avfuse bench --backends triton`: client-side latency from LoadGen plus the server's
own statistics (Triton's statistics API) in the result JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from avfuse.cli import main

pytest.importorskip("mlperf_loadgen")


@pytest.mark.timeout(240)
def test_bench_reports_client_latency_and_server_statistics(
    server,  # noqa: ANN001
    repo: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    code = main([
        "bench", "--scenario", "single-stream", "--model", str(repo / "avfuse-late_python"),
        "--backends", "triton", "--triton-url", server.grpc_url,
        "--min-duration-ms", "20", "--min-queries", "30", "--warmup", "2", "--repeats", "1",
        "--data", "synthetic", "--no-plots", "--out", str(tmp_path),
    ])  # fmt: skip
    assert code == 0
    assert "triton t0 fp32" in capsys.readouterr().out
    record = json.loads(next(tmp_path.glob("*-single-stream.json")).read_text())
    (entry,) = [r for r in record["results"] if r["label"] == "triton t0 fp32"]
    assert entry["status"] == "ok", entry
    assert entry["latency_ms"]["p50"] > 0
    srv = entry["server"]
    assert srv["model"] == "avfuse-late_python"
    assert srv["inference_count"] >= 30  # at least the measured queries reached the server
    assert srv["server_mean_us"]["compute_infer"] > 0
    assert srv["client_round_trip_ms"]["count"] >= 30


def test_a_triton_url_without_the_triton_backend_is_refused() -> None:
    assert main(["bench", "--backends", "ort", "--triton-url", "grpc://127.0.0.1:1"]) == 2
