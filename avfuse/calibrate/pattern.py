"""The calibration test pattern: a white flash and a 1 kHz beep that start together.

A broadcast engineer measures a capture chain's audio/video offset by playing a known
pattern into it and timing what comes out. Here the pattern is a black picture that
turns full white for `flash_ms`, and a tone burst of `beep_ms` with a sharp onset over a
faint noise floor, both starting on the same video frame, at the times of `schedule`.

Why the events are not once a second: with a period P, an offset d and d - P give the
same picture, so a 1 s clapperboard cannot tell +600 ms from -400 ms. The gaps between
events cycle through `CODE`, thirteen different lengths from 0.6 s to 1.45 s in an
order chosen so that, over any stretch of the pattern, a wrong lag within
+-`UNAMBIGUOUS_S` lines up at most about a fifth of the flashes with a beep, while the
true lag lines up all of them. The code repeats after `sum(CODE)` = 12.85 s, so lags
near +-12.85 s are the only full ambiguity, far past the range searched.

Events sit on video frames (frame `round(t * fps)`); the beep starts on the audio sample
of that frame's time, so in the file as written the two are simultaneous to within
half an audio sample. A faint frame counter and time code in a corner help a person
reading a capture by eye; they are too small to disturb the flash detection.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from avfuse.errors import BackendUnavailable, UsageError

#: seconds between consecutive events, cycled (see the module docstring)
CODE: tuple[float, ...] = (
    1.40, 0.80, 0.85, 1.30, 1.15, 0.95, 0.75, 1.05, 0.70, 0.65, 1.20, 1.45, 0.60,
)  # fmt: skip
#: offsets within +-this are told apart by the code (the estimator's default range)
UNAMBIGUOUS_S = 3.0
#: time of the first event, and least time after the last one, in seconds
LEAD_S = 0.5
#: containers a pattern may be written to, and the audio codecs each can hold
CONTAINERS = {".mp4": ("aac",), ".mov": ("aac", "pcm"), ".mkv": ("aac", "pcm")}


@dataclass(frozen=True, kw_only=True)
class PatternSpec:
    """What `write_pattern` writes.

    Attributes:
        seconds: length of the pattern.
        fps: frame rate (an integer or e.g. 29.97, kept as a fraction over 1001).
        width, height: picture size (even numbers, for yuv420p).
        sample_rate: audio rate of the file.
        tone_hz: the beep's frequency.
        beep_ms: the beep's length.
        flash_ms: how long the picture stays white (at least two frames).
        level_dbfs: the beep's peak level.
        noise_dbfs: RMS level of a faint white noise under the whole soundtrack (None:
            digital silence between the beeps). Digital silence is special to many chains
            (encoders' silence detection, noise gates, Opus DTX) and to avfuse's own sync
            monitor, which times a sound that follows it late; a dither-level floor keeps
            the pattern an ordinary signal.
        audio_codec: "aac" or "pcm" (16-bit PCM; .mov and .mkv only).
    """

    seconds: float = 30.0
    fps: float = 30.0
    width: int = 1280
    height: int = 720
    sample_rate: int = 48000
    tone_hz: float = 1000.0
    beep_ms: float = 100.0
    flash_ms: float = 100.0
    level_dbfs: float = -6.0
    noise_dbfs: float | None = -60.0
    audio_codec: str = "aac"

    def __post_init__(self) -> None:
        checks = (
            (10.0 <= self.seconds <= 3600.0, "seconds must be in [10, 3600]"),
            (5.0 <= self.fps <= 240.0, "fps must be in [5, 240]"),
            (
                16 <= self.width <= 7680 and 16 <= self.height <= 4320,
                "the size must be from 16x16 to 7680x4320",
            ),
            (self.width % 2 == 0 and self.height % 2 == 0, "width and height must be even"),
            (8000 <= self.sample_rate <= 192000, "sample_rate must be in [8000, 192000]"),
            (100.0 <= self.tone_hz <= self.sample_rate / 4, "tone_hz must be in [100, rate/4]"),
            (20.0 <= self.beep_ms <= 400.0, "beep_ms must be in [20, 400]"),
            (20.0 <= self.flash_ms <= 400.0, "flash_ms must be in [20, 400]"),
            (-40.0 <= self.level_dbfs <= 0.0, "level_dbfs must be in [-40, 0]"),
            (
                self.noise_dbfs is None or -120.0 <= self.noise_dbfs <= self.level_dbfs - 30,
                "noise_dbfs must be None or in [-120, level_dbfs - 30]",
            ),
            (self.audio_codec in ("aac", "pcm"), "audio_codec must be aac or pcm"),
        )
        for ok, message in checks:
            if not ok:
                raise UsageError(f"calibration pattern: {message}")

    @property
    def rate(self) -> Fraction:
        """The frame rate as the fraction the file is written with."""
        return Fraction(self.fps).limit_denominator(1001)

    @property
    def flash_frames(self) -> int:
        """Frames each flash stays white."""
        return max(2, round(self.flash_ms / 1e3 * float(self.rate)))


def schedule(seconds: float, *, lead_s: float = LEAD_S) -> np.ndarray:
    """Event times (s) of a pattern `seconds` long: from `lead_s` on, spaced by `CODE`.

    The last event starts at least `lead_s` plus the longest gap before the end, so its
    flash and beep are whole.
    """
    times = [lead_s]
    k = 0
    while times[-1] + CODE[k % len(CODE)] <= seconds - lead_s - 0.4:
        times.append(times[-1] + CODE[k % len(CODE)])
        k += 1
    return np.array(times)


def event_frames(spec: PatternSpec) -> np.ndarray:
    """The frame index of each event (its first white frame)."""
    return np.round(schedule(spec.seconds) * float(spec.rate)).astype(np.int64)


def pattern_audio(spec: PatternSpec) -> np.ndarray:
    """The whole soundtrack: float32 mono, a beep at each event's frame time over a faint
    noise floor (`PatternSpec.noise_dbfs`; seeded, so every pattern file is the same).

    A beep rises and falls over 1 ms (a raised cosine), so its onset is sharp but does
    not splatter; detection times the half-amplitude point, 0.5 ms in, and takes that
    into account (`avfuse.calibrate.detect.RAMP_S`).
    """
    from avfuse.calibrate.detect import RAMP_S

    sr = spec.sample_rate
    n_total = int(round(spec.seconds * sr))
    if spec.noise_dbfs is None:
        out = np.zeros(n_total, np.float32)
    else:
        rms = 10.0 ** (spec.noise_dbfs / 20.0)
        out = (np.random.default_rng(0).standard_normal(n_total) * rms).astype(np.float32)
    n_beep = int(round(spec.beep_ms / 1e3 * sr))
    n_ramp = max(1, int(round(RAMP_S * sr)))
    amp = 10.0 ** (spec.level_dbfs / 20.0)
    k = np.arange(n_beep)
    env = np.ones(n_beep)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(n_ramp) / n_ramp)
    env[:n_ramp] = ramp
    env[-n_ramp:] = ramp[::-1]
    beep = (amp * env * np.sin(2 * np.pi * spec.tone_hz * k / sr)).astype(np.float32)
    for frame in event_frames(spec):
        start = int(round(frame / spec.rate * sr))
        stop = min(n_total, start + n_beep)
        out[start:stop] += beep[: stop - start]
    return out


def _check_target(path: Path, spec: PatternSpec, force: bool) -> None:
    suffix = path.suffix.lower()
    if suffix not in CONTAINERS:
        raise UsageError(
            f"--pattern {path}: write a .mp4, .mov or .mkv file (got {suffix or 'no suffix'})"
        )
    if spec.audio_codec not in CONTAINERS[suffix]:
        raise UsageError(
            f"--pattern {path}: {suffix} cannot hold {spec.audio_codec} audio here: "
            "write a .mov or .mkv file, or use --audio-codec aac"
        )
    if path.is_dir():
        raise UsageError(f"--pattern {path} is a folder: give a file path such as {path}/out.mp4")
    if path.exists() and not force:
        raise UsageError(f"--pattern {path} exists: give another path, or --force to replace it")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"--pattern {path}: the folder {parent} does not exist: create it first")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"--pattern {path}: the folder {parent} is not writable")


def _frame_image(spec: PatternSpec, index: int, white: bool, font_scale: float) -> np.ndarray:
    import cv2

    level = 255 if white else 0
    img = np.full((spec.height, spec.width, 3), level, np.uint8)
    t = index / spec.rate
    label = f"avfuse calibrate  frame {index:06d}  {float(t):9.3f} s"
    ink = (0, 0, 0) if white else (96, 96, 96)
    y = spec.height - max(4, int(spec.height * 0.03))
    cv2.putText(img, label, (max(2, spec.width // 60), y), cv2.FONT_HERSHEY_SIMPLEX,
                font_scale, ink, 1, cv2.LINE_AA)  # fmt: skip
    return img


def write_pattern(path: str | os.PathLike[str], spec: PatternSpec, *, force: bool = False) -> Path:
    """Write the pattern as H.264 video with AAC (or 16-bit PCM) audio; returns the path.

    The file is written beside the target and renamed over it at the end, so a failed
    or interrupted write never leaves a half pattern under the name asked for.

    Raises:
        UsageError: unsupported suffix or codec, the file exists (without `force`), or
            its folder is missing or not writable.
        BackendUnavailable: PyAV (the media extra) is not installed.
    """
    target = Path(path)
    _check_target(target, spec, force)
    try:
        import av
    except ImportError as e:
        raise BackendUnavailable(
            "writing the calibration pattern needs PyAV: pip install 'avfuse[media]'"
        ) from e
    tmp = target.with_name(f".{target.name}.part{target.suffix}")
    sr = spec.sample_rate
    audio = pattern_audio(spec)
    flashes = np.zeros(int(math.ceil(spec.seconds * float(spec.rate))) + 1, bool)
    for f in event_frames(spec):
        flashes[f : f + spec.flash_frames] = True
    n_frames = int(math.floor(spec.seconds * float(spec.rate)))
    font_scale = max(0.3, spec.height / 1440)
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    block = 1024
    try:
        with av.open(str(tmp), mode="w") as out:
            vs = out.add_stream(codec, rate=spec.rate)
            vs.width, vs.height, vs.pix_fmt = spec.width, spec.height, "yuv420p"
            if codec == "libx264":  # a keyframe a second, as live streams have
                vs.options = {"preset": "veryfast", "crf": "23", "g": str(round(spec.fps))}
            a_codec = "aac" if spec.audio_codec == "aac" else "pcm_s16le"
            aus = out.add_stream(a_codec, rate=sr, layout="mono")
            na = 0
            for k in range(n_frames):
                img = _frame_image(spec, k, bool(flashes[k]), font_scale)
                vf = av.VideoFrame.from_ndarray(img, format="bgr24")
                vf.pts = k
                out.mux(vs.encode(vf))
                while na < len(audio) and na <= (k + 1) / spec.rate * sr:
                    chunk = np.ascontiguousarray(audio[na : na + block])[None, :]
                    af = av.AudioFrame.from_ndarray(
                        chunk if a_codec == "aac" else (chunk * 32767).astype(np.int16),
                        format="flt" if a_codec == "aac" else "s16",
                        layout="mono",
                    )
                    af.sample_rate, af.pts = sr, na
                    out.mux(aus.encode(af))
                    na += block
            out.mux(vs.encode(None))
            out.mux(aus.encode(None))
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


__all__ = [
    "CODE",
    "CONTAINERS",
    "LEAD_S",
    "UNAMBIGUOUS_S",
    "PatternSpec",
    "event_frames",
    "pattern_audio",
    "schedule",
    "write_pattern",
]
