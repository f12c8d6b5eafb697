"""Calibration through the engine's real sources: files and a live UDP stream.

The pattern is read back through `MediaSource`, `build_stream` and `Ingest`, as
`avfuse run` reads it; copies with the audio moved by ffmpeg (`-itsoffset`, see
conftest) must measure as moved. A flash is timed to its frame, so every measurement
must be within a frame (33 ms at 30 fps), and nine in ten within 10 ms.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.ffmpeg import FFmpegProcess, free_port, needs_ffmpeg

pytestmark = [needs_ffmpeg]

FRAME_MS = 1000 / 30
SWEEP_MS = [float(x) for x in range(-300, 301, 50)]


def _bounds(errors: list[float]) -> None:
    e = np.abs(np.asarray(errors))
    assert e.max() <= FRAME_MS, errors
    assert np.mean(e <= 10.0) >= 0.9, errors


@pytest.mark.timeout(120)
def test_the_pattern_as_written_reads_back_in_sync(pattern_file: Path) -> None:
    from avfuse.calibrate import measure

    cal = measure(sources=[str(pattern_file)]).calibration
    assert abs(cal.offset_ms) <= FRAME_MS
    assert abs(cal.offset_ms) <= 1.0  # the file's PTS put them together; so must the engine
    assert cal.pairs >= 10 and cal.in_sync


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_files_with_the_audio_moved_measure_as_moved(shifted: Callable[[float], Path]) -> None:
    from avfuse.calibrate import measure

    errors = []
    for ms in SWEEP_MS:
        cal = measure(sources=[str(shifted(ms))]).calibration
        print(f"file {ms:+.0f} ms: measured {cal.offset_ms:+.2f} ms over {cal.pairs} pairs")
        assert cal.pairs >= 8
        errors.append(cal.offset_ms - ms)
    _bounds(errors)


def _wait_until_bound(port: int, proc: subprocess.Popen[str], timeout: float = 60.0) -> None:
    """Wait until the calibrating process has bound the UDP port (our own bind then fails)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(proc.communicate()[1][-2000:])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return
        time.sleep(0.05)
    raise AssertionError("avfuse calibrate did not open the UDP stream in time")


def calibrate_udp(paths: list[Path], *extra: str, seconds: float = 11.0) -> list[dict]:
    """`avfuse calibrate --source udp://...` on one port per file, while real ffmpeg
    senders send each file at its pace, all at once (each sender and receiver is a
    process of its own, as a fleet of boxes would be)."""
    ports = [free_port() for _ in paths]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "avfuse.cli",
                "calibrate",
                "--source",
                f"udp://127.0.0.1:{port}",
                "--duration",
                str(seconds),
                "--json",
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for port in ports
    ]
    senders: list[FFmpegProcess] = []
    outs = []
    try:
        for port, proc in zip(ports, procs, strict=True):
            _wait_until_bound(port, proc)
        for port, path in zip(ports, paths, strict=True):
            ff = FFmpegProcess(["-re", "-i", str(path), "-c", "copy", "-f", "mpegts",
                                f"udp://127.0.0.1:{port}?pkt_size=1316"])  # fmt: skip
            senders.append(ff)
            ff.start()
        for ff in senders:
            assert ff.wait(60) == 0, ff.stderr_tail()
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err[-2000:]
            outs.append(json.loads(out))
    finally:
        for ff in senders:
            ff.kill()
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return outs


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_live_udp_stream_with_the_audio_moved_measures_as_moved(
    shifted: Callable[[float], Path],
) -> None:
    errors = []
    moved = (-300.0, -50.0, 0.0, 250.0)
    for ms, got in zip(moved, calibrate_udp([shifted(ms) for ms in moved]), strict=True):
        print(f"udp {ms:+.0f} ms: {got['offset_ms']:+.2f} ms, {got['pairs']} pairs, {got['notes']}")
        assert got["live"] is True and got["pairs"] >= 7
        errors.append(got["offset_ms"] - ms)
    _bounds(errors)


@pytest.mark.timeout(30)
def test_a_frame_is_served_audio_through_the_fit_of_its_moment() -> None:
    """The aligner maps a frame's time to a sample once, when it takes the frame; a clock
    fit that moved afterwards does not change which audio that frame got."""
    from avfuse.calibrate.capture import Capture
    from avfuse.engine.clock import ClockFit

    early = ClockFit(x0=0.0, h0=1_000_000_000, a=0.0, c=0.0, residual_ns=0.0, points=10)
    later = ClockFit(x0=0.0, h0=1_050_000_000, a=0.0, c=0.0, residual_ns=0.0, points=90)
    cap = Capture(
        name="t", live=True, fps=30.0,
        frame_ns=np.array([2_000_000_000, 3_000_000_000]), frame_fits=(early, later),
        luma=np.zeros(2), audio=np.zeros(10), audio_valid=np.ones(10, bool), audio_start=0,
        sample_rate=16000, read_stops=np.array([16000, 64000]), read_fits=(early, later),
        origin_ns=1_000_000_000,
    )  # fmt: skip
    # sample 1.5 s in: 2.5 s host through the early fit, 2.55 s through the later one
    assert cap.served_offset_ns(0, 24000.0) == pytest.approx(0.5e9)
    assert cap.served_offset_ns(1, 24000.0) == pytest.approx(-0.45e9)
