"""The sync monitor on real media through the real pipeline and the bundled model.

A clapperboard file made by a real ffmpeg (lavfi: a black picture that flashes white
for two frames once a second, a 1 kHz beep of 100 ms with each flash), once as made and
once with the audio delayed 200 ms (`adelay`): the monitor measures the delay and warns
once, and stays quiet on the synchronised file. The synthetic digit scene with speech
that starts a random 150-400 ms after each card, correctly synchronised, has no
time-locked cues: no warning, "no usable sync cues".

Written against today's API: `result.summary` is a dict; `_kind` / `_figures` read a
record that is a dict (figures under `data` or at the top level) or a typed record.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from avfuse.assets import default_model_path
from tests.fixtures.ffmpeg import FFMPEG, needs_ffmpeg

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not default_model_path().exists(), reason="the bundled model is not built"),
]

DELAY_MS = 200.0
SECONDS = 20
# white for frames n = 15, 16 (mod 30): a flash at 0.5, 1.5, ... s
VIDEO = (
    f"color=c=black:s=320x240:r=30:d={SECONDS},"
    "drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='lt(mod(n+15,30),2)'"
)
# 100 ms of 1 kHz from each flash on, over faint noise
AUDIO = (
    "aevalsrc='if(lt(mod(t+0.5,1),0.1),0.5*sin(2*PI*1000*t),0)+0.003*(2*random(0)-1)'"
    f":s=48000:d={SECONDS}"
)


def _clapperboard(path: Path, delay_ms: float) -> Path:
    cmd = [
        str(FFMPEG),
        *("-nostdin", "-hide_banner", "-loglevel", "error", "-y"),
        *("-f", "lavfi", "-i", VIDEO, "-f", "lavfi", "-i", AUDIO),
        *("-af", f"adelay={delay_ms:g}:all=1", "-t", str(SECONDS)),
        *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"),
        *("-c:a", "aac", "-b:a", "128k", str(path)),
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return path


@pytest.fixture(scope="module")
def clapperboards(tmp_path_factory: pytest.TempPathFactory) -> dict[float, Path]:
    d = tmp_path_factory.mktemp("clap")
    return {ms: _clapperboard(d / f"clap_{ms:g}.mp4", ms) for ms in (0.0, DELAY_MS)}


def _kind(r: Any) -> str | None:
    return r.get("kind") if isinstance(r, dict) else getattr(r, "kind", None)


def _figures(r: Any) -> dict[str, Any]:
    return dict(r.get("data", r)) if isinstance(r, dict) else dict(r.data)


def _run(source: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run the default pipeline and model; the stream's av_sync summary and warnings."""
    from avfuse.api import run
    from avfuse.engine.pipeline import PipelineConfig

    res = run(sources=[source], config=PipelineConfig(), sinks=[])
    sync = res.summary.streams[0]["av_sync"]
    warnings = [_figures(r) for r in res.records if _kind(r) == "av_sync"]
    print(sync, warnings)
    return sync, warnings


@needs_ffmpeg
@pytest.mark.timeout(180)
def test_clapperboard_with_late_audio_is_measured(clapperboards: dict[float, Path]) -> None:
    sync, warnings = _run(str(clapperboards[DELAY_MS]))
    assert sync["status"] == "misaligned"
    assert abs(sync["residual_offset_ms"] - DELAY_MS) <= 15
    assert sync["ci_ms"][0] <= DELAY_MS <= sync["ci_ms"][1]
    assert len(warnings) == 1
    w = warnings[0]
    assert abs(w["residual_offset_ms"] - DELAY_MS) <= 15
    assert abs(w["suggested_av_offset_ms"] - DELAY_MS) <= 15
    assert w["ci_low_ms"] <= DELAY_MS <= w["ci_high_ms"]


@needs_ffmpeg
@pytest.mark.timeout(180)
def test_synchronised_clapperboard_is_ok(clapperboards: dict[float, Path]) -> None:
    sync, warnings = _run(str(clapperboards[0.0]))
    assert warnings == []
    assert sync["status"] == "ok"
    assert abs(sync["residual_offset_ms"]) <= 15


@pytest.mark.timeout(240)
@pytest.mark.parametrize("seed", [0, 3])
def test_speech_after_the_card_on_a_synchronised_scene_gives_no_warning(seed: int) -> None:
    """Speech 150-400 ms after each card (as real speakers start): the monitor warned that
    the audio was a few hundred ms late and gave an offset that would break recognition."""
    from avfuse.engine.sources.synthetic import SceneScript, SyntheticSource

    src = SyntheticSource(
        script=SceneScript.default(seed=seed, speech_delay_s=(0.15, 0.4)), realtime=False
    )
    sync, warnings = _run(src)
    assert warnings == []
    assert sync["status"] == "no usable sync cues"
    assert sync["residual_offset_ms"] is None


@needs_ffmpeg
@pytest.mark.timeout(120)
def test_a_reload_that_changes_the_cadence_keeps_the_monitor_measuring(
    clapperboards: dict[float, Path],
) -> None:
    """The onset monitor takes the same input (a thumbnail of every frame) at every
    cadence, so reloads switching the model between every frame and every 3rd frame
    leave it measuring the 200 ms offset."""
    import time

    from avfuse.api import start
    from avfuse.engine.model_slot import ModelOptions
    from avfuse.engine.reconfig import Reconfig
    from avfuse.engine.sources.media import MediaSource

    src = MediaSource(str(clapperboards[DELAY_MS]), sample_rate=16000, realtime=True)
    session = start(sources=[src], sinks=[], duration_s=14.0)
    try:
        name = session.pipeline.slots[0].name
        for every in (1, 3, 1):
            time.sleep(2.0)
            rc = Reconfig(options={name: ModelOptions(every_frames=every)}, summary=f"{every}")
            session.pipeline.request_reconfig(rc)
            assert rc.done.wait(10) and rc.error is None, rc.error
        res = session.wait(60)
    finally:
        session.stop()
    assert res is not None
    sync = res.summary.streams[0]["av_sync"]
    print(sync)
    assert sync["status"] == "misaligned"
    assert abs(sync["residual_offset_ms"] - DELAY_MS) <= 15
