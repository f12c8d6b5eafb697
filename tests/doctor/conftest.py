"""Fixtures of the doctor tests: `avfuse doctor` run as a user runs it, in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
#: the environment the suite started with: the `pulse` fixture points PULSE_SERVER at its
#: own server for the rest of the session, and runs compared with each other must not see
#: different sound servers depending on the order the tests ran in
BASE_ENV = dict(os.environ)


@dataclass(frozen=True)
class DoctorRun:
    """One `avfuse doctor` run: its exit status, output and (with --json) its report."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def report(self) -> dict[str, Any]:
        return json.loads(self.stdout)

    def row(self, name: str) -> dict[str, Any]:
        rows = [c for c in self.report["checks"] if c["name"] == name]
        assert len(rows) == 1, f"{name!r}: {len(rows)} rows"
        return rows[0]


def run_doctor_cli(
    *args: str, env: dict[str, str] | None = None, prelude: str = "", timeout: float = 120
) -> DoctorRun:
    """`python -m avfuse.cli doctor ARGS` from this checkout (`prelude` runs first; `env`
    defaults to `BASE_ENV`)."""
    base = dict(BASE_ENV if env is None else env)
    base["PYTHONPATH"] = str(REPO) + os.pathsep + base.get("PYTHONPATH", "")
    code = f"{prelude}import sys\nfrom avfuse.cli import main\nsys.exit(main({list(args)!r}))\n"
    p = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
        env=base, cwd=REPO,
    )  # fmt: skip
    return DoctorRun(p.returncode, p.stdout, p.stderr)


@pytest.fixture(scope="session")
def doctor_json() -> DoctorRun:
    """`avfuse doctor --json --quick` on this machine, run once for the session."""
    run = run_doctor_cli("doctor", "--json", "--quick")
    assert run.returncode in (0, 1), run.stderr[-2000:]
    return run
