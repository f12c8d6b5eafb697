"""The machine checks of `avfuse doctor`: one function per part, each returning a `Check`.

Software (Python, avfuse, numpy, ONNX Runtime, PyAV, OpenCV, the ffmpeg command), the
model, and the capture side (PortAudio, microphones, cameras) are here; the GPU side
(driver, CUDA runtime, GPU, TensorRT, torch) is in `avfuse.doctor.gpu`. Devices are read
through avfuse's own code (`avfuse.engine.sources.devices`), so the doctor sees exactly
what `avfuse devices` and `avfuse run` see. Every function returns a row, whatever it
finds; none raises.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from avfuse.doctor.base import Check, one_line, run_command, version_tuple

#: oldest versions avfuse supports (pyproject.toml's bounds)
MIN_PYTHON = (3, 10)
MIN_NUMPY = (1, 26)
#: decoders the file and stream sources need most often
NEEDED_DECODERS = ("h264", "aac", "pcm_s16le")


def check_python() -> Check:
    """The interpreter running avfuse."""
    v = sys.version_info
    text = f"{v.major}.{v.minor}.{v.micro}"
    detail = f"{text} ({sys.executable})"
    if (v.major, v.minor) < MIN_PYTHON:
        want = ".".join(map(str, MIN_PYTHON))
        return Check(
            name="Python", section="software", status="fail", version=text,
            detail=f"{detail} is older than {want}",
            fix=f"install Python {want} or newer and reinstall avfuse with it",
        )  # fmt: skip
    return Check(name="Python", section="software", status="pass", detail=detail, version=text)


def check_avfuse() -> Check:
    """The avfuse package itself: its version and where it is imported from."""
    import avfuse

    where = Path(avfuse.__file__).resolve().parent
    return Check(
        name="avfuse", section="software", status="pass",
        detail=f"{avfuse.__version__} ({where})", version=avfuse.__version__,
    )  # fmt: skip


def check_numpy() -> Check:
    """numpy, at the version avfuse needs."""
    try:
        import numpy as np
    except ImportError as e:
        return _missing_core("numpy", "pip install 'numpy>=1.26'", e)
    want = ".".join(map(str, MIN_NUMPY))
    if version_tuple(np.__version__) < MIN_NUMPY:
        return Check(
            name="numpy", section="software", status="fail", version=np.__version__,
            detail=f"{np.__version__} is older than {want}", fix=f"pip install 'numpy>={want}'",
        )  # fmt: skip
    return Check(
        name="numpy", section="software", status="pass", detail=np.__version__,
        version=np.__version__,
    )  # fmt: skip


def check_onnxruntime() -> Check:
    """ONNX Runtime and the execution providers this build offers."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        return _missing_core("ONNX Runtime", "pip install onnxruntime", e)
    providers = list(ort.get_available_providers())
    shown = ", ".join(p.removesuffix("ExecutionProvider") for p in providers)
    build = "GPU build" if "CUDAExecutionProvider" in providers else "CPU build"
    detail = f"{ort.__version__} ({build}); providers: {shown}"
    if "CPUExecutionProvider" not in providers:
        return Check(
            name="ONNX Runtime", section="software", status="fail", version=ort.__version__,
            detail=detail + " - no CPU provider",
            fix="pip install --force-reinstall onnxruntime",
        )  # fmt: skip
    return Check(
        name="ONNX Runtime", section="software", status="pass", detail=detail,
        version=ort.__version__,
    )  # fmt: skip


def check_ffmpeg() -> Check:
    """The `ffmpeg` command (avfuse reads media through PyAV; the command makes test media
    and live streams)."""
    fix = "apt-get install ffmpeg (optional: avfuse reads media through PyAV)"
    path = shutil.which("ffmpeg")
    if path is None:
        return Check(
            name="FFmpeg", section="media", status="absent",
            detail="no ffmpeg command on PATH", fix=fix,
        )  # fmt: skip
    res = run_command([path, "-hide_banner", "-version"])
    line = res.first_line
    if res.returncode != 0 or not line.startswith("ffmpeg version "):
        return Check(
            name="FFmpeg", section="media", status="fail",
            detail=f"{path} -version failed: {one_line(line) or 'no output'}",
            fix="reinstall it: apt-get install --reinstall ffmpeg",
        )  # fmt: skip
    version = line.split()[2]
    return Check(
        name="FFmpeg", section="media", status="pass", detail=f"{version} ({path})",
        version=version,
    )  # fmt: skip


def check_pyav() -> Check:
    """PyAV (how avfuse decodes files and streams), its FFmpeg libraries and decoders."""
    try:
        import av
    except ImportError as e:
        return _missing_core("PyAV", "pip install av", e, "media")
    libs = getattr(av, "ffmpeg_version_info", None) or "?"
    codecs = set(getattr(av, "codecs_available", ()))
    missing = [c for c in NEEDED_DECODERS if not _has_decoder(av, c)]
    detail = f"{av.__version__}, FFmpeg libraries {libs}, {len(codecs)} codecs"
    if missing:
        return Check(
            name="PyAV", section="media", status="warn", version=av.__version__,
            detail=f"{detail}; no decoder for {', '.join(missing)}",
            fix="pip install --force-reinstall av (its wheels bundle a full FFmpeg)",
        )  # fmt: skip
    detail += f" ({', '.join(NEEDED_DECODERS)} decoders present)"
    return Check(name="PyAV", section="media", status="pass", detail=detail, version=av.__version__)


def _has_decoder(av: object, name: str) -> bool:
    try:
        av.codec.Codec(name, "r")  # type: ignore[attr-defined]
    except Exception:  # PyAV raises its own UnknownCodecError (a ValueError) or others
        return False
    return True


def check_opencv() -> Check:
    """OpenCV (camera capture and image kernels) and its video I/O backends."""
    try:
        import cv2
    except ImportError as e:
        return _missing_core("OpenCV", "pip install opencv-python-headless", e, "media")
    try:
        from cv2 import videoio_registry as reg

        names = [reg.getBackendName(b) for b in reg.getBackends()]
        backends = ", ".join(dict.fromkeys(names))  # one entry per backend, in OpenCV's order
    except Exception:  # an OpenCV without the registry: the version is still worth showing
        backends = "?"
    return Check(
        name="OpenCV", section="media", status="pass",
        detail=f"{cv2.__version__}; video I/O: {backends}", version=cv2.__version__,
    )  # fmt: skip


def check_portaudio() -> Check:
    """PortAudio through sounddevice (imported only now): the library microphones need."""
    from avfuse.engine.sources.devices import PORTAUDIO_HINT, import_sounddevice
    from avfuse.errors import BackendUnavailable

    try:
        sd = import_sounddevice()
    except BackendUnavailable as e:
        if isinstance(e.__cause__, OSError):  # the library, not the Python package
            return Check(
                name="PortAudio", section="media", status="absent",
                detail="libportaudio is not installed (no microphones without it)",
                fix=PORTAUDIO_HINT.split(": ", 1)[-1],
            )  # fmt: skip
        return Check(
            name="PortAudio", section="media", status="fail", detail=one_line(str(e)),
            fix="pip install sounddevice (and apt-get install libportaudio2)",
        )  # fmt: skip
    text = str(sd.get_portaudio_version()[1])
    version = text.split()[1].lstrip("V").rstrip(",") if text.startswith("PortAudio V") else text
    apis = ", ".join(a["name"] for a in sd.query_hostapis())
    return Check(
        name="PortAudio", section="media", status="pass", version=version,
        detail=f"{version} via sounddevice {sd.__version__}; host APIs: {apis}",
    )  # fmt: skip


def check_microphones() -> Check:
    """The microphones PortAudio sees (what `avfuse devices` lists)."""
    from avfuse.engine.sources.devices import list_microphones
    from avfuse.errors import BackendUnavailable

    try:
        mics = list_microphones()
    except BackendUnavailable as e:
        return Check(
            name="microphones", section="media", status="absent",
            detail=f"not listed: {one_line(str(e))}",
            fix="apt-get install libportaudio2 (see the PortAudio row)",
        )  # fmt: skip
    if not mics:
        return Check(
            name="microphones", section="media", status="absent",
            detail="PortAudio sees no input device",
            fix="plug in a microphone or start a sound server (PulseAudio, PipeWire); "
            "`avfuse devices` lists what PortAudio sees",
        )  # fmt: skip
    shown = ", ".join(
        f"{m.index} '{m.name}' ({m.host_api}, {m.channels} ch, {m.default_sample_rate:g} Hz)"
        + (" default" if m.is_default else "")
        for m in mics
    )
    n = len(mics)
    return Check(
        name="microphones", section="media", status="pass",
        detail=f"{n} input{'s' if n > 1 else ''}: {shown}",
    )  # fmt: skip


def check_cameras(*, timeout_s: float = 2.0) -> Check:
    """The cameras that open and deliver a frame (probing opens each one briefly)."""
    from avfuse.engine.sources.devices import camera_candidates, list_cameras

    fix = "plug in a camera, or give `avfuse run` a stream or file instead"
    candidates = camera_candidates()
    if not candidates and sys.platform.startswith("linux"):
        return Check(
            name="cameras", section="media", status="absent",
            detail="no camera (no /dev/video* device)", fix=fix,
        )  # fmt: skip
    cams = list_cameras(timeout_s=timeout_s)
    if not cams:
        if sys.platform.startswith("linux"):
            paths = ", ".join(p for _, p in candidates)
            return Check(
                name="cameras", section="media", status="warn",
                detail=f"{paths} present but none opens and delivers a frame",
                fix="check that you may read the device (the 'video' group) and that no "
                "other program holds it",
            )  # fmt: skip
        return Check(
            name="cameras", section="media", status="absent", detail="no camera opens", fix=fix
        )
    shown = ", ".join(f"{c.index} {c.path} {c.width}x{c.height} {c.fps:g} fps" for c in cams)
    return Check(name="cameras", section="media", status="pass", detail=shown)


def check_model(path: str | Path) -> Check:
    """The model the backends are checked with: its manifest, hash and files."""
    from avfuse.errors import AvfuseError
    from avfuse.manifest import load_manifest

    fix = model_fix(path)
    try:
        m = load_manifest(path)
    except AvfuseError as e:
        return Check(name="model", section="model", status="fail", detail=one_line(str(e)), fix=fix)
    if not m.model_path.is_file():
        return Check(
            name="model", section="model", status="fail",
            detail=f"{m.model_path} (named by the manifest) is missing", fix=fix,
        )  # fmt: skip
    hashed = "sha256 matches" if m.sha256 else "no sha256 recorded"
    return Check(
        name="model", section="model", status="pass",
        detail=f"{m.name}: {m.model_path} ({hashed}; {len(m.inputs)} inputs, "
        f"{len(m.labels)} labels)",
    )  # fmt: skip


def model_fix(path: str | Path) -> str:
    """How to repair a model that does not load: the bundled one, or one of the user's."""
    from avfuse.assets import default_model_path

    p = Path(path).resolve()
    if (p if p.is_dir() else p.parent) == default_model_path().resolve().parent:
        return "reinstall avfuse to restore its bundled model: pip install --force-reinstall avfuse"
    return "re-export the model (`avfuse export`) or give --model a valid model folder"


def _missing_core(name: str, fix: str, e: ImportError, section: str = "software") -> Check:
    return Check(
        name=name, section=section, status="fail",
        detail=f"does not import: {one_line(str(e))}", fix=fix,
    )  # fmt: skip


__all__ = [
    "check_avfuse",
    "check_cameras",
    "check_ffmpeg",
    "check_microphones",
    "check_model",
    "check_numpy",
    "check_onnxruntime",
    "check_opencv",
    "check_portaudio",
    "check_pyav",
    "check_python",
    "model_fix",
]
