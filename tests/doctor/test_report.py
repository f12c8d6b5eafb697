"""The doctor's JSON: schema 1, the published schema file, stable row names; the row type."""

from __future__ import annotations

import json

import jsonschema
import pytest

from avfuse.doctor.base import Check, Measure
from avfuse.doctor.report import SCHEMA_FILE, DoctorReport, doctor_schema
from tests.doctor.conftest import DoctorRun

#: the rows `avfuse doctor` prints, in order: scripts read them by name
ROW_NAMES = [
    "Python", "avfuse", "numpy", "ONNX Runtime",
    "CUDA driver", "CUDA runtime", "GPU", "TensorRT", "torch",
    "FFmpeg", "PyAV", "OpenCV", "PortAudio", "microphones", "cameras",
    "model",
    "ONNX Runtime CPU", "ONNX Runtime CUDA EP", "ONNX Runtime TensorRT EP", "TensorRT engine",
    "torch CPU", "torch CUDA",
]  # fmt: skip


def test_the_published_schema_file_is_the_one_the_code_makes() -> None:
    assert json.loads(SCHEMA_FILE.read_text(encoding="utf-8")) == doctor_schema()
    jsonschema.Draft202012Validator.check_schema(doctor_schema())


@pytest.mark.timeout(120)
def test_the_json_of_a_real_run_validates_against_the_published_schema(
    doctor_json: DoctorRun,
) -> None:
    report = doctor_json.report
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(report)
    assert report["schema"] == 1
    assert report["quick"] is True
    assert [c["name"] for c in report["checks"]] == ROW_NAMES
    counts = {s: sum(c["status"] == s for c in report["checks"]) for s in report["counts"]}
    assert counts == report["counts"]
    assert report["exit_status"] == doctor_json.returncode == (0 if report["ok"] else 1)


def test_the_schema_refuses_a_row_with_an_unknown_status_or_a_missing_key(
    doctor_json: DoctorRun,
) -> None:
    validator = jsonschema.Draft202012Validator(doctor_schema())
    bad = json.loads(doctor_json.stdout)
    bad["checks"][0]["status"] = "ok"
    assert not validator.is_valid(bad)
    bad = json.loads(doctor_json.stdout)
    del bad["checks"][0]["fix"]
    assert not validator.is_valid(bad)


def test_a_failed_or_warned_row_must_carry_its_fix() -> None:
    for status in ("fail", "warn"):
        with pytest.raises(ValueError, match="needs its fix"):
            Check(name="x", section="software", status=status, detail="broken")
    with pytest.raises(ValueError, match="status must be one of"):
        Check(name="x", section="software", status="ok", detail="fine")  # type: ignore[arg-type]


def test_a_non_finite_figure_is_written_as_null_not_as_invalid_json() -> None:
    m = Measure(
        samples=3, reference="ref", top1_agreement=0.0, max_abs_error=float("inf"),
        label_accuracy=None, latency_calls=1, latency_median_ms=float("nan"), latency_p99_ms=1.0,
    )  # fmt: skip
    row = Check(name="b", section="backends", status="fail", detail="d", fix="f", measure=m)
    report = DoctorReport(
        checks=(row,), avfuse="0", model="m", quick=False, created="t", elapsed_s=1.0
    )
    doc = json.loads(report.to_json())  # allow_nan=False: NaN or inf would raise here
    assert doc["checks"][0]["measure"]["max_abs_error"] is None
    assert doc["checks"][0]["measure"]["latency_median_ms"] is None
    jsonschema.Draft202012Validator(doctor_schema()).validate(doc)
    assert report.exit_status == 1


def test_two_rows_of_one_name_are_refused() -> None:
    row = Check(name="x", section="software", status="pass", detail="d")
    with pytest.raises(ValueError, match="unique"):
        DoctorReport(checks=(row, row), avfuse="0", model="m", quick=False, created="t",
                     elapsed_s=0.0)  # fmt: skip
