"""`avfuse run --metrics-port`: the endpoint is bound before the run starts."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

pytest.importorskip("prometheus_client", reason="pip install 'avfuse[metrics]'")


@pytest.mark.timeout(60)
def test_a_metrics_port_in_use_is_a_one_line_exit_2_before_the_run_starts(tmp_path) -> None:  # noqa: ANN001
    out = tmp_path / "records.jsonl"
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        r = subprocess.run(
            [sys.executable, "-m", "avfuse.cli", "run", "--source", "synthetic",
             "--duration", "2", "--sink", f"jsonl:{out}", "--metrics-port", str(port)],
            capture_output=True, text=True, timeout=50, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"--metrics-port {port}" in lines[0] and "in use" in lines[0]
    assert not out.exists()  # nothing ran: no sink was opened
