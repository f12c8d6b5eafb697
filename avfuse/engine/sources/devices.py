"""Finding capture devices: microphones through PortAudio, cameras through OpenCV.

This is the one place that imports `sounddevice`, and it does so lazily: avfuse (and
`avfuse.engine.sources.microphone`) import fine on a machine without libportaudio2, and
only listing or opening a microphone fails, with the install command.

PortAudio enumerates devices once, when it is initialised; a sound server started later
or a USB microphone plugged in later is only seen after `rescan_portaudio`, which
re-initialises PortAudio when no stream of ours is open (re-initialising closes streams).
"""

from __future__ import annotations

import glob
import re
import sys
import threading
from dataclasses import asdict, dataclass
from types import ModuleType
from typing import Any

from avfuse.errors import BackendUnavailable, DeviceNotFound

PORTAUDIO_HINT = "PortAudio is missing: apt-get install libportaudio2"

_lock = threading.Lock()
_open_streams = 0  # PortAudio streams opened by MicrophoneSource and not yet closed


@dataclass(frozen=True, kw_only=True)
class MicrophoneInfo:
    """One PortAudio input device."""

    index: int
    name: str
    host_api: str
    default_sample_rate: float
    channels: int
    is_default: bool


@dataclass(frozen=True, kw_only=True)
class CameraInfo:
    """One camera that opens, with the size it delivers by default."""

    index: int
    path: str
    width: int
    height: int
    fps: float


def import_sounddevice() -> ModuleType:
    """Import sounddevice, turning a missing PortAudio into BackendUnavailable with the fix."""
    try:
        import sounddevice
    except OSError as e:  # sounddevice raises OSError when libportaudio cannot be loaded
        raise BackendUnavailable(PORTAUDIO_HINT) from e
    except ImportError as e:
        raise BackendUnavailable(
            "sounddevice is not installed: pip install sounddevice (and apt-get install "
            "libportaudio2)"
        ) from e
    return sounddevice


def stream_opened() -> None:
    """Count a PortAudio stream as open (rescans wait until none is)."""
    global _open_streams
    with _lock:
        _open_streams += 1


def stream_closed() -> None:
    """Count a PortAudio stream as closed."""
    global _open_streams
    with _lock:
        _open_streams = max(0, _open_streams - 1)


def rescan_portaudio() -> bool:
    """Re-initialise PortAudio so it sees devices (or sound servers) that appeared later.

    Returns:
        True when PortAudio was re-initialised; False when a stream is open (a rescan
        would close it) or PortAudio is missing.
    """
    try:
        sd = import_sounddevice()
    except BackendUnavailable:
        return False
    with _lock:
        if _open_streams:
            return False
        sd._terminate()
        sd._initialize()
    return True


def list_microphones() -> list[MicrophoneInfo]:
    """All PortAudio devices with at least one input channel."""
    sd = import_sounddevice()
    apis = sd.query_hostapis()
    try:
        default_in = int(sd.default.device[0])
    except (TypeError, ValueError, IndexError):
        default_in = -1
    out = []
    for d in sd.query_devices():
        if d["max_input_channels"] <= 0:
            continue
        out.append(
            MicrophoneInfo(
                index=int(d["index"]),
                name=str(d["name"]),
                host_api=str(apis[d["hostapi"]]["name"]),
                default_sample_rate=float(d["default_samplerate"]),
                channels=int(d["max_input_channels"]),
                is_default=int(d["index"]) == default_in,
            )
        )
    return out


def describe_microphones(mics: list[MicrophoneInfo]) -> str:
    """A short list of the microphones for error messages."""
    if not mics:
        return "none (PortAudio sees no input device; is a sound server running?)"
    return "; ".join(f"{m.index} '{m.name}'" for m in mics)


def resolve_microphone(device: int | str | None) -> MicrophoneInfo:
    """Find a microphone by index, by name (exact, then case-insensitive substring), or
    `default`; rescans PortAudio once if it is not found.

    Raises:
        DeviceNotFound: naming the device and listing the microphones that exist.
    """
    found = _match_microphone(device, list_microphones())
    if found is None and rescan_portaudio():
        found = _match_microphone(device, list_microphones())
    if isinstance(found, MicrophoneInfo):
        return found
    mics = list_microphones()
    if isinstance(found, list):
        names = describe_microphones(found)
        raise DeviceNotFound(
            f"microphone '{device}' matches several devices ({names}): give its index "
            "(see `avfuse devices`)"
        )
    raise DeviceNotFound(
        f"microphone '{device}' not found; available: {describe_microphones(mics)} "
        "(see `avfuse devices`)"
    )


def _match_microphone(
    device: int | str | None, mics: list[MicrophoneInfo]
) -> MicrophoneInfo | list[MicrophoneInfo] | None:
    if isinstance(device, str) and device.strip().lstrip("-").isdigit():
        device = int(device)
    if isinstance(device, int):
        return next((m for m in mics if m.index == device), None)
    if device is None or device.lower() == "default":
        return (
            next((m for m in mics if m.is_default), None)
            or next((m for m in mics if m.name.lower() == "default"), None)
            or (mics[0] if mics else None)
        )
    exact = [m for m in mics if m.name == device]
    if exact:
        return exact[0]
    sub = [m for m in mics if device.lower() in m.name.lower()]
    if len(sub) == 1:
        return sub[0]
    return sub or None


def camera_candidates(max_index: int = 10) -> list[tuple[int, str]]:
    """(index, path) of the cameras worth probing: /dev/video* on Linux, else 0..max_index-1."""
    if sys.platform.startswith("linux"):
        out = []
        for path in glob.glob("/dev/video*"):
            m = re.fullmatch(r"/dev/video(\d+)", path)
            if m:
                out.append((int(m.group(1)), path))
        return sorted(out)
    return [(i, str(i)) for i in range(max_index)]


def list_cameras(max_index: int = 10, timeout_s: float = 3.0) -> list[CameraInfo]:
    """Cameras that open and deliver a frame, with the size they deliver by default."""
    import cv2

    out = []
    for index, path in camera_candidates(max_index):
        api = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
        cap = cv2.VideoCapture(index, api)
        try:
            if not cap.isOpened():
                continue
            cap.set(cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_s * 1000)
            ok, frame = cap.read()
            if not ok or frame is None:
                continue
            fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
            h, w = frame.shape[:2]
            out.append(CameraInfo(index=index, path=path, width=w, height=h, fps=fps))
        finally:
            cap.release()
    return out


def describe_cameras() -> str:
    """A short list of the camera devices for error messages (without opening them)."""
    cands = camera_candidates()
    if not cands:
        return "none (no /dev/video* devices)" if sys.platform.startswith("linux") else "none"
    return "; ".join(f"{i} ({p})" for i, p in cands)


def devices_report(*, cameras: bool = True, max_index: int = 10) -> dict[str, Any]:
    """Microphones and cameras as plain data (what `avfuse devices --json` prints)."""
    report: dict[str, Any] = {"microphones": [], "cameras": [], "errors": []}
    try:
        report["microphones"] = [asdict(m) for m in list_microphones()]
    except BackendUnavailable as e:
        report["errors"].append(f"microphones: {e}")
    if cameras:
        report["cameras"] = [asdict(c) for c in list_cameras(max_index)]
    return report
