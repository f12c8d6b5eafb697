"""End to end on real media: an mp4 file and a live UDP stream served by a real ffmpeg.

The scene's audio is recorded 200 ms late. Told so (--av-offset-ms 200), avfuse
recognises the scripted digits; not told, it flags the misalignment with the offset
to configure.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from avfuse.assets import default_model_path
from tests.fixtures.ffmpeg import FFmpegProcess, free_port, needs_ffmpeg

pytestmark = [
    needs_ffmpeg,
    pytest.mark.slow,
    pytest.mark.skipif(not default_model_path().exists(), reason="the bundled model is not built"),
]

DELAY_MS = 200.0


@pytest.fixture(scope="module")
def scene_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from avfuse.engine.sources.synthetic import SceneScript, render_scene_to_file

    path = tmp_path_factory.mktemp("media") / "scene.mp4"
    render_scene_to_file(SceneScript.default(seed=5), path, av_offset_ms=DELAY_MS)
    return path


def _run(source: str, truth: Path, tmp: Path, *extra: str) -> tuple[dict, list[dict]]:
    events = tmp / "events.jsonl"
    metrics = tmp / "metrics.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "avfuse.cli",
            "run",
            "--source",
            source,
            "--truth",
            str(truth),
            "--sink",
            f"jsonl:{events}",
            "--metrics",
            str(metrics),
            "--quiet",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = [json.loads(x) for x in events.read_text().splitlines()]
    return json.loads(metrics.read_text()), records


def _sync_warnings(records: list[dict]) -> list[dict]:
    return [r for r in records if r.get("type") == "warning" and r.get("kind") == "av_sync"]


def test_file_with_configured_offset_is_recognised(scene_file: Path, tmp_path: Path) -> None:
    summary, records = _run(
        str(scene_file), scene_file.with_suffix(".json"), tmp_path, "--av-offset-ms", str(DELAY_MS)
    )
    print("mp4, offset configured:", summary["score"])
    assert summary["score"]["recall"] >= 0.9
    assert summary["score"]["n_false"] == 0
    assert _sync_warnings(records) == []


def test_file_without_the_offset_is_flagged(scene_file: Path, tmp_path: Path) -> None:
    summary, records = _run(str(scene_file), scene_file.with_suffix(".json"), tmp_path)
    warnings = _sync_warnings(records)
    print("mp4, offset not configured:", summary["score"], warnings)
    assert warnings, "a 200 ms unconfigured audio delay must be flagged"
    assert abs(warnings[0]["data"]["residual_offset_ms"] - DELAY_MS) <= 60


def _wait_until_bound(port: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Wait until the avfuse process has bound the UDP port (our own bind then fails)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return
        time.sleep(0.05)
    raise AssertionError("avfuse did not open the UDP stream in time")


@pytest.mark.parametrize("configured", [True, False])
def test_live_udp_stream(scene_file: Path, tmp_path: Path, configured: bool) -> None:
    port = free_port()
    url = f"udp://127.0.0.1:{port}"
    events, metrics = tmp_path / "events.jsonl", tmp_path / "metrics.json"
    extra = ["--av-offset-ms", str(DELAY_MS)] if configured else []
    # avfuse listens first, so the stream is received from its first packet
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "avfuse.cli",
            "run",
            "--source",
            url,
            "--truth",
            str(scene_file.with_suffix(".json")),
            "--sink",
            f"jsonl:{events}",
            "--metrics",
            str(metrics),
            "--quiet",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_until_bound(port, proc)
        with FFmpegProcess(
            ["-re", "-i", str(scene_file), "-c", "copy", "-f", "mpegts", f"{url}?pkt_size=1316"]
        ) as ff:
            assert ff.wait(120) == 0, ff.stderr_tail()
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-2000:]
    summary = json.loads(metrics.read_text())
    records = [json.loads(x) for x in events.read_text().splitlines()]
    warnings = _sync_warnings(records)
    print(f"udp, configured={configured}:", summary["score"], warnings)
    if configured:
        assert summary["score"]["recall"] >= 0.9
        assert summary["score"]["n_false"] == 0
        assert warnings == []
    else:
        assert warnings and abs(warnings[0]["data"]["residual_offset_ms"] - DELAY_MS) <= 60
