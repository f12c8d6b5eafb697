"""CameraSource on a real live stream (ffmpeg -> UDP mpegts on 127.0.0.1 -> OpenCV).

There is no /dev/video* here, so a camera is exercised by URL through the same code
path a device index takes (capture thread, timestamps, disconnect/reconnect).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from avfuse.engine.sources.base import SourceStatus
from avfuse.engine.sources.camera import CameraConfig, CameraSource, open_camera
from avfuse.errors import BackendUnavailable, DeviceNotFound, SourceError, UsageError

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")


class LiveStream:
    """ffmpeg sending testsrc2 (160x120, 15 fps, mpeg4 in mpegts) to a UDP port."""

    def __init__(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"udp://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, size: str = "160x120") -> None:
        self.proc = subprocess.Popen(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-f", "lavfi",
             "-i", f"testsrc2=size={size}:rate=15", "-c:v", "mpeg4", "-g", "15",
             "-f", "mpegts", f"{self.url}?pkt_size=1316"],
        )  # fmt: skip

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


@pytest.fixture
def stream() -> Iterator[LiveStream]:
    s = LiveStream()
    s.start()
    try:
        yield s
    finally:
        s.stop()


class FrameLog:
    """A FrameSink keeping timestamps, shapes and the time each call was made."""

    def __init__(self) -> None:
        self.host_ns: list[int] = []
        self.called_ns: list[int] = []
        self.shapes: list[tuple[int, ...]] = []
        self.means: list[float] = []
        self.statuses: list[SourceStatus] = []
        self.cv = threading.Condition()

    def video(self, frame: np.ndarray, *, device_time_s: float | None, host_ns: int) -> None:
        with self.cv:
            self.called_ns.append(time.monotonic_ns())
            self.host_ns.append(host_ns)
            self.shapes.append(frame.shape)
            self.means.append(float(frame.mean()))
            assert device_time_s is None and frame.dtype == np.uint8
            self.cv.notify_all()

    def audio(self, samples: np.ndarray, *, device_time_s: float | None, host_ns: int) -> None:
        raise AssertionError("a camera delivered audio")

    def status(self, status: SourceStatus) -> None:
        with self.cv:
            self.statuses.append(status)
            self.cv.notify_all()

    def wait_for(self, predicate, timeout: float) -> bool:
        with self.cv:
            return self.cv.wait_for(predicate, timeout)

    def kinds(self) -> list[str]:
        return [s.kind for s in self.statuses]


def test_live_stream_frames_have_increasing_timestamps_and_the_reported_size(
    stream: LiveStream,
) -> None:
    cam = CameraSource(device=stream.url, latency_ms=40.0, open_timeout_s=5.0)
    info = cam.open()
    assert info.video is not None and info.audio is None and info.live
    assert (info.video.width, info.video.height) == (160, 120)
    assert info.video.fps == pytest.approx(15.0, rel=0.01)
    log = FrameLog()
    cam.start(log)
    try:
        assert log.wait_for(lambda: len(log.host_ns) >= 20, timeout=15)
    finally:
        cam.stop()
    assert all(s == (120, 160, 3) for s in log.shapes)
    assert all(np.diff(log.host_ns) > 0)
    # stamped at grab time minus the 40 ms device latency
    assert all(c - h >= 40_000_000 for c, h in zip(log.called_ns, log.host_ns, strict=True))
    assert max(log.means) > 10  # testsrc2 is not black
    assert log.kinds() == [] and cam.frames == len(log.host_ns)


@pytest.mark.slow
def test_stream_that_stops_and_comes_back_is_reported_and_reconnected(stream: LiveStream) -> None:
    cam = CameraSource(device=stream.url, read_timeout_s=1.0, open_timeout_s=1.0)
    log = FrameLog()
    cam.start(log)
    try:
        assert log.wait_for(lambda: len(log.host_ns) >= 10, timeout=15)
        stream.stop()
        assert log.wait_for(lambda: "disconnected" in log.kinds(), timeout=10), log.kinds()
        time.sleep(2.0)  # several failed reopen attempts, reported once
        n = len(log.host_ns)
        stream.start(size="320x240")  # it comes back at another size
        assert log.wait_for(lambda: "reconnected" in log.kinds(), timeout=20), log.kinds()
        assert log.wait_for(lambda: len(log.host_ns) >= n + 10, timeout=10)
    finally:
        cam.stop(timeout=5)
    assert cam.finished.is_set()
    # the rings downstream were sized from SourceInfo: frames are scaled back, said once
    assert log.kinds() == ["disconnected", "reconnected", "warning"]
    assert all(s == (120, 160, 3) for s in log.shapes)
    assert all(s.recoverable and s.modality == "video" for s in log.statuses)
    assert all(np.diff(log.host_ns) > 0)


def test_camera_index_that_does_not_exist_is_a_one_line_device_not_found() -> None:
    if sys.platform.startswith("linux") and __import__("os").path.exists("/dev/video63"):
        pytest.skip("this machine has a /dev/video63")
    with pytest.raises(DeviceNotFound) as e:
        CameraSource(device="63").open()
    msg = str(e.value)
    assert "\n" not in msg and "camera 63" in msg and "available cameras" in msg
    with pytest.raises(DeviceNotFound, match="does not exist"):
        CameraSource(device="/no/such/camera.mp4").open()


def test_dead_stream_fails_within_the_open_timeout() -> None:
    dead = LiveStream()  # a free port nobody sends to
    with pytest.raises(SourceError) as e:
        CameraSource(device=dead.url, open_timeout_s=0.5, read_timeout_s=0.5).open()
    assert dead.url in str(e.value) and "\n" not in str(e.value)


def test_backend_defaults_and_choices() -> None:
    import cv2

    url = CameraSource(device="udp://127.0.0.1:9")
    assert url.api_preference() == cv2.CAP_FFMPEG
    index = CameraSource(device=0)
    want = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
    assert index.api_preference() == want
    assert CameraSource(device=0, backend="any").api_preference() == cv2.CAP_ANY
    gst = CameraSource(device=0, backend="gstreamer")
    if cv2.videoio_registry.hasBackend(cv2.CAP_GSTREAMER):
        assert gst.api_preference() == cv2.CAP_GSTREAMER
    else:
        with pytest.raises(BackendUnavailable, match="gstreamer"):
            gst.api_preference()


def test_config_is_checked_and_specs_parse() -> None:
    with pytest.raises(UsageError):
        CameraConfig(backend="dshow")  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        CameraConfig(width=0)
    assert CameraSource(device="2").config.device == 2
    src = open_camera("udp://127.0.0.1:5004", sample_rate=16000, latency_ms=30.0)
    assert isinstance(src, CameraSource)
    assert src.config.device == "udp://127.0.0.1:5004" and src.config.latency_ms == 30.0
    assert open_camera("").config.device == 0
