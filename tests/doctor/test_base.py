"""The doctor never hangs: bounded checks and external commands under a timeout."""

from __future__ import annotations

import sys
import threading

import pytest

from avfuse.doctor.base import Check, bounded, run_command


@pytest.mark.timeout(20)
def test_a_check_that_does_not_answer_becomes_a_fail_row_at_its_deadline() -> None:
    release = threading.Event()

    def stuck() -> Check:
        release.wait(60)  # a driver call that never returns
        return Check(name="GPU", section="gpu", status="pass", detail="late")

    try:
        row = bounded(stuck, name="GPU", section="gpu", timeout_s=0.3, fix="reboot")
    finally:
        release.set()
    assert row.status == "fail"
    assert row.detail == "did not answer within 0.3 s"
    assert row.fix == "reboot" and row.name == "GPU" and row.section == "gpu"


@pytest.mark.timeout(20)
def test_a_check_that_raises_becomes_a_fail_row_naming_the_error() -> None:
    def broken() -> Check:
        raise RuntimeError("libfoo.so: cannot open shared object file")

    row = bounded(broken, name="CUDA runtime", section="gpu", timeout_s=5, fix="reinstall")
    assert row.status == "fail" and row.fix == "reinstall"
    assert "RuntimeError: libfoo.so: cannot open shared object file" in row.detail


@pytest.mark.timeout(30)
def test_an_external_command_that_hangs_is_stopped_at_its_timeout() -> None:
    res = run_command([sys.executable, "-c", "import time; time.sleep(120)"], timeout_s=0.5)
    assert res.returncode is None
    assert res.first_line == f"{sys.executable} did not answer within 0.5 s"


@pytest.mark.timeout(20)
def test_a_command_that_is_not_installed_is_a_result_not_an_exception(tmp_path) -> None:
    res = run_command([str(tmp_path / "nvidia-smi"), "-L"])
    assert res.returncode is None
    assert "cannot run" in res.first_line
