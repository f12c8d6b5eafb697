"""`avfuse serve REPO`: a real tritonserver started, used by `avfuse run`, stopped by a
signal; clear one-line errors when no server is installed or the stub cannot work."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from avfuse.tritonserver import free_port
from tests.triton.kit import env

pytestmark = pytest.mark.slow


def serve(*args: str, **kw) -> subprocess.Popen[str]:  # noqa: ANN003
    return subprocess.Popen(
        [sys.executable, "-m", "avfuse.cli", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env(),
        **kw,
    )


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.timeout(240)
def test_serve_prints_a_run_command_that_works_and_stops_on_sigterm(
    repo: Path,
    stub_env: Path,
    tmp_path: Path,
) -> None:
    grpc, http, metrics = free_port(), free_port(), free_port()
    proc = serve(str(repo), "--python-env", str(stub_env), "--grpc-port", str(grpc),
                 "--http-port", str(http), "--metrics-port", str(metrics))  # fmt: skip
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]  # blocks until the server is ready
        command = next((x for x in lines if "avfuse-late_python" in x and "avfuse run" in x), "")
        assert f"--triton-url grpc://127.0.0.1:{grpc}" in command, lines
        argv = command.split()[2:]  # after "avfuse run"
        argv[argv.index("FILE")] = "synthetic"
        out = tmp_path / "r.jsonl"
        run = subprocess.run(
            [sys.executable, "-m", "avfuse.cli", "run", *argv, "--duration", "4", "--quiet",
             "--values", "--sink", f"jsonl:{out}"],
            capture_output=True, text=True, timeout=120, env=env(),
        )  # fmt: skip
        assert run.returncode == 0, run.stderr[-1500:]
        assert '"type": "value"' in out.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 143
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not _listening(grpc)  # the server went with it
    assert "tiny-stateful not loaded: this server has no onnxruntime backend" in proc.stderr.read()


@pytest.mark.timeout(120)
def test_a_killed_serve_takes_its_server_with_it(repo: Path, stub_env: Path) -> None:
    """SIGKILL leaves no chance to clean up; the server must not outlive its parent."""
    grpc = free_port()
    proc = serve(str(repo), "--python-env", str(stub_env), "--grpc-port", str(grpc),
                 "--http-port", "0", "--metrics-port", "0")  # fmt: skip
    try:
        assert proc.stdout is not None and "serving" in proc.stdout.readline()
        assert _listening(grpc)
        proc.kill()
        proc.wait(10)
        deadline = time.monotonic() + 30  # the server drains for up to its exit timeout (5 s)
        while _listening(grpc) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _listening(grpc)
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.timeout(120)
def test_serve_refuses_a_stub_environment_with_numpy_2(repo: Path, install) -> None:  # noqa: ANN001
    """pytriton's stub passes empty tensors under numpy 2: refused before starting."""
    import numpy

    if int(numpy.__version__.split(".")[0]) < 2 or install.stubs is None:
        pytest.skip("needs pytriton's server and numpy 2 in this environment")
    p = serve(str(repo), "--python-env", sys.prefix, "--grpc-port", "0", "--http-port", "0",
              "--metrics-port", "0")  # fmt: skip
    try:
        _, err = p.communicate(timeout=100)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 2
    assert re.search(r"numpy 2\.\S+ is there", err) and "--python-env ENV" in err
    assert len(err.strip().splitlines()) == 1, err


@pytest.mark.timeout(60)
def test_serve_without_a_tritonserver_says_what_to_install(repo: Path, tmp_path: Path) -> None:
    hide = (
        "import sys; sys.modules['pytriton'] = None; from avfuse.cli import main; "
        f"sys.exit(main(['serve', {str(repo)!r}]))"
    )
    p = subprocess.run([sys.executable, "-c", hide], capture_output=True, text=True, timeout=50,
                       env={**env(), "PATH": str(tmp_path)})  # fmt: skip
    assert p.returncode == 2
    assert "no tritonserver is installed" in p.stderr and "avfuse[triton]" in p.stderr
    p = subprocess.run(
        [sys.executable, "-m", "avfuse.cli", "serve", str(repo), "--tritonserver",
         str(tmp_path / "nope")],
        capture_output=True, text=True, timeout=50, env=env(),
    )  # fmt: skip
    assert p.returncode == 2 and "is not an executable file" in p.stderr
