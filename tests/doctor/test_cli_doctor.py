"""`avfuse doctor` on the command line: the table, the exit status, bad input."""

from __future__ import annotations

import re

import pytest

from tests.doctor.conftest import DoctorRun, run_doctor_cli
from tests.doctor.test_report import ROW_NAMES

#: a table row: two spaces, the status, the name, two or more spaces, the detail
ROW = re.compile(r"^  (pass|fail|absent|warn) +(\S(?:.*?\S)?)  +\S")


@pytest.mark.timeout(120)
def test_the_table_has_one_line_per_row_with_its_status(doctor_json: DoctorRun) -> None:
    run = run_doctor_cli("doctor", "--quick")
    assert run.returncode == doctor_json.returncode, run.stderr[-2000:]
    lines = run.stdout.splitlines()
    statuses = {c["name"]: c["status"] for c in doctor_json.report["checks"]}
    ends = [i for i, ln in enumerate(lines) if ln in ("Fixes", "To add what is absent (optional)")]
    rows = [m.groups() for m in map(ROW.match, lines[: min(ends, default=len(lines))]) if m]
    assert [name for _, name in rows] == ROW_NAMES
    assert all(status == statuses[name] for status, name in rows)
    counts = doctor_json.report["counts"]
    assert lines[-1].startswith(
        f"{counts['pass']} pass, {counts['fail']} fail, {counts['absent']} absent, "
        f"{counts['warn']} warn: "
    )
    for c in doctor_json.report["checks"]:
        if c["status"] == "absent" and c["fix"]:
            assert f"  {c['name']}: {c['fix']}" in lines


@pytest.mark.timeout(60)
def test_a_model_path_that_does_not_exist_is_a_usage_error(tmp_path) -> None:
    run = run_doctor_cli("doctor", "--model", str(tmp_path / "nope"))
    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr.strip().splitlines() == [
        f"avfuse doctor: error: --model {tmp_path / 'nope'} does not exist: give a model "
        "folder, its manifest.json or its model.onnx"
    ]
