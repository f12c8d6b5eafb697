"""The test pattern: its code is unambiguous, and the file holds flash and beep together.

The file is read back with PyAV directly and timed by plain thresholds written here, not
by avfuse's detection, so a writer that put the beep off its frame is caught on its own.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from avfuse.calibrate.pattern import PatternSpec, schedule
from avfuse.errors import UsageError
from tests.calibrate.kit import SECONDS, cli


def _coincidences(t: np.ndarray, lag: float, tol: float) -> int:
    """Events e with another event within `tol` of e + lag."""
    return int(sum(np.any(np.abs(t - (x + lag)) <= tol) for x in t))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("seconds", [10.0, 30.0, 120.0])
def test_a_wrong_lag_within_3_s_pairs_few_events(seconds: float) -> None:
    """A periodic pattern (a flash a second) pairs every event at +-1 s as well as at 0:
    offsets past half the period came out wrong by a whole period."""
    t = schedule(seconds)
    tol = 0.05  # wider than the estimator's 48 ms at 30 fps
    worst = max(
        _coincidences(t, lag, tol) for lag in np.arange(-3.0, 3.0001, 0.005) if abs(lag) > 2 * tol
    )
    assert len(t) >= 9
    assert worst <= 0.25 * len(t), (worst, len(t))
    assert _coincidences(t, 0.0, tol) == len(t)


def _flash_times(path: Path) -> list[float]:
    """PTS (s) of each frame that turns white after a dark one."""
    out, prev = [], 0.0
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            level = frame.to_ndarray(format="gray").mean() / 255
            if level > 0.5 >= prev:
                out.append(float(frame.time))
            prev = level
    return out


def _beep_times(path: Path) -> list[float]:
    """Times (s) where |sample| first passes 0.05 after at least 0.3 s of quiet."""
    chunks, start = [], None
    with av.open(str(path)) as c:
        rate = c.streams.audio[0].rate
        for frame in c.decode(audio=0):
            if start is None:
                start = float(frame.time)
            x = frame.to_ndarray().reshape(-1)
            chunks.append(x / 32768.0 if x.dtype == np.int16 else x)
    x = np.abs(np.concatenate(chunks))
    loud = np.flatnonzero(x > 0.05)
    onsets = loud[np.concatenate(([True], np.diff(loud) > 0.3 * rate))]
    return [float(start + i / rate) for i in onsets]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("fps,codec,suffix", [(30.0, "aac", ".mp4"), (25.0, "pcm", ".mkv")])
def test_each_flash_and_its_beep_start_together_in_the_file(
    tmp_path: Path, fps: float, codec: str, suffix: str
) -> None:
    from avfuse.calibrate import write_pattern

    spec = PatternSpec(seconds=SECONDS, fps=fps, width=160, height=120, audio_codec=codec)
    path = write_pattern(tmp_path / f"p{suffix}", spec)
    flashes, beeps = _flash_times(path), _beep_times(path)
    assert len(flashes) == len(beeps) == len(schedule(SECONDS))
    # the beep's 1 ms rise passes 0.05 of its 0.5 peak about 0.2 ms in; AAC smears it a little
    diffs = np.array(beeps) - np.array(flashes)
    assert np.all(np.abs(diffs) < 0.002), diffs
    # events sit on the frame nearest their scheduled time
    assert np.allclose(flashes, schedule(SECONDS), atol=0.5 / fps + 1e-6)


@pytest.mark.timeout(60)
def test_an_existing_file_is_refused_without_force(tmp_path: Path) -> None:
    target = tmp_path / "keep.mp4"
    target.write_bytes(b"not to be lost")
    r = cli("calibrate", "--pattern", str(target), "--seconds", "10", "--size", "64x48")
    assert r.returncode == 2
    assert "exists" in r.stderr and "--force" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert target.read_bytes() == b"not to be lost"
    r = cli("calibrate", "--pattern", str(target), "--seconds", "10", "--size", "64x48", "--force")
    assert r.returncode == 0, r.stderr
    with av.open(str(target)) as c:
        assert c.streams.video and c.streams.audio


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "args,says",
    [
        (["--pattern", "{d}/p.avi"], ".mp4, .mov or .mkv"),
        (["--pattern", "{d}/p.mp4", "--audio-codec", "pcm"], ".mov or .mkv"),
        (["--pattern", "{d}/no/such/p.mp4"], "does not exist"),
        (["--pattern", "{d}/p.mp4", "--size", "321x240"], "even WIDTHxHEIGHT"),
        (["--pattern", "{d}/p.mp4", "--seconds", "3"], "--seconds"),
        (["--pattern", "{d}/p.mp4", "--source", "{d}/x.mp4"], "not both"),
        ([], "nothing to do"),
    ],
)
def test_bad_requests_get_one_line_naming_the_fix(
    tmp_path: Path, args: list[str], says: str
) -> None:
    r = cli("calibrate", *(a.format(d=tmp_path) for a in args))
    assert r.returncode == 2
    assert says in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not any(tmp_path.iterdir())  # nothing written


def test_spec_refuses_odd_sizes() -> None:
    with pytest.raises(UsageError, match="even"):
        PatternSpec(width=321)


@pytest.mark.timeout(60)
def test_without_pyav_the_pattern_is_one_line_naming_the_extra(tmp_path: Path) -> None:
    hide_av = (
        "import sys; sys.modules['av'] = None; from avfuse.cli import main; "
        "sys.exit(main(sys.argv[1:]))"
    )
    out = tmp_path / "p.mp4"
    r = subprocess.run(
        [sys.executable, "-c", hide_av, "calibrate", "--pattern", str(out)],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "avfuse calibrate: error: writing the calibration pattern needs PyAV: "
        "pip install 'avfuse[media]'"
    ]
    assert not out.exists()
