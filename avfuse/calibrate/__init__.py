"""avfuse.calibrate: measure a capture chain's audio/video offset with a test pattern.

The broadcast engineer's way: play a pattern whose flashes and beeps start together
into the chain (a camera and a microphone in front of a screen, an encoder, a network
stream), read it back through avfuse's own sources, and time the beeps against the
flashes on the engine's clock. No model is needed, and the result is the offset the
engine itself sees, ready for `--av-offset-ms` or the config key `av_offset_ms`.

    from avfuse.calibrate import PatternSpec, write_pattern, measure
    write_pattern("pattern.mp4", PatternSpec(seconds=30))
    m = measure(sources=["udp://127.0.0.1:5004"], duration_s=20)
    m.calibration.offset_ms, m.calibration.verdict

Modules: `pattern` (what is played), `capture` (reading a source through the engine),
`detect` (flashes and beeps), `estimate` (pairs and the offset), `config_edit` (saving
it in a config file).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from avfuse.calibrate.capture import Capture, capture
from avfuse.calibrate.config_edit import write_offset
from avfuse.calibrate.detect import Beeps, Flashes, find_beeps, find_flashes
from avfuse.calibrate.estimate import Calibration, NoPatternFound, estimate, pair, summarise
from avfuse.calibrate.pattern import UNAMBIGUOUS_S, PatternSpec, write_pattern
from avfuse.engine.control import StopToken


@dataclass(frozen=True, kw_only=True)
class Measurement:
    """A calibration run: what was read and what it gave.

    Attributes:
        capture: the stream as the engine delivered it.
        flashes, beeps: the onsets found.
        calibration: the offset and its spread.
    """

    capture: Capture
    flashes: Flashes
    beeps: Beeps
    calibration: Calibration

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the offset's figures and what was read)."""
        c = self.capture
        return {
            "source": c.name,
            "live": c.live,
            "seconds": round(c.seconds, 3),
            "frames": int(c.frame_ns.size),
            "fps": c.fps,
            "notes": list(c.notes),
            **self.calibration.to_dict(),
        }


def analyse(
    cap: Capture,
    *,
    tone_hz: float = 1000.0,
    max_offset_s: float = UNAMBIGUOUS_S,
    tolerance_ms: float = 10.0,
) -> Measurement:
    """Find the pattern in a capture and measure its offset.

    Raises:
        NoPatternFound: the capture does not hold the pattern (the message says which
            half is missing and what was seen instead).
    """
    fl = find_flashes(cap.frame_ns, cap.luma, fps=cap.fps)
    bp = find_beeps(cap.audio, rate=cap.sample_rate, tone_hz=tone_hz, valid=cap.audio_valid)
    if fl.onset_ns.size == 0 or bp.onset_index.size == 0:
        raise NoPatternFound(_nothing_found(cap, fl, bp, tone_hz))
    index = cap.audio_start + bp.onset_index
    beep_s = np.array([cap.audio_host_ns(i) for i in index]) / 1e9
    frame_s = 1.0 / cap.fps if cap.fps > 0 else 1 / 30
    p = pair(fl.onset_ns / 1e9, beep_s, frame_s=frame_s, max_offset_s=max_offset_s)
    offsets = [
        cap.served_offset_ns(int(fl.onset_frame[i]), float(index[j])) / 1e6
        for i, j in zip(p.flash, p.beep, strict=True)
    ]
    cal = summarise(np.asarray(offsets), p, frame_s=frame_s, tolerance_ms=tolerance_ms)
    return Measurement(capture=cap, flashes=fl, beeps=bp, calibration=cal)


def _nothing_found(cap: Capture, fl: Flashes, bp: Beeps, tone_hz: float) -> str:
    seen = []
    if fl.onset_ns.size == 0:
        seen.append(
            f"no flashes in {fl.frames} frames (brightness {fl.dark:.2f} to {fl.bright:.2f} "
            "of full scale)"
        )
    if bp.onset_index.size == 0:
        heard = (
            f"{bp.candidates} sound(s) in the tone band, none a steady tone burst"
            if bp.candidates
            else f"the tone band peaks at {bp.level_dbfs:.0f} dBFS over a "
            f"{bp.floor_dbfs:.0f} dBFS floor"
        )
        seen.append(
            f"no {tone_hz:g} Hz beeps in {cap.audio.size / cap.sample_rate:.1f} s of audio "
            f"({heard})"
        )
    return (
        f"no calibration pattern found in {cap.name}: {'; '.join(seen)}; play "
        "`avfuse calibrate --pattern FILE` into the chain and read it back (at least 10 s)"
    )


def measure(
    *,
    sources: Sequence[str] = (),
    audio: str | None = None,
    video: str | None = None,
    duration_s: float | None = None,
    stop: StopToken | None = None,
    max_offset_s: float = UNAMBIGUOUS_S,
    tolerance_ms: float = 10.0,
) -> Measurement:
    """Read one stream through the engine (see `capture`) and measure its A/V offset."""
    cap = capture(sources=sources, audio=audio, video=video, duration_s=duration_s, stop=stop)
    return analyse(cap, max_offset_s=max_offset_s, tolerance_ms=tolerance_ms)


__all__ = [
    "UNAMBIGUOUS_S",
    "Calibration",
    "Capture",
    "Measurement",
    "NoPatternFound",
    "PatternSpec",
    "analyse",
    "capture",
    "estimate",
    "measure",
    "write_offset",
    "write_pattern",
]
