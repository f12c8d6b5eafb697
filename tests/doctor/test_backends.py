"""Backend rows: the CPU backends match the reference and are timed; a broken model or a
backend that computes something else is a fail row with its fix."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from avfuse.assets import default_model_path
from avfuse.doctor.backends import (
    PASS_ATOL,
    REFERENCE,
    SPECS,
    compare,
    measure_backend,
    reference_outputs,
    verdict,
)
from avfuse.doctor.report import SCHEMA_FILE
from avfuse.doctor.samples import build_samples
from avfuse.manifest import load_manifest
from tests.doctor.conftest import DoctorRun, run_doctor_cli

ORT_CPU = SPECS[0]


@pytest.mark.timeout(120)
def test_onnx_runtime_cpu_passes_with_full_agreement_and_a_latency(doctor_json: DoctorRun) -> None:
    row = doctor_json.row("ONNX Runtime CPU")
    assert row["status"] == "pass", row
    m = row["measure"]
    assert m["top1_agreement"] == 1.0 and m["max_abs_error"] <= PASS_ATOL
    assert m["samples"] == 60 and m["reference"] == REFERENCE
    assert m["latency_calls"] == 30  # --quick
    assert 0 < m["latency_median_ms"] <= m["latency_p99_ms"]
    assert "top-1 agreement 1.000 (60/60)" in row["detail"]


@pytest.mark.timeout(120)
def test_torch_cpu_runs_the_checkpoint_and_agrees_with_the_onnx_reference(
    doctor_json: DoctorRun,
) -> None:
    if doctor_json.row("torch")["status"] == "absent":
        pytest.skip("torch is not installed here")
    row = doctor_json.row("torch CPU")
    assert row["status"] == "pass", row
    assert row["measure"]["top1_agreement"] == 1.0
    assert row["measure"]["max_abs_error"] <= PASS_ATOL


def _broken_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(default_model_path().parent, folder)
    onnx = folder / "model.onnx"
    data = onnx.read_bytes()
    onnx.write_bytes(data[: len(data) // 3])  # a download cut short
    return folder


@pytest.mark.timeout(180)
def test_a_corrupt_model_is_a_fail_row_with_the_fix_and_exit_1(tmp_path: Path) -> None:
    folder = _broken_copy(tmp_path)
    run = run_doctor_cli("doctor", "--json", "--quick", "--model", str(folder))
    assert run.returncode == 1, run.stderr[-2000:]
    report = run.report
    jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text())).validate(report)
    assert report["ok"] is False and report["exit_status"] == 1
    model = run.row("model")
    assert model["status"] == "fail" and "does not match the recorded hash" in model["detail"]
    assert "re-export the model" in model["fix"]
    ort = run.row("ONNX Runtime CPU")
    assert ort["status"] == "fail" and "corrupt" in ort["detail"]
    assert "re-export the model" in ort["fix"] and ort["measure"] is None
    table = run_doctor_cli("doctor", "--quick", "--model", str(folder))
    assert table.returncode == 1
    lines = table.stdout.splitlines()
    assert f"  fail    ONNX Runtime CPU: {ort['fix']}" in lines
    assert lines[-1].endswith("a check failed (exit 1)")


@pytest.fixture(scope="module")
def parity_kit() -> tuple:
    m = load_manifest(default_model_path())
    s = build_samples(m)
    return m, s, reference_outputs(m, s)


@pytest.mark.timeout(120)
def test_a_backend_that_disagrees_with_the_reference_is_a_fail_row_with_the_fix(
    parity_kit: tuple,
) -> None:
    m, s, ref = parity_kit
    wrong = [{k: v[:, ::-1].copy() for k, v in r.items()} for r in ref]  # classes reversed
    row = measure_backend(ORT_CPU, m, s, wrong, calls=3, fix_model="-")
    assert row.status == "fail"
    assert row.measure is not None and row.measure.top1_agreement < 0.5
    assert row.fix is not None and ORT_CPU.fix in row.fix


@pytest.mark.timeout(120)
def test_a_small_error_with_every_top1_agreeing_is_a_warning_not_a_pass(
    parity_kit: tuple,
) -> None:
    m, s, ref = parity_kit
    off = [{k: v + np.float32(0.01) for k, v in r.items()} for r in ref]  # as fp16 would
    row = measure_backend(ORT_CPU, m, s, off, calls=3, fix_model="-")
    assert row.status == "warn" and row.fix
    assert row.measure is not None and row.measure.top1_agreement == 1.0
    assert 0.009 < row.measure.max_abs_error < 0.011


def test_a_nan_output_is_a_parity_failure() -> None:
    ref = [{"logits": np.array([[0.0, 1.0, 0.5]], np.float32)}]
    out = [{"logits": np.array([[0.0, np.nan, 0.5]], np.float32)}]
    agreement, err, _ = compare(out, ref, [1], "logits")
    assert err == float("inf")
    assert verdict(agreement, err) == "fail"
