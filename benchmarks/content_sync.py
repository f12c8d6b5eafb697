"""Content sync monitor accuracy on held-out talking faces, and silence on no-cue content.

Everything here is held out from training: the "cartoon" rendering style (training used
"plain") and flite/festival voices (training used espeak-ng). Rows:

    offsets    injected offsets -300..+300 ms with +-300 ppm drift, 30 s each; each 10 s
               window passes when the monitor's last accepted estimate in it (what the
               summary reports) is within +-40 ms of the true lag at its time; a window
               without any accepted estimate fails.
    no_cues    digit-card scenes (the demo material), a static image with speech, silence,
               music with a still face: the verdicts and the number of warnings (goal 0).
    change     aligned for 10 s, then the audio 100 ms later: seconds to the first warning.
    auto       --auto-offset from 0 on a +200 ms stream: the applied offset's error at the
               end and its largest step per evaluation (no jumps).

Run: PYTHONPATH=. python benchmarks/content_sync.py  (writes results/content_sync.json)
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import numpy as np

from avfuse.data.speech_sources import SAMPLE_RATE, TEST_VOICES, phrase_text, speak, speech_scene
from avfuse.data.talking import render_talking
from avfuse.data.talking_stream import OffsetPlan, feed, offset_track
from avfuse.engine.content_sync import ContentSyncConfig, ContentSyncMonitor

OUT = Path(__file__).parent / "results" / "content_sync.json"


def _monitor(**kw: object) -> ContentSyncMonitor:
    return ContentSyncMonitor(
        configured_offset_ms=0.0, sample_rate=SAMPLE_RATE, config=ContentSyncConfig(**kw)
    )


def _scene(phrases: list[np.ndarray], seconds: float, seed: int) -> tuple[np.ndarray, object]:
    audio = speech_scene(phrases, seconds, seed=seed)
    clip = render_talking(
        audio, sample_rate=SAMPLE_RATE, style="cartoon", seed=seed, width=320, height=240
    )
    return audio, clip


def offsets_row(phrases: list[np.ndarray]) -> dict[str, object]:
    windows, errors = [], []
    for k, off in enumerate(range(-300, 301, 100)):
        drift = 300.0 if k % 2 == 0 else -300.0
        audio, clip = _scene(phrases, 30.0, seed=100 + k)
        plan = OffsetPlan(offset_ms=off, drift_ppm=drift)
        res = feed(
            _monitor(), clip.frames, clip.fps, offset_track(audio, SAMPLE_RATE, plan), SAMPLE_RATE
        )
        for w in range(3):
            ends = [
                e for e in res.evaluations if w * 10 <= e.stream_time < (w + 1) * 10 and e.accepted
            ]
            e = ends[-1] if ends else None
            truth = float(plan.true_lag_ms(e.stream_time)) if e else None
            err = None if e is None or e.total_ms is None else e.total_ms - truth
            ok = err is not None and abs(err) <= 40.0
            windows.append(
                {
                    "offset_ms": off,
                    "drift_ppm": drift,
                    "window": w,
                    "pass": ok,
                    "error_ms": None if err is None else round(err, 1),
                    "psr": None if e is None else round(e.psr, 1),
                }
            )
            if err is not None:
                errors.append(err)
    passed = sum(w["pass"] for w in windows)
    return {
        "windows": len(windows),
        "within_40ms": passed,
        "share": round(passed / len(windows), 3),
        "goal_share": 0.9,
        "median_abs_error_ms": round(float(np.median(np.abs(errors))), 1) if errors else None,
        "detail": windows,
    }


def no_cues_row(phrases: list[np.ndarray]) -> dict[str, object]:
    from avfuse.engine.sources.synthetic import SceneRender, SceneScript, load_default_material

    cases: dict[str, tuple[np.ndarray, float, np.ndarray]] = {}
    for seed in (0, 1, 2):
        sr = SceneRender(
            SceneScript.default(seed=seed),
            load_default_material(),
            fps=30.0,
            sample_rate=SAMPLE_RATE,
        )
        frames = np.stack([sr.frames[k] for k in sr.frame_image])
        cases[f"digit_cards_{seed}"] = (
            frames,
            30.0,
            sr.device_track(av_offset_s=0.15, drift_ppm=0.0),
        )
    audio, clip = _scene(phrases, 20.0, seed=7)
    still = np.repeat(clip.frames[:1], len(clip.frames), 0)
    cases["static_image_with_speech"] = (still, clip.fps, audio)
    quiet = render_talking(
        np.zeros_like(audio),
        sample_rate=SAMPLE_RATE,
        style="cartoon",
        seed=7,
        width=320,
        height=240,
    )
    cases["silence"] = (quiet.frames, quiet.fps, np.zeros_like(audio))
    rng = np.random.default_rng(3)
    t = np.arange(len(audio)) / SAMPLE_RATE
    music = np.zeros_like(audio)
    pos = 0
    while pos < len(music):
        d = int(rng.uniform(0.15, 0.5) * SAMPLE_RATE)
        f = 220 * 2 ** (rng.integers(0, 24) / 12)
        seg = (np.sin(2 * np.pi * f * t[:d]) * np.exp(-t[:d] * 4) * 0.3)[: len(music) - pos]
        music[pos : pos + len(seg)] += seg
        pos += d
    cases["music_still_face"] = (quiet.frames, quiet.fps, music)
    out = {}
    for name, (frames, fps, track) in cases.items():
        res = feed(_monitor(), frames, fps, track, SAMPLE_RATE)
        out[name] = {"statuses": dict(Counter(res.statuses)), "warnings": len(res.warnings)}
    return out


def change_row(phrases: list[np.ndarray]) -> dict[str, object]:
    audio, clip = _scene(phrases, 20.0, seed=11)
    plan = OffsetPlan(offset_ms=0.0, steps=((10.0, 100.0),))
    res = feed(
        _monitor(), clip.frames, clip.fps, offset_track(audio, SAMPLE_RATE, plan), SAMPLE_RATE
    )
    before = [w for w in res.warnings if w.stream_time < 10.0]
    after = [w for w in res.warnings if w.stream_time >= 10.0]
    return {
        "warnings_before_change": len(before),
        "flagged_after_s": round(after[0].stream_time - 10.0, 2) if after else None,
        "goal_s": 5.0,
    }


def auto_row(phrases: list[np.ndarray]) -> dict[str, object]:
    audio, clip = _scene(phrases, 30.0, seed=13)
    plan = OffsetPlan(offset_ms=200.0)
    res = feed(
        _monitor(auto_offset=True),
        clip.frames,
        clip.fps,
        offset_track(audio, SAMPLE_RATE, plan),
        SAMPLE_RATE,
    )
    applied = np.array([a for _, a in res.applied_ms])
    steps = np.abs(np.diff(applied)) if applied.size > 1 else np.zeros(1)
    settle = next((t for t, a in res.applied_ms if abs(a - 200.0) <= 20.0), None)
    return {
        "final_error_ms": round(float(applied[-1] - 200.0), 1),
        "largest_step_ms": round(float(steps.max()), 1),
        "within_20ms_after_s": None if settle is None else round(settle, 2),
        "recognition_points_vs_aligned": None,
    }


def main() -> None:
    t0 = time.time()
    rng = np.random.default_rng(5)
    phrases = [speak(phrase_text(rng), v) for v in TEST_VOICES for _ in range(3)]
    result = {
        "conditions": "held out: cartoon style, flite/festival voices; 25 fps 320x240; 20 ms "
        "audio blocks; monitor window 3 s, evaluated every 0.25 s",
        "offsets": offsets_row(phrases),
        "no_cues": no_cues_row(phrases),
        "change": change_row(phrases),
        "auto_offset": auto_row(phrases),
    }
    result["seconds"] = round(time.time() - t0, 1)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    short = {k: v for k, v in result["offsets"].items() if k != "detail"}
    print(json.dumps({**result, "offsets": short}, indent=1))


if __name__ == "__main__":
    main()
