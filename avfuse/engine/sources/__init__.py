"""avfuse.engine.sources: where audio and video come from.

`open_source(spec, sample_rate=...)` turns what a user types after `--source` into a
Source:

    synthetic            the scripted digit scene (seed 0)
    synthetic:SEED       the same with another seed (an integer in [0, 2**32 - 1])
    mic:NAME | mic:N     a microphone (PortAudio device name substring or index)
    camera:N | camera:PATH   a camera through OpenCV (index or /dev/videoN)
    udp://... rtsp://... http(s)://... srt://... rtp://...   a live network stream
    PATH                 a media file (mp4, mkv, wav, ts, ...)

Sources are imported lazily so that asking for one does not load the others'
dependencies (PyAV, OpenCV, PortAudio).
"""

from __future__ import annotations

from typing import Any

from avfuse.engine.sources.base import (
    AudioFormat,
    FrameSink,
    Source,
    SourceInfo,
    SourceStatus,
    VideoFormat,
)
from avfuse.errors import BackendUnavailable, UsageError
from avfuse.redact import redact

__all__ = [
    "AudioFormat",
    "FrameSink",
    "Source",
    "SourceInfo",
    "SourceStatus",
    "VideoFormat",
    "open_source",
    "synthetic_seed",
]


#: largest seed of "synthetic:SEED" (numpy's 32-bit seed range, as the CLI's --seed)
SYNTHETIC_SEED_MAX = 2**32 - 1


def synthetic_seed(arg: str) -> int:
    """The seed of "synthetic:ARG" (0 when ARG is empty).

    Raises:
        UsageError: ARG is not an integer in [0, SYNTHETIC_SEED_MAX].
    """
    text = arg.strip()
    if not text:
        return 0
    if not (text.isascii() and text.isdigit() and len(text) <= 10) or (
        int(text) > SYNTHETIC_SEED_MAX
    ):
        raise UsageError(
            f"{'synthetic:' + arg!r}: the seed must be an integer in [0, {SYNTHETIC_SEED_MAX}]: "
            "use e.g. synthetic:7"
        )
    return int(text)


def _synthetic(arg: str, *, sample_rate: int, realtime: bool, **kw: Any) -> Source:
    from avfuse.engine.sources.synthetic import SceneScript, SyntheticSource

    seed = synthetic_seed(arg)
    script = kw.pop("script", None) or SceneScript.default(seed=seed)
    return SyntheticSource(script=script, sample_rate=sample_rate, realtime=realtime, **kw)


def _media(spec: str, *, sample_rate: int, realtime: bool, **kw: Any) -> Source:
    try:
        from avfuse.engine.sources.media import MediaSource
    except ImportError as e:
        if e.name != "av":
            raise
        raise BackendUnavailable(
            f"{redact(spec)!r}: media files and network streams need PyAV: "
            "pip install 'avfuse[media]'"
        ) from e

    return MediaSource(spec, sample_rate=sample_rate, realtime=realtime, **kw)


def _microphone(arg: str, *, sample_rate: int, realtime: bool, **kw: Any) -> Source:
    from avfuse.engine.sources.microphone import MicrophoneSource

    device: int | str = int(arg) if arg.isdigit() else (arg or "default")
    return MicrophoneSource(device=device, sample_rate=sample_rate, **kw)  # always live


def _camera(arg: str, *, sample_rate: int, realtime: bool, **kw: Any) -> Source:
    from avfuse.engine.sources.camera import open_camera

    return open_camera(arg, sample_rate=sample_rate, realtime=realtime, **kw)


#: "kind:" prefixes that name a source kind rather than a URL scheme or a path; each
#: entry is called as opener(arg, sample_rate=..., realtime=..., **kw) with `arg` the
#: text after the colon. Register new kinds here.
PREFIXED_SOURCES: dict[str, Any] = {
    "synthetic": _synthetic,
    "mic": _microphone,
    "camera": _camera,
}


def open_source(spec: str, *, sample_rate: int, realtime: bool = False, **kw: Any) -> Source:
    """Make the Source that `spec` names (not yet opened).

    Args:
        spec: "synthetic", "synthetic:SEED", a file path, or a URL (see module docstring).
        sample_rate: rate audio is delivered at (mono float32).
        realtime: pace non-live sources (files, synthetic scenes) to wall time.
        **kw: options of the chosen source class (e.g. `video=False` for MediaSource,
            `av_offset_ms=80` for SyntheticSource).

    Raises:
        UsageError: `spec` is empty or a "kind:" prefix has a bad argument.
    """
    spec = spec.strip()
    if not spec:
        raise UsageError("empty source: give a file, a URL or 'synthetic'")
    kind, sep, arg = spec.partition(":")
    if kind in PREFIXED_SOURCES and not arg.startswith("//"):
        return PREFIXED_SOURCES[kind](arg, sample_rate=sample_rate, realtime=realtime, **kw)
    return _media(spec, sample_rate=sample_rate, realtime=realtime, **kw)
