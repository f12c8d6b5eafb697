"""Device listing and lookup (`avfuse devices`), with and without a sound server."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from avfuse.commands.devices import format_report
from avfuse.engine.sources.devices import camera_candidates, resolve_microphone
from avfuse.errors import DeviceNotFound
from tests.fixtures.pulse import PulseServer, pulse  # noqa: F401

HIDE_PORTAUDIO = (
    "import ctypes.util\n"
    "orig = ctypes.util.find_library\n"
    "ctypes.util.find_library = lambda n: None if 'portaudio' in n else orig(n)\n"
)


def _avfuse(*args: str, env: dict[str, str] | None = None, prelude: str = "") -> tuple[int, str]:
    code = f"{prelude}import sys\nfrom avfuse.cli import main\nsys.exit(main({list(args)!r}))\n"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    return out.returncode, out.stdout + out.stderr


@pytest.mark.audio
def test_devices_lists_the_pulseaudio_microphones(pulse: PulseServer) -> None:  # noqa: F811
    rc, text = _avfuse("devices", env=pulse.env)
    assert rc == 0, text
    assert "Microphones" in text and "Cameras" in text
    rows = [line.split() for line in text.splitlines() if "ALSA" in line]
    names = {r[2] if r[0] == "*" else r[1] for r in rows}
    assert {"pulse", "default"} <= names, text
    rc, text = _avfuse("devices", "--json", "--no-cameras", env=pulse.env)
    report = json.loads(text[text.index("{") :])
    mics = {m["name"]: m for m in report["microphones"]}
    assert {"pulse", "default"} <= set(mics)
    assert mics["pulse"]["host_api"] == "ALSA" and mics["pulse"]["channels"] >= 1
    assert sum(m["is_default"] for m in mics.values()) <= 1


@pytest.mark.audio
def test_microphones_resolve_by_index_name_and_default(pulse: PulseServer) -> None:  # noqa: F811
    by_name = resolve_microphone("puls")  # a substring is enough when it is unambiguous
    assert by_name.name == "pulse"
    assert resolve_microphone(by_name.index) == by_name
    assert resolve_microphone(str(by_name.index)) == by_name
    assert resolve_microphone("default").name in {"default", "pulse"}
    with pytest.raises(DeviceNotFound, match="'pulse'"):
        resolve_microphone(999)


def test_devices_without_a_sound_server_says_so_and_exits_0(tmp_path) -> None:
    env = {"PATH": "/usr/bin:/bin", "PULSE_SERVER": f"unix:{tmp_path}/no-server"}
    env.update(HOME=str(tmp_path), PULSE_RUNTIME_PATH=str(tmp_path))
    rc, text = _avfuse("devices", env=env)
    assert rc == 0, text
    if "Microphones\n  none found" not in text:  # a machine with a real sound card
        assert "rate (Hz)" in text
    if not camera_candidates():
        assert "Cameras\n  none found: no camera opens" in text


def test_devices_without_portaudio_names_the_fix_and_still_lists_cameras() -> None:
    rc, text = _avfuse("devices", prelude=HIDE_PORTAUDIO)
    assert rc == 0, text
    assert "unavailable: microphones: PortAudio is missing: apt-get install libportaudio2" in text
    assert "Cameras" in text


def test_table_formatting() -> None:
    report = {
        "microphones": [
            {
                "index": 3,
                "name": "USB Mic",
                "host_api": "ALSA",
                "default_sample_rate": 48000.0,
                "channels": 2,
                "is_default": True,
            },
        ],  # fmt: skip
        "cameras": [{"index": 0, "path": "/dev/video0", "width": 640, "height": 480, "fps": 30.0}],
        "errors": [],
    }
    text = format_report(report)
    assert "USB Mic" in text and "48000" in text and "* default input" in text
    assert "/dev/video0" in text and "640x480" in text
    assert "none found" not in text
