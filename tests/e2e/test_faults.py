"""Real faults through a real `avfuse run`: media made by a real ffmpeg, real /dev/full,
real pipes, real signals. Each test is named after the defect it pins.

The model is the engine kit's tiny fused model: it says "3" when the frame is bright
and "7" when the audio is loud (noise), and "none" otherwise, so the events a file
must give are known from how the file was made.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.engine.pipeline_kit import write_tiny_model
from tests.fixtures.ffmpeg import FFmpegProcess, needs_ffmpeg

pytestmark = [needs_ffmpeg, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny")
    write_tiny_model(folder)
    return folder


def ffmpeg(*args: str, timeout: float = 60) -> None:
    with FFmpegProcess(list(args)) as ff:
        if ff.wait(timeout) != 0:
            raise RuntimeError(f"ffmpeg failed: {ff.stderr_tail()}")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _default_signals() -> None:
    """Child set-up: the stop signals at their defaults, whatever this process inherited."""
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_DFL)


def avfuse(*args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "avfuse.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env=_env(),
        preexec_fn=_default_signals,
        **kw,
    )


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def of(recs: list[dict], rtype: str, **match: object) -> list[dict]:
    return [r for r in recs if r["type"] == rtype and all(r.get(k) == v for k, v in match.items())]


# ---------------------------------------------------------------------- media


@pytest.fixture(scope="module")
def shortvid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5 s of black video, 40 s of audio: silence with a noise burst at 25-27 s."""
    path = tmp_path_factory.mktemp("media") / "shortvid.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", "color=c=black:size=320x240:rate=30:duration=5",
        "-f", "lavfi", "-i",
        "aevalsrc='if(between(t,25,27),0.6*(random(0)-0.5),0)':s=16000:d=40",
        "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-pix_fmt", "yuv420p",
        "-c:a", "aac", str(path),
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def shortaudio(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 s of video (white 6-8 s, else black), 3 s of audio (silence)."""
    path = tmp_path_factory.mktemp("media") / "shortaudio.mp4"
    ffmpeg(
        "-f", "lavfi", "-i",
        "color=c=black:size=320x240:rate=30:duration=10,"
        "drawbox=c=white:t=fill:enable='between(t,6,8)'",
        "-f", "lavfi", "-i", "aevalsrc=0:s=16000:d=3",
        "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-pix_fmt", "yuv420p",
        "-c:a", "aac", str(path),
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def two_sizes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MPEG-TS of 3 s black at 320x240, then 3 s white at 640x480 (byte-concatenated)."""
    folder = tmp_path_factory.mktemp("media")
    parts = []
    for i, (colour, size) in enumerate((("black", "320x240"), ("white", "640x480"))):
        p = folder / f"part{i}.ts"
        ffmpeg(
            "-f", "lavfi", "-i", f"color=c={colour}:size={size}:rate=30:duration=3",
            "-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "3",
            "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-output_ts_offset", str(3 * i), "-f", "mpegts", str(p),
        )  # fmt: skip
        parts.append(p.read_bytes())
    out = folder / "two_sizes.ts"
    out.write_bytes(b"".join(parts))
    return out


@pytest.fixture(scope="module")
def card_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 s: black, white card 1-3 s, silence."""
    path = tmp_path_factory.mktemp("media") / "card.mp4"
    ffmpeg(
        "-f", "lavfi", "-i",
        "color=c=black:size=320x240:rate=30:duration=4,"
        "drawbox=c=white:t=fill:enable='between(t,1,3)'",
        "-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "4",
        "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-pix_fmt", "yuv420p",
        "-c:a", "aac", str(path),
    )  # fmt: skip
    return path


# ---------------------------------------------------------------------- 1. a track ends early


@pytest.mark.timeout(180)
def test_video_ending_before_audio_goes_on_audio_only_at_file_speed(
    shortvid: Path, model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    proc = avfuse("run", "--source", str(shortvid), "--model", str(model),
                  "--sink", f"jsonl:{out}", "--quiet", timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    recs = records(out)
    ended = of(recs, "warning", kind="track_ended")
    assert len(ended) == 1 and ended[0]["modality"] == "video"
    assert ended[0]["stream_time"] == pytest.approx(5.0, abs=0.6)
    # the burst at 25-27 s is heard although there has been no video since 5 s
    events = of(recs, "event", label="7")
    assert len(events) == 1 and events[0]["degraded"] is True
    assert events[0]["modalities"] == ["audio"] and 25.0 < events[0]["start"] < 27.5
    summary = recs[-1]
    assert summary["type"] == "summary"
    # decisions at the frame rate for the whole 40 s, nothing dropped, no forced overwrite
    assert summary["frames"] == pytest.approx(40 * 30, abs=40)
    assert sum(summary["drops"].values()) == 0
    assert summary["streams"][0]["backpressure_timeouts"] == 0


@pytest.mark.timeout(120)
def test_audio_ending_before_video_goes_on_video_only(
    shortaudio: Path, model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    proc = avfuse("run", "--source", str(shortaudio), "--model", str(model),
                  "--sink", f"jsonl:{out}", "--quiet")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    recs = records(out)
    ended = of(recs, "warning", kind="track_ended")
    assert [w["modality"] for w in ended] == ["audio"]
    events = of(recs, "event", label="3")
    assert len(events) == 1 and events[0]["modalities"] == ["video"]
    assert events[0]["degraded"] is True and 6.0 <= events[0]["start"] < 6.6
    assert recs[-1]["frames"] == pytest.approx(300, abs=3)


# ---------------------------------------------------------------------- 2. format changes


@pytest.mark.timeout(120)
def test_resolution_change_mid_stream_is_converted_and_recognised(
    two_sizes: Path, model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    t0 = time.monotonic()
    proc = avfuse("run", "--source", str(two_sizes), "--model", str(model),
                  "--sink", f"jsonl:{out}", "--quiet")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    recs = records(out)
    changed = of(recs, "warning", kind="format_changed")
    assert len(changed) == 1 and "640x480" in changed[0]["message"]
    assert [e["label"] for e in of(recs, "event")] == ["3"]  # the white part, after the change
    summary = recs[-1]
    assert summary["streams"][0]["format_errors"] == 0
    assert summary["frames"] == pytest.approx(180, abs=3)
    assert time.monotonic() - t0 < 60  # not one second per frame


# ---------------------------------------------------------------------- 3. failing sinks


@pytest.mark.timeout(120)
def test_jsonl_sink_on_a_full_disk_fails_the_run_with_one_line(
    card_clip: Path, model: Path, tmp_path: Path
) -> None:
    proc = avfuse("run", "--source", str(card_clip), "--model", str(model),
                  "--sink", "jsonl:/dev/full", "--quiet")  # fmt: skip
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "jsonl:/dev/full" in lines[0] and "No space left on device" in lines[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.timeout(120)
def test_a_failing_sink_is_reported_to_the_others_and_counted(
    card_clip: Path, model: Path, tmp_path: Path
) -> None:
    good = tmp_path / "good.jsonl"
    proc = avfuse("run", "--source", str(card_clip), "--model", str(model),
                  "--sink", "jsonl:/dev/full", "--sink", f"jsonl:{good}",
                  "--sink", "console", "--quiet")  # fmt: skip
    # the console and the second file worked, but the first file's records were lost
    assert proc.returncode == 1, proc.stderr
    recs = records(good)
    faults = of(recs, "fault", source="sink:jsonl:/dev/full")
    assert len(faults) == 1 and "No space left on device" in faults[0]["message"]
    assert recs[-1]["type"] == "summary" and recs[-1]["sink_errors"] == 1
    assert [e["label"] for e in of(recs, "event")] == ["3"]  # the run went on


@pytest.mark.timeout(120)
def test_video_sink_on_a_full_disk_fails_the_run(
    card_clip: Path, model: Path, tmp_path: Path
) -> None:
    proc = avfuse("run", "--source", str(card_clip), "--model", str(model),
                  "--sink", "video:/dev/full/x.mp4", "--quiet")  # fmt: skip
    # /dev/full is a device, not a folder: refused before the run, nothing written
    assert proc.returncode == 2 and "not a folder" in proc.stderr, proc.stderr
    link = tmp_path / "full.mp4"
    link.symlink_to("/dev/full")
    proc = avfuse("run", "--source", str(card_clip), "--model", str(model),
                  "--sink", f"video:{link}", "--quiet")  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "No space left on device" in proc.stderr and len(proc.stderr.splitlines()) == 1


@pytest.mark.timeout(60)
def test_closed_stdout_ends_the_run_promptly_and_quietly_with_141(model: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "avfuse.cli", "run", "--source", "synthetic", "--realtime",
         "--sink", "jsonl:-", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        env=_env(), preexec_fn=_default_signals,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline()
        assert json.loads(first)["type"]
        proc.stdout.close()  # the reader goes away, as `head -1` does
        rc = proc.wait(timeout=15)  # the scene lasts 22 s: it must not play to the end
        assert rc == 141
        assert proc.stderr.read() == b""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------------- 4. clobbering


@pytest.mark.timeout(60)
def test_a_missing_source_leaves_the_output_file_alone(model: Path, tmp_path: Path) -> None:
    keep = tmp_path / "keep.jsonl"
    keep.write_text('{"precious": true}\n')
    proc = avfuse("run", "--source", str(tmp_path / "missing.mp4"), "--model", str(model),
                  "--sink", f"jsonl:{keep}")  # fmt: skip
    assert proc.returncode == 2 and "missing.mp4" in proc.stderr
    assert keep.read_text() == '{"precious": true}\n'


@pytest.mark.timeout(60)
def test_a_sink_onto_the_source_is_refused(card_clip: Path, model: Path, tmp_path: Path) -> None:
    src = tmp_path / "v.mp4"
    src.write_bytes(card_clip.read_bytes())
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    proc = avfuse("run", "--source", str(src), "--model", str(model), "--sink", f"jsonl:{src}")
    assert proc.returncode == 2 and "overwrite the source" in proc.stderr
    assert hashlib.sha256(src.read_bytes()).hexdigest() == digest


# ---------------------------------------------------------------------- 5. signals


def _start_live(out: Path, *, preexec=_default_signals) -> subprocess.Popen[str]:
    """A live run (the synthetic scene in real time, bundled model) writing JSONL to `out`."""
    return subprocess.Popen(
        [sys.executable, "-m", "avfuse.cli", "run", "--source", "synthetic", "--realtime",
         "--sink", f"jsonl:{out}", "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        text=True, env=_env(), preexec_fn=preexec,
    )  # fmt: skip


def _wait_for_open_onset(out: Path, proc: subprocess.Popen[str], timeout: float = 30) -> dict:
    """Wait until an onset record is written whose event is not (yet)."""
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        if out.exists():
            recs = [json.loads(x) for x in out.read_text().splitlines() if x.endswith("}")]
            closed = {r["event_id"] for r in recs if r["type"] == "event"}
            open_ = [r for r in recs if r["type"] == "onset" and r["event_id"] not in closed]
            if open_:
                return open_[-1]
        time.sleep(0.05)
    raise AssertionError("no onset was written")


@pytest.mark.timeout(90)
@pytest.mark.parametrize(("sig", "code"), [("SIGTERM", 143), ("SIGHUP", 129), ("SIGINT", 130)])
def test_a_stop_signal_drains_flushes_and_exits_with_its_status(
    sig: str, code: int, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    proc = _start_live(out)
    try:
        onset = _wait_for_open_onset(out, proc)
        proc.send_signal(getattr(signal, sig))
        rc = proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc == code, proc.stderr.read() if proc.stderr else ""
    recs = records(out)  # every line is whole, valid JSON
    # the event that was open when the signal came was written, then the summary, last
    assert [e["label"] for e in of(recs, "event", event_id=onset["event_id"])] == [onset["label"]]
    assert recs[-1]["type"] == "summary" and recs[-1]["stopped_by"] == sig


@pytest.mark.timeout(60)
def test_a_signal_ignored_at_start_stays_ignored(tmp_path: Path) -> None:
    def ignore_term() -> None:
        _default_signals()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # as nohup / a background job would

    out = tmp_path / "out.jsonl"
    proc = _start_live(out, preexec=ignore_term)
    try:
        _wait_for_open_onset(out, proc)
        proc.send_signal(signal.SIGTERM)
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=1.5)  # still running
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert records(out)[-1]["stopped_by"] == "SIGINT"


# ---------------------------------------------------------------------- 6. reconnect early


def _run_on_stream(url: str, out: Path, *, duration_s: float) -> subprocess.Popen:
    """`avfuse run --source URL` into a JSONL sink, returned once the sink is open (the
    sink opens once the stream is open)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "avfuse.cli", "run", "--source", url, "--duration",
         f"{duration_s:g}", "--sink", f"jsonl:{out}", "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        text=True, env=_env(), preexec_fn=_default_signals,
    )  # fmt: skip
    give_up = time.monotonic() + 30
    while not out.exists():
        assert proc.poll() is None and time.monotonic() < give_up
        time.sleep(0.05)
    return proc


@pytest.mark.timeout(120)
def test_a_live_stream_that_reconnects_in_its_first_seconds_keeps_the_run_alive(
    tmp_path: Path,
) -> None:
    from tests.fixtures.ffmpeg import free_port, lavfi_args, mpegts_udp_args

    url = f"udp://127.0.0.1:{free_port()}"
    out = tmp_path / "out.jsonl"
    send = [*lavfi_args(seconds=60.0, sample_rate=16000), *mpegts_udp_args(url)]
    with FFmpegProcess(send):
        proc = _run_on_stream(url, out, duration_s=20)
        time.sleep(2.0)  # the sender stops 2 s in, before stream time 0 has settled
    # silent past the source's 5 s read timeout: it reports the loss and reconnects
    time.sleep(6.0)
    with FFmpegProcess([*lavfi_args(seconds=8.0, sample_rate=16000), *mpegts_udp_args(url)]):
        rc = proc.wait(timeout=60)
    stderr = proc.stderr.read() if proc.stderr else ""
    assert rc == 0, stderr
    assert "Traceback" not in stderr
    recs = records(out)
    kinds = [r.get("kind") for r in recs if r["type"] == "warning"]
    assert "disconnected" in kinds and "reconnected" in kinds
    assert of(recs, "fault") == []
    # frames were processed after the reconnect, on one stream-time axis that goes forward
    summary = recs[-1]
    assert summary["streams"][0]["video_frames"] > 240  # 8 s or more of the 30 fps video
    assert summary["frames"] > 60  # the bundled model decides on every 3rd frame
    reconnect_t = next(r["stream_time"] for r in recs if r.get("kind") == "reconnected")
    assert reconnect_t > 1.5


@pytest.mark.timeout(120)
def test_a_sender_restarted_within_the_read_timeout_starts_a_new_timeline(
    tmp_path: Path,
) -> None:
    """The sender stops and a new one starts 0.5 s later, inside the 5 s read timeout: the
    connection never times out, but the PTS start again. Before, the old clock fits mapped
    the new timeline into the past: negative stream times ("the video stopped after
    -1.31 s"), a fitted audio drift of ~700 ppm and false late-audio advice."""
    from tests.fixtures.ffmpeg import free_port, lavfi_args, mpegts_udp_args

    url = f"udp://127.0.0.1:{free_port()}"
    out = tmp_path / "out.jsonl"
    send = [*lavfi_args(seconds=60.0, sample_rate=16000), *mpegts_udp_args(url)]
    with FFmpegProcess(send):
        proc = _run_on_stream(url, out, duration_s=14)
        time.sleep(4.0)
    time.sleep(0.5)
    with FFmpegProcess(send):
        rc = proc.wait(timeout=60)
    stderr = proc.stderr.read() if proc.stderr else ""
    assert rc == 0, stderr
    recs = records(out)
    warnings = of(recs, "warning")
    kinds = [r["kind"] for r in warnings]
    assert "disconnected" not in kinds  # it never timed out
    restarts = [r for r in warnings if r["kind"] == "reconnected"]
    assert len(restarts) >= 1 and "restarted" in restarts[0]["message"]
    times = [r["stream_time"] for r in recs if r.get("stream_time") is not None]
    assert min(times) >= 0.0, [r for r in recs if (r.get("stream_time") or 0) < 0][:2]
    assert not any("after -" in r.get("message", "") for r in warnings)
    summary = recs[-1]
    drift = summary["streams"][0]["audio_clock"]["drift_ppm"]
    assert abs(drift) < 300, drift
    # decisions went on after the restart: ~10 a second over the 14 s, minus the outage
    assert summary["frames"] >= 90, (summary["frames"], warnings)
