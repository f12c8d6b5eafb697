"""`avfuse run --backend triton` through a real tritonserver: the same events as `ort` on
the same file, and what a server that goes away does to a run (faults, recovery, exit
codes). Every run is a real `avfuse run` subprocess on real media."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from avfuse.tritonserver import free_port
from tests.fixtures.ffmpeg import needs_ffmpeg
from tests.triton.kit import env, need_tritonclient, start_server

pytestmark = [needs_ffmpeg, pytest.mark.slow]


@pytest.fixture(scope="module")
def scene_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo scene (ten digit cards, each spoken) as an H.264/AAC mp4, truth beside it."""
    from avfuse.engine.sources.synthetic import SceneScript, render_scene_to_file

    path = tmp_path_factory.mktemp("media") / "scene.mp4"
    render_scene_to_file(SceneScript.default(seed=5), path)
    return path


def avfuse_run(*args: str, out: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "avfuse.cli", "run", "--sink", f"jsonl:{out}", "--quiet", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env=env(),
    )


def records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def events(recs: list[dict]) -> list[tuple[str, float, float]]:
    return [(r["label"], r["start"], r["end"]) for r in recs if r["type"] == "event"]


@pytest.mark.timeout(300)
def test_triton_gives_the_events_ort_gives_on_the_same_file(
    server,  # noqa: ANN001
    repo: Path,
    scene_file: Path,
    tmp_path: Path,
) -> None:
    truth = str(scene_file.with_suffix(".json"))
    ort = avfuse_run("--source", str(scene_file), "--truth", truth, out=tmp_path / "ort.jsonl")
    assert ort.returncode == 0, ort.stderr[-2000:]
    tri = avfuse_run(
        "--source", str(scene_file), "--truth", truth,
        "--backend", "triton", "--triton-url", server.grpc_url,
        "--model", str(repo / "avfuse-late_python"),
        out=tmp_path / "triton.jsonl",
    )  # fmt: skip
    assert tri.returncode == 0, tri.stderr[-2000:]
    want = events(records(tmp_path / "ort.jsonl"))
    got = events(records(tmp_path / "triton.jsonl"))
    print(
        "ort:",
        ort.stderr.strip().splitlines()[-1],
        "| triton:",
        tri.stderr.strip().splitlines()[-1],
    )
    assert len(want) >= 9  # the scene's digits are recognised at all
    assert got == want
    assert "score: 10/10" in tri.stderr or tri.stderr.count("recognised") == ort.stderr.count(
        "recognised"
    )


@pytest.mark.timeout(120)
def test_an_unreachable_server_at_start_exits_2_with_one_line(tmp_path: Path) -> None:
    need_tritonclient()
    url = f"grpc://127.0.0.1:{free_port()}?retries=1&backoff_ms=10"
    p = avfuse_run("--source", "synthetic", "--duration", "3", "--backend", "triton",
                   "--triton-url", url, out=tmp_path / "r.jsonl")  # fmt: skip
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach the Triton server" in lines[0], lines


@pytest.mark.timeout(60)
def test_a_triton_url_without_the_triton_backend_is_refused(tmp_path: Path) -> None:
    p = avfuse_run("--source", "synthetic", "--duration", "1", "--triton-url",
                   "grpc://127.0.0.1:1", out=tmp_path / "r.jsonl")  # fmt: skip
    assert p.returncode == 2
    assert "--triton-url is for --backend triton" in p.stderr


def _live_run(repo: Path, url: str, out: Path, duration: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "avfuse.cli", "run", "--source", "synthetic", "--realtime",
         "--duration", str(duration), "--backend", "triton", "--triton-url", url,
         "--model", str(repo / "avfuse-late_python"), "--sink", f"jsonl:{out}", "--quiet",
         "--values"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env(),
    )  # fmt: skip


def _wait_for(out: Path, proc: subprocess.Popen[str], what, timeout: float) -> list[dict]:  # noqa: ANN001
    """Records once `what(records)` holds; fails when the run ends first or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        recs = records(out)
        if what(recs):
            return recs
        if proc.poll() is not None:
            pytest.fail(f"the run ended ({proc.returncode}) first: {proc.stderr.read()[-1500:]}")
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout} s; last records: {records(out)[-3:]}")


def _values(recs: list[dict]) -> int:
    """Decisions whose outputs came back from the server (--values writes one per decision)."""
    return sum(r["type"] == "value" for r in recs)


def _faults(recs: list[dict]) -> list[dict]:
    return [r for r in recs if r["type"] == "fault" and r["source"] == "backend:triton"]


@pytest.mark.timeout(240)
def test_a_server_killed_and_restarted_mid_run_is_a_fault_and_the_run_recovers(
    repo: Path,
    stub_env: Path,
    install,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    """Each request may retry for ~5 s (retries=8); the server is back within that after the
    first fault, so the run records one recoverable fault and carries on to the end."""
    ports = {"grpc_port": free_port(), "http_port": free_port(), "metrics_port": free_port()}
    s = start_server(repo, ("avfuse-late_python",), stub_env, install, **ports)
    out = tmp_path / "run.jsonl"
    url = f"{s.grpc_url}?retries=8&backoff_ms=100"
    proc = _live_run(repo, url, out, duration=40)
    try:
        _wait_for(out, proc, lambda r: _values(r) >= 30, 60)
        s.kill()
        recs = _wait_for(out, proc, lambda r: _faults(r), 60)
        assert _faults(recs)[0]["recoverable"] is True
        s = start_server(repo, ("avfuse-late_python",), stub_env, install, **ports)
        n = len(recs)
        # the run goes on: the server answers again
        _wait_for(out, proc, lambda r: _values(r[n:]) >= 30, 60)
        assert proc.wait(120) == 0, proc.stderr.read()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
        s.stop()
    recs = records(out)
    faults = _faults(recs)
    assert 1 <= len(faults) <= 2 and all(f["recoverable"] for f in faults), faults
    summary = next(r for r in recs if r["type"] == "summary")
    print("outage:", faults, "summary drops:", summary["drops"])
    assert summary["stopped_by"] in ("end", "duration")  # the scene ran to its end


@pytest.mark.timeout(180)
def test_a_server_gone_for_good_ends_the_run_with_exit_1_and_one_line(
    repo: Path,
    stub_env: Path,
    install,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    s = start_server(repo, ("avfuse-late_python",), stub_env, install)
    out = tmp_path / "run.jsonl"
    proc = _live_run(repo, f"{s.grpc_url}?retries=2&backoff_ms=50", out, duration=60)
    try:
        _wait_for(out, proc, lambda r: _values(r) >= 30, 60)
        s.kill()
        code = proc.wait(60)  # three failed batches in a row end the run, well before 60 s
    finally:
        if proc.poll() is None:
            proc.kill()
        s.stop()
    err = proc.stderr.read().strip().splitlines()
    assert code == 1, err
    faults = _faults(records(out))
    assert len(faults) == 3 and [f["recoverable"] for f in faults] == [True, True, False]
    assert "triton request" in err[-1] and "failed after 3 tries" in err[-1]


@pytest.mark.timeout(120)
def test_http_with_shared_memory_runs_from_the_pipeline_thread(
    server,  # noqa: ANN001
    repo: Path,
    tmp_path: Path,
) -> None:
    """The pipeline calls the backend from its own thread; HTTP clients are per slot."""
    out = tmp_path / "r.jsonl"
    p = avfuse_run("--source", "synthetic", "--duration", "3", "--values", "--backend", "triton",
                   "--triton-url", f"{server.http_url}?shm=system",
                   "--model", str(repo / "avfuse-late_python"), out=out)  # fmt: skip
    assert p.returncode == 0, p.stderr[-1500:]
    recs = records(out)
    assert _values(recs) >= 10 and not _faults(recs)
