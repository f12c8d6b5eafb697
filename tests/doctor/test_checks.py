"""The software and media rows say what is installed on this machine, read independently."""

from __future__ import annotations

import ctypes.util
import glob
import importlib.metadata
import platform
import re
import shutil
import subprocess
import sys

import pytest

from tests.doctor.conftest import DoctorRun, run_doctor_cli
from tests.fixtures.pulse import PulseServer, pulse  # noqa: F401

HIDE_PORTAUDIO = (
    "import ctypes.util\n"
    "orig = ctypes.util.find_library\n"
    "ctypes.util.find_library = lambda n: None if 'portaudio' in n else orig(n)\n"
)


@pytest.mark.timeout(120)
def test_the_software_rows_report_the_versions_installed_here(doctor_json: DoctorRun) -> None:
    import onnxruntime

    py = doctor_json.row("Python")
    assert py["status"] == "pass" and py["version"] == platform.python_version()
    assert sys.executable in py["detail"]
    np_row = doctor_json.row("numpy")
    assert np_row["status"] == "pass"
    assert np_row["version"] == importlib.metadata.version("numpy")
    ort = doctor_json.row("ONNX Runtime")
    assert ort["status"] == "pass"
    assert ort["version"] == importlib.metadata.version("onnxruntime")
    short = [p.removesuffix("ExecutionProvider") for p in onnxruntime.get_available_providers()]
    assert ort["detail"].endswith(f"providers: {', '.join(short)}")
    av_row = doctor_json.row("PyAV")
    assert av_row["status"] == "pass" and av_row["version"] == importlib.metadata.version("av")


@pytest.mark.timeout(120)
def test_the_ffmpeg_row_gives_the_version_ffmpeg_itself_reports(doctor_json: DoctorRun) -> None:
    row = doctor_json.row("FFmpeg")
    path = shutil.which("ffmpeg")
    if path is None:
        assert row["status"] == "absent" and "apt-get install ffmpeg" in row["fix"]
        return
    first = subprocess.run(
        [path, "-version"], capture_output=True, text=True, timeout=30
    ).stdout.splitlines()[0]
    version = first.split()[2]  # "ffmpeg version 5.1.9-0+deb12u1 Copyright ..."
    assert row["status"] == "pass" and row["version"] == version
    assert path in row["detail"]


@pytest.mark.timeout(120)
def test_portaudio_is_present_here_with_its_version(doctor_json: DoctorRun) -> None:
    if ctypes.util.find_library("portaudio") is None:
        pytest.skip("libportaudio2 is not installed here (apt-get install libportaudio2)")
    import sounddevice

    row = doctor_json.row("PortAudio")
    assert row["status"] == "pass"
    assert re.fullmatch(r"\d+\.\d+\.\d+[\w.+-]*", row["version"]), row["version"]
    assert row["version"] in sounddevice.get_portaudio_version()[1]
    assert "ALSA" in row["detail"] or sys.platform != "linux"


@pytest.mark.timeout(120)
def test_a_missing_portaudio_library_is_absent_with_the_apt_fix_and_fails_nothing() -> None:
    run = run_doctor_cli("doctor", "--json", "--quick", prelude=HIDE_PORTAUDIO)
    row = run.row("PortAudio")
    assert row["status"] == "absent", row
    assert row["fix"] == "apt-get install libportaudio2"
    mics = run.row("microphones")
    assert mics["status"] == "absent" and "libportaudio2" in mics["fix"]
    assert run.report["ok"] is True and run.returncode == 0, run.stderr[-2000:]


@pytest.mark.timeout(120)
def test_the_cameras_row_matches_the_video_devices_here(doctor_json: DoctorRun) -> None:
    row = doctor_json.row("cameras")
    if sys.platform.startswith("linux") and not glob.glob("/dev/video*"):
        assert row["status"] == "absent" and "/dev/video" in row["detail"]
        assert row["fix"]
    else:
        assert row["status"] in ("pass", "warn"), row


@pytest.mark.timeout(120)
def test_torch_is_reported_at_its_installed_version(doctor_json: DoctorRun) -> None:
    row = doctor_json.row("torch")
    try:
        version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        assert row["status"] == "absent" and "avfuse[train]" in row["fix"]
        return
    assert row["status"] == "pass" and row["version"] == version


def _portaudio_inputs(env: dict[str, str]) -> list[str]:
    code = (
        "import json, sounddevice as sd\n"
        "print(json.dumps([d['name'] for d in sd.query_devices() "
        "if d['max_input_channels'] > 0]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert out.returncode == 0, out.stderr
    import json

    return json.loads(out.stdout)


@pytest.mark.audio
@pytest.mark.timeout(180)
def test_the_microphones_row_lists_the_inputs_of_a_real_pulseaudio_server(
    pulse: PulseServer,  # noqa: F811
) -> None:
    expected = _portaudio_inputs(pulse.env)
    assert "pulse" in expected  # the virtual microphone is reachable through ALSA's pulse
    run = run_doctor_cli("doctor", "--json", "--quick", env=pulse.env)
    row = run.row("microphones")
    assert row["status"] == "pass", row
    for name in expected:
        assert f"'{name}'" in row["detail"]
    assert row["detail"].startswith(f"{len(expected)} input")
