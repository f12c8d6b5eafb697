"""`avfuse bench` and `avfuse bench --compare` through the real CLI entry point."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from avfuse.cli import main

pytest.importorskip("mlperf_loadgen")


def _run(tiny_model: Path, out: Path, capsys: pytest.CaptureFixture) -> tuple[Path, str]:
    code = main(
        [
            "bench",
            "--scenario",
            "single-stream",
            "--model",
            str(tiny_model),
            "--backends",
            "ort,tensorrt",
            "--threads",
            "1",
            "--opt-levels",
            "all",
            "--precisions",
            "fp32",
            "--min-duration-ms",
            "20",
            "--min-queries",
            "10",
            "--warmup",
            "2",
            "--repeats",
            "2",
            "--data",
            "synthetic",
            "--out",
            str(out),
            "--summary",
            str(out / "summary.md"),
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    files = sorted(out.glob("*-single-stream.json"))
    assert len(files) == 1
    return files[0], text


def test_bench_writes_json_table_and_compares(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path, text = _run(tiny_model, tmp_path / "a", capsys)
    assert "| ort t1 opt-all fp32 |" in text and "tensorrt" in text
    assert (tmp_path / "a" / "summary.md").read_text().startswith("Machine:")
    assert path.with_suffix(".md").exists()
    record = json.loads(path.read_text())
    assert record["config"]["scenario"] == "single-stream"

    slow = copy.deepcopy(record)
    for r in slow["results"]:
        if r["status"] == "ok":
            for k in ("p50", "p90", "p99"):
                for f in ("median", "min", "max"):
                    r["spread"][k][f] *= 5
    slow_path = tmp_path / "slow.json"
    slow_path.write_text(json.dumps(slow))
    assert main(["bench", "--compare", str(path), str(path)]) == 0
    assert "0 regression(s)" in capsys.readouterr().out
    assert main(["bench", "--compare", str(path), str(slow_path)]) == 1
    assert "REGRESSION" in capsys.readouterr().out


def test_compare_refuses_an_incomplete_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert main(["bench", "--compare", str(bad), str(bad)]) == 2
    assert "incomplete" in capsys.readouterr().err


def test_bad_options_exit_2(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as e:
        main(["bench", "--precisions", "fp8"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "precision" in err and len(err.strip().splitlines()) == 1
