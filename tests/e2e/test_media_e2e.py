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


def _cmd(source: str, truth: Path, tmp: Path, *extra: str) -> list[str]:
    """`avfuse run` on `source`, scored against `truth`, records and metrics under `tmp`."""
    return [
        sys.executable, "-m", "avfuse.cli", "run", "--source", source, "--truth", str(truth),
        "--sink", f"jsonl:{tmp / 'events.jsonl'}", "--metrics", str(tmp / "metrics.json"),
        "--quiet", *extra,
    ]  # fmt: skip


def _run(source: str, truth: Path, tmp: Path, *extra: str) -> tuple[dict, list[dict]]:
    proc = subprocess.run(
        _cmd(source, truth, tmp, *extra), capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = [json.loads(x) for x in (tmp / "events.jsonl").read_text().splitlines()]
    return json.loads((tmp / "metrics.json").read_text()), records


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


def _udp_run(url: str, truth: Path, tmp: Path, *extra: str) -> subprocess.Popen:
    tmp.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        _cmd(url, truth, tmp, *extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_live_udp_stream_is_recognised_when_told_the_offset_and_flagged_when_not(
    scene_file: Path, tmp_path: Path
) -> None:
    """One real-time ffmpeg sender feeds two receivers (the tee muxer), one told the
    offset and one not: the same packets, so the two runs differ only in the flag."""
    ports = {"told": free_port(), "not_told": free_port()}
    truth = scene_file.with_suffix(".json")
    procs = {
        k: _udp_run(
            f"udp://127.0.0.1:{port}",
            truth,
            tmp_path / k,
            *(["--av-offset-ms", str(DELAY_MS)] if k == "told" else []),
        )
        for k, port in ports.items()
    }
    errs: dict[str, str] = {}
    try:
        for k, port in ports.items():  # both listen first: received from the first packet
            _wait_until_bound(port, procs[k])
        outs = "|".join(f"[f=mpegts]udp://127.0.0.1:{p}?pkt_size=1316" for p in ports.values())
        with FFmpegProcess(
            ["-re", "-i", str(scene_file), "-map", "0", "-c", "copy", "-f", "tee", outs]
        ) as ff:
            assert ff.wait(120) == 0, ff.stderr_tail()
        for k, proc in procs.items():
            errs[k] = proc.communicate(timeout=60)[1]
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    got = {}
    for k, proc in procs.items():
        assert proc.returncode == 0, (k, errs.get(k, "")[-2000:])
        summary = json.loads((tmp_path / k / "metrics.json").read_text())
        records = [json.loads(x) for x in (tmp_path / k / "events.jsonl").read_text().splitlines()]
        got[k] = summary["score"], _sync_warnings(records)
        print(f"udp, {k}:", *got[k])
    score, warnings = got["told"]
    assert score["recall"] >= 0.9 and score["n_false"] == 0
    assert warnings == []
    _, warnings = got["not_told"]
    assert warnings and abs(warnings[0]["data"]["residual_offset_ms"] - DELAY_MS) <= 60
