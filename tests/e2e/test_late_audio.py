"""A network stream whose audio comes in bursts later than the audio deadline.

A real ffmpeg sends H.264 + AAC in MPEG-TS over UDP on 127.0.0.1; its muxer packs ~0.3 s
of audio per packet, so at the default 100 ms deadline most windows were decided with
their newest audio missing and nothing said so. Now the run says it once, with the
deadline that makes them whole, and the summary counts them; with that deadline they are.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from avfuse.engine.late_audio import MIN_WINDOWS, LateAudioWatch
from tests.fixtures.ffmpeg import lavfi_args, needs_ffmpeg, serve_udp

ROOT = Path(__file__).resolve().parents[2]


def _run(deadline_ms: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with serve_udp(lavfi_args(seconds=14)) as url:
        p = subprocess.run(
            [sys.executable, "-m", "avfuse.cli", "run", "--source", url, "--duration", "9",
             "--audio-deadline-ms", str(deadline_ms), "--sink", "jsonl:-", "--quiet"],
            capture_output=True, text=True, timeout=90, env=env, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    assert p.returncode == 0, p.stderr
    recs = [json.loads(line) for line in p.stdout.splitlines()]
    assert recs[-1]["type"] == "summary"
    return recs, recs[-1]["streams"][0]


@needs_ffmpeg
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_audio_later_than_the_deadline_is_reported_with_the_deadline_that_fixes_it() -> None:
    recs, stream = _run(100)
    late = [r for r in recs if r["type"] == "warning" and r["kind"] == "audio_late"]
    assert len(late) == 1, [r for r in recs if r["type"] == "warning"]
    data = late[0]["data"]
    assert data["deadline_ms"] == 100 and data["incomplete_fraction"] >= 0.2
    # the AAC packets of an MPEG-TS stream: a few hundred ms of audio each
    assert 150 < data["late_ms"] < 1000, data
    assert data["advised_deadline_ms"] > data["late_ms"]
    assert f"--audio-deadline-ms {data['advised_deadline_ms']}" in late[0]["message"]
    assert stream["audio_incomplete"] >= 0.2 * stream["audio_windows"] > 0

    # the advice holds: with that deadline nearly every window is whole, and no warning
    recs, stream = _run(data["advised_deadline_ms"])
    assert not [r for r in recs if r["type"] == "warning" and r["kind"] == "audio_late"]
    assert stream["audio_incomplete"] < 0.2 * stream["audio_windows"], stream


def test_the_watch_speaks_once_and_only_on_a_steady_share_past_the_deadline() -> None:
    w = LateAudioWatch(stream="s", model="m", deadline_ms=100)
    n = 3 * MIN_WINDOWS
    said = [w.observe(complete=False, late_ms=300, stream_time=i / 30) for i in range(n)]
    assert [i for i, r in enumerate(said) if r is not None] == [MIN_WINDOWS - 1]
    assert said[MIN_WINDOWS - 1].data["advised_deadline_ms"] == 320  # type: ignore[union-attr]
    assert w.summary() == {"audio_incomplete": n, "audio_windows": n}

    quiet = LateAudioWatch(stream="s", model="m", deadline_ms=400)  # late, but within it
    assert all(
        quiet.observe(complete=False, late_ms=300, stream_time=0) is None for _ in range(200)
    )
    rare = LateAudioWatch(stream="s", model="m", deadline_ms=100)  # 1 in 10 only
    assert all(
        rare.observe(complete=i % 10 != 0, late_ms=300, stream_time=0) is None for i in range(200)
    )
