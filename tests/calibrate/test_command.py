"""`avfuse calibrate` as a user runs it: the printed result, saving it, and clear refusals."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from avfuse.assets import default_model_path
from tests.calibrate.kit import cli
from tests.fixtures.ffmpeg import FFmpegProcess, needs_ffmpeg

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _one_line_error(r, *needles: str) -> None:  # noqa: ANN001 - CompletedProcess
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    for n in needles:
        assert n in r.stderr, r.stderr


@needs_ffmpeg
@pytest.mark.timeout(120)
def test_the_result_is_printed_with_its_spread_and_verdict(
    shifted: Callable[[float], Path],
) -> None:
    r = cli("calibrate", "--source", str(shifted(-120.0)))
    assert r.returncode == 0, r.stderr
    lines = dict(line.split(None, 1) for line in r.stdout.splitlines())
    value, rest = lines["offset"].split(" ms ", 1)
    assert abs(float(value) + 120.0) <= 1.0
    assert rest == "(audio early; median of 11 pairs)"
    assert "MAD" in lines["spread"] and "p5" in lines["spread"] and "p95" in lines["spread"]
    assert lines["verdict"] == (
        "audio 120 ms early: run with --av-offset-ms -120 (or save it with --write-config)"
    )


@pytest.mark.timeout(180)
def test_plain_demo_media_has_no_pattern(tmp_path: Path) -> None:
    """The demo scene flashes cards and speaks digits: neither is taken for the pattern."""
    from avfuse.engine.sources.synthetic import SceneScript, render_scene_to_file

    scene = tmp_path / "scene.mp4"
    render_scene_to_file(SceneScript.default(seed=2), scene)
    for source in (str(scene), "synthetic:4"):
        r = cli("calibrate", "--source", source)
        _one_line_error(r, "no calibration pattern found", "avfuse calibrate --pattern FILE")


@needs_ffmpeg
@pytest.mark.timeout(120)
def test_a_clapperboard_once_a_second_is_refused_as_ambiguous(tmp_path: Path) -> None:
    """It pairs as well at +-1 s as at its true lag: no number would be honest."""
    video = (
        "color=c=black:s=160x120:r=30:d=12,"
        "drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='lt(mod(n+15,30),3)'"
    )
    audio = "aevalsrc='if(lt(mod(t+0.5,1),0.1),0.5*sin(2*PI*1000*t),0)':s=48000:d=12"
    clap = tmp_path / "clap.mp4"
    with FFmpegProcess(["-f", "lavfi", "-i", video, "-f", "lavfi", "-i", audio,
                        "-c:v", "libx264", "-c:a", "aac", str(clap)]) as ff:  # fmt: skip
        assert ff.wait(60) == 0, ff.stderr_tail()
    _one_line_error(cli("calibrate", "--source", str(clap)), "pair as well", "periodic")


@needs_ffmpeg
@pytest.mark.timeout(120)
def test_a_source_without_audio_is_refused(tmp_path: Path) -> None:
    mute = tmp_path / "mute.mp4"
    with FFmpegProcess(["-f", "lavfi", "-i", "color=c=black:s=64x48:r=30:d=2", str(mute)]) as ff:
        assert ff.wait(60) == 0, ff.stderr_tail()
    _one_line_error(cli("calibrate", "--source", str(mute)), "has no audio", "--audio SRC")


DEPLOY = """# edge box 7
source = ["udp://127.0.0.1:5004"]
av_offset_ms = 0            # how much later the audio arrives than its video (ms)
quiet = true
"""


@needs_ffmpeg
@pytest.mark.skipif(not default_model_path().exists(), reason="the bundled model is not built")
@pytest.mark.timeout(240)
def test_write_config_round_trip(
    shifted: Callable[[float], Path], pattern_file: Path, tmp_path: Path
) -> None:
    """The saved offset loads in `avfuse config --check` and `avfuse run --config` uses it."""
    cfg = tmp_path / "deploy.toml"
    cfg.write_text(DEPLOY)
    r = cli("calibrate", "--source", str(shifted(200.0)), "--write-config", str(cfg), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert abs(out["offset_ms"] - 200.0) <= 10.0
    saved = tomllib.loads(cfg.read_text())
    assert saved == {**tomllib.loads(DEPLOY), "av_offset_ms": round(out["offset_ms"], 1)}
    assert "# how much later the audio arrives" in cfg.read_text()
    assert out["config"].startswith(f"set av_offset_ms = {saved['av_offset_ms']:.1f} in {cfg}")

    assert cli("config", "--check", str(cfg)).returncode == 0
    metrics = tmp_path / "metrics.json"
    r = cli("run", "--config", str(cfg), "--source", str(pattern_file), "--duration", "2",
            "--sink", f"jsonl:{tmp_path / 'events.jsonl'}", "--metrics", str(metrics))  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(metrics.read_text())
    assert summary["streams"][0]["av_sync"]["configured_offset_ms"] == saved["av_offset_ms"]


@pytest.mark.timeout(60)
def test_a_config_that_cannot_be_saved_to_is_refused_before_reading(tmp_path: Path) -> None:
    """Not after a twenty-second measurement: the source here does not even exist."""
    cfg = tmp_path / "deploy.toml"
    cfg.write_text("av_offset_ms = [\n")
    r = cli("calibrate", "--source", str(tmp_path / "none.mp4"), "--write-config", str(cfg))
    _one_line_error(r, "not valid TOML")
    assert cfg.read_text() == "av_offset_ms = [\n"
