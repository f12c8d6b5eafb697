"""Camera capture through OpenCV: a device index, a device path or a stream URL.

One capture thread grabs continuously and hands every frame to the sink at once, so
neither the driver's queue (CAP_PROP_BUFFERSIZE=1 where supported) nor a network
socket accumulates stale frames: what the pipeline sees is always the newest frame.
Frames are retrieved into one preallocated buffer (no allocation per frame) and
stamped with `time.monotonic_ns()` at the moment `grab()` returned, minus a configured
device latency (exposure + transfer; webcams have no clock OpenCV can read, so
`device_time_s` is None and the pipeline uses host time only).

Open and read timeouts (CAP_PROP_OPEN_TIMEOUT_MSEC / CAP_PROP_READ_TIMEOUT_MSEC) make a
dead stream fail instead of hanging; a camera or stream that stops mid-run is
reported once as "disconnected" and reopened with capped exponential back-off
("reconnected" when frames flow again).

A stream URL is opened as given and shown (name, messages) with its credentials masked.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, replace
from dataclasses import fields as dataclass_fields
from typing import Any, Literal

import numpy as np

from avfuse.engine.sources import devices
from avfuse.engine.sources.base import FrameSink, Source, SourceInfo, SourceStatus, VideoFormat
from avfuse.errors import BackendUnavailable, DeviceNotFound, SourceError, UsageError
from avfuse.redact import redact

Backend = Literal["auto", "v4l2", "gstreamer", "ffmpeg", "any"]


@dataclass(frozen=True, kw_only=True)
class CameraConfig:
    """How to open a camera.

    Attributes:
        device: index (0), device path (/dev/video0) or URL (udp://, rtsp://, http://).
        width / height / fps: what to ask the device for (None: its default). What it
            really delivers is reported in `SourceInfo.video`; frames are never rescaled
            to the request.
        backend: OpenCV backend; "auto" picks V4L2 for indices and /dev paths on Linux,
            FFmpeg for URLs and files, and OpenCV's own choice otherwise.
        latency_ms: device latency subtracted from the grab time.
        open_timeout_s / read_timeout_s: bounds on opening and on waiting for a frame.
        reconnect_initial_s / reconnect_max_s: back-off between reopen attempts.
    """

    device: int | str = 0
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    backend: Backend = "auto"
    latency_ms: float = 0.0
    open_timeout_s: float = 5.0
    read_timeout_s: float = 2.0
    reconnect_initial_s: float = 0.25
    reconnect_max_s: float = 4.0

    def __post_init__(self) -> None:
        if self.backend not in ("auto", "v4l2", "gstreamer", "ffmpeg", "any"):
            raise UsageError(
                f"camera backend '{self.backend}': use auto, v4l2, gstreamer, ffmpeg or any"
            )
        for name in ("width", "height", "fps"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise UsageError(f"camera {name} {v}: must be positive (or left unset)")
        if self.open_timeout_s <= 0 or self.read_timeout_s <= 0:
            raise UsageError("camera timeouts must be positive")
        if self.reconnect_initial_s <= 0 or self.reconnect_max_s < self.reconnect_initial_s:
            raise UsageError("camera reconnect delays: need 0 < initial <= max")

    def __repr__(self) -> str:
        """The fields, with credentials in a stream URL masked (configs end up in logs)."""
        items = (
            f"{f.name}={(redact(v) if f.name == 'device' and isinstance(v, str) else v)!r}"
            for f in dataclass_fields(self)
            for v in [getattr(self, f.name)]
        )
        return f"CameraConfig({', '.join(items)})"


def parse_device(device: int | str) -> int | str:
    """'0' -> 0; paths and URLs stay strings."""
    if isinstance(device, str) and device.strip().isdigit():
        return int(device)
    return device


def is_url(device: int | str) -> bool:
    """True for network streams (scheme://...)."""
    return isinstance(device, str) and "://" in device


class CameraSource(Source):
    """Live video from a camera or a live stream through OpenCV, as bgr24 frames.

    Attributes (read from any thread):
        frames: frames delivered to the sink.
        decode_errors: frames grabbed that could not be decoded (skipped).
        last_host_ns: timestamp of the last frame delivered (0 before any).
    """

    def __init__(
        self,
        *,
        config: CameraConfig | None = None,
        name: str | None = None,
        audio: bool = False,
        video: bool = True,
        **fields: Any,
    ) -> None:
        """`fields` override those of `config`; `audio`/`video` are the modality selectors
        every source takes (a camera has video only)."""
        if audio or not video:
            raise UsageError("a camera gives video only: use it as the video source")
        cfg = replace(config or CameraConfig(), **fields)
        self.config = replace(cfg, device=parse_device(cfg.device))
        #: the device as shown to people: a stream URL's credentials masked
        self.shown = redact(str(self.config.device))
        super().__init__(name=redact(name) if name else f"camera:{self.shown}")
        self.frames = 0
        self.last_host_ns = 0
        self._cap: Any = None
        self._buf: np.ndarray | None = None
        self._pending_ns = 0  # timestamp of a frame read while opening, not yet delivered
        self._latency_ns = round(self.config.latency_ms * 1e6)
        self._resize_warned = 0  # 1: frames are being scaled, 2: and that was reported
        self.decode_errors = 0
        self._running = False

    # ---- opening -------------------------------------------------------------------
    def api_preference(self) -> int:
        """The OpenCV backend constant this config opens with."""
        import cv2

        b, dev = self.config.backend, self.config.device
        if b == "auto":
            linux = sys.platform.startswith("linux")
            if isinstance(dev, int) or str(dev).startswith("/dev/"):
                return cv2.CAP_V4L2 if linux else cv2.CAP_ANY
            return cv2.CAP_FFMPEG
        api = {"v4l2": cv2.CAP_V4L2, "gstreamer": cv2.CAP_GSTREAMER, "ffmpeg": cv2.CAP_FFMPEG}
        api_id = api.get(b, cv2.CAP_ANY)
        if api_id != cv2.CAP_ANY and not cv2.videoio_registry.hasBackend(api_id):
            raise BackendUnavailable(
                f"this OpenCV build has no {b} backend: choose another camera backend "
                "(auto, v4l2, ffmpeg) or install an OpenCV built with it"
            )
        return api_id

    def _open(self) -> SourceInfo:
        self._open_capture()
        assert self._buf is not None  # set by _open_capture
        import cv2

        h, w = self._buf.shape[:2]
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not 0.0 < fps <= 1000.0:
            fps = float(self.config.fps or 0.0)  # 0.0: the device does not say
        video = VideoFormat(width=w, height=h, fps=fps, pixel_format="bgr24")
        return SourceInfo(name=self.name, audio=None, video=video, live=True)

    def _open_capture(self) -> None:
        """Open the device and read its first frame into the buffer (bounded waits)."""
        import cv2

        cfg, dev, shown = self.config, self.config.device, self.shown
        self._check_exists(dev)
        api = self.api_preference()
        timeouts = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, round(cfg.open_timeout_s * 1000)]
        timeouts += [cv2.CAP_PROP_READ_TIMEOUT_MSEC, round(cfg.read_timeout_s * 1000)]
        # FFmpeg honours both timeouts and refuses to open with any parameter it does not
        # know; other backends get their settings through set() after opening, which
        # reports (and survives) what a driver does not support.
        cap = cv2.VideoCapture(dev, api, timeouts if api == cv2.CAP_FFMPEG else [])
        if cap.isOpened() and api != cv2.CAP_FFMPEG:
            cap.set(cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeouts[3])
            wanted = {
                cv2.CAP_PROP_FRAME_WIDTH: cfg.width,
                cv2.CAP_PROP_FRAME_HEIGHT: cfg.height,
                cv2.CAP_PROP_FPS: cfg.fps,
            }
            for prop, v in wanted.items():
                if v is not None:
                    cap.set(prop, float(v))
        if not cap.isOpened():
            cap.release()
            if is_url(dev):
                raise SourceError(
                    f"cannot open camera stream {shown} within {cfg.open_timeout_s:g} s: check "
                    "the URL and that the stream is running"
                )
            raise SourceError(
                f"camera {shown} exists but does not open: close other programs using it, "
                "check permissions (group 'video') or try another backend (v4l2, gstreamer, any)"
            )
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # keep only the newest frame where supported
        if not cap.grab():
            cap.release()
            raise SourceError(
                f"camera {shown} opened but gave no frame within {cfg.read_timeout_s:g} s: "
                "check that it (or the stream) is delivering"
            )
        self._pending_ns = time.monotonic_ns() - self._latency_ns
        ok, frame = cap.retrieve(self._buf) if self._buf is not None else cap.retrieve()
        if not ok or frame is None:
            cap.release()
            raise SourceError(f"camera {shown} gave a frame that cannot be decoded: try again")
        self._cap = cap
        self._store(frame)

    @staticmethod
    def _check_exists(dev: int | str) -> None:
        if is_url(dev):
            return
        if isinstance(dev, int):
            if not sys.platform.startswith("linux"):
                return  # other systems have no device files to look at
            path = f"/dev/video{dev}"
        else:
            path = dev
        if not os.path.exists(path):
            raise DeviceNotFound(
                f"camera {dev} not found ({path} does not exist); available cameras: "
                f"{devices.describe_cameras()} (see `avfuse devices`)"
            )

    def _store(self, frame: np.ndarray) -> None:
        """Keep `frame` in the preallocated buffer; a size change after a reconnect is
        scaled back to the size announced in SourceInfo (the rings downstream are fixed)."""
        import cv2

        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        if self._buf is None:
            self._buf = np.ascontiguousarray(frame)
        elif frame is not self._buf:
            if frame.shape == self._buf.shape:
                self._buf[...] = frame
            else:
                cv2.resize(frame, self._buf.shape[1::-1], dst=self._buf)
                self._resize_warned = max(self._resize_warned, 1)

    # ---- the capture thread --------------------------------------------------------
    def _run(self, sink: FrameSink) -> None:
        self._running = True
        try:
            self._loop(sink)
        finally:  # the device is released by the thread that uses it
            self._release()
            self._running = False

    def _loop(self, sink: FrameSink) -> None:
        cfg = self.config
        delay, outage = cfg.reconnect_initial_s, False
        while not self.stopping.is_set():
            if self._cap is not None and self._pending_ns:
                if outage:
                    outage, delay = False, cfg.reconnect_initial_s
                    sink.status(self._status("reconnected", f"camera {self.shown} is back"))
                self._deliver(sink, self._pending_ns)
                self._pending_ns = 0
            if self._cap is not None and self._cap.grab():
                host_ns = time.monotonic_ns() - self._latency_ns
                ok, frame = self._cap.retrieve(self._buf)
                if ok and frame is not None:
                    self._store(frame)
                    self._deliver(sink, host_ns)
                else:
                    self.decode_errors += 1
                continue
            if self.stopping.is_set():
                break
            self._release()
            if not outage:
                outage = True
                msg = f"camera {self.shown} stopped delivering; reconnecting"
                sink.status(self._status("disconnected", msg))
            if self.stopping.wait(delay):
                break
            delay = min(delay * 2, cfg.reconnect_max_s)
            try:
                self._open_capture()
            except (SourceError, OSError):
                self._release()

    def _deliver(self, sink: FrameSink, host_ns: int) -> None:
        assert self._buf is not None  # internal invariant: set by the first read
        sink.video(self._buf, device_time_s=None, host_ns=host_ns)
        self.last_host_ns = host_ns
        self.frames += 1
        if self._resize_warned == 1:  # reported once
            self._resize_warned = 2
            msg = f"camera {self.shown} changed size; frames are scaled back"
            sink.status(self._status("warning", msg))

    def _release(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()

    def _close(self) -> None:
        if not self._running:  # else the capture thread, stuck in a read, releases it
            self._release()
        self._info = None
        self._pending_ns = 0

    def _status(self, kind: Any, message: str) -> SourceStatus:
        return SourceStatus(kind=kind, source=self.name, modality="video", message=message)


def open_camera(arg: str, *, sample_rate: int = 0, realtime: bool = True, **kw: Any) -> Source:
    """Opener for `open_source("camera:ARG")` (ARG: index, /dev path or URL; default 0)."""
    del sample_rate, realtime  # a camera has no audio and is paced by the device
    return CameraSource(device=parse_device(arg) if arg else 0, **kw)
