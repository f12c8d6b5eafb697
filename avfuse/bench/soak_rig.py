"""The real components a soak run breaks on cue, and the probe that watches the run.

    UdpSender        a real ffmpeg process streaming a file on a loop as MPEG-TS over
                     UDP on 127.0.0.1; `kill()` kills it (SIGKILL, as a crashed encoder
                     or a pulled cable), `start()` brings a new one up on the same port
    WebhookEndpoint  a real HTTP server on 127.0.0.1 taking the webhook sink's NDJSON
                     POSTs; `stall(s)` makes it stop answering for s seconds (requests
                     are held open and then closed without a reply, as a hung server)
    FaultyBackend    the real ONNX Runtime backend; `arm()` makes its next call raise
                     BackendError once
    SoakProbe        a CallbackSink's hooks: what the run tells its sinks, the latency
                     histogram at every stats tick, and the slow sink (`arm_slow(s)`:
                     the next record blocks the pipeline's thread for s seconds)

Everything the probe learns on the pipeline's thread crosses to the soak's thread as
immutable values: records as tuples on a queue, each tick as one `Tick` swapped in.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import queue
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avfuse.backends.ort import OnnxRuntimeBackend
from avfuse.engine.records import FaultRecord, Record, Stats, WarningRecord
from avfuse.engine.sinks import CallbackSink
from avfuse.errors import BackendError, SourceError


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class UdpSender:
    """ffmpeg streaming `path` on a loop, in real time, to udp://127.0.0.1:PORT (copied,
    not re-encoded: the sender costs almost no CPU).

    Args:
        ffmpeg: the ffmpeg command.
        path: the media file to stream.
        port: the UDP port (default: a free one).
        muxrate: pad the MPEG-TS to this constant rate (e.g. "8M"), as a camera sending
            constant-bitrate TS does; None sends the file's own rate.
    """

    def __init__(
        self, ffmpeg: str, path: Path, *, port: int | None = None, muxrate: str | None = None
    ) -> None:
        self.url = f"udp://127.0.0.1:{port or free_udp_port()}"
        rate = ["-muxrate", muxrate] if muxrate else []
        self._args = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-re",
                      "-stream_loop", "-1", "-i", str(path), "-c", "copy", *rate, "-f", "mpegts",
                      self.url]  # fmt: skip
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None
        self.starts = 0

    def start(self) -> None:
        """Start a sender (its own process group; stderr kept for `error_tail`).

        Raises:
            SourceError: ffmpeg exited at once (its message).
        """
        self.kill()
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in kill()
        self._proc = subprocess.Popen(self._args, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=self._log,
                                      start_new_session=True)  # fmt: skip
        self.starts += 1
        time.sleep(0.2)
        if self._proc.poll() is not None:
            raise SourceError(f"ffmpeg could not stream to {self.url}: {self.error_tail()}")

    def error_tail(self) -> str:
        """The last lines ffmpeg logged."""
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-500:].strip()

    @property
    def alive(self) -> bool:
        """True while the sender runs."""
        return self._proc is not None and self._proc.poll() is None

    def kill(self) -> None:
        """Kill the sender at once (SIGKILL to its group) and reap it."""
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(10)
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        ep = self.server.endpoint
        held = ep.hold()
        if held:  # a hung server: the request stays open, then the connection just closes
            self.close_connection = True
            return
        ep.took(body.count(b"\n"))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()


class _Server(http.server.ThreadingHTTPServer):
    endpoint: WebhookEndpoint


class WebhookEndpoint:
    """An HTTP endpoint on 127.0.0.1 for the webhook sink (see the module docstring)."""

    def __init__(self) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.endpoint = self
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/events"
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._resume_at = 0.0
        self.records = 0  # lines of answered requests
        self.answered = 0
        self.unanswered = 0
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True, name="soak-webhook-endpoint"
        )
        self._thread.start()

    def stall(self, seconds: float) -> None:
        """Stop answering for `seconds` from now."""
        with self._lock:
            self._resume_at = time.monotonic() + seconds

    @property
    def stalled(self) -> bool:
        """True while the endpoint does not answer."""
        return time.monotonic() < self._resume_at

    def hold(self) -> bool:
        """On a request: while stalled, hold it until the stall ends; True when held."""
        left = self._resume_at - time.monotonic()
        if left <= 0:
            return False
        with self._lock:
            self.unanswered += 1
        self._closing.wait(left)
        return True

    def took(self, lines: int) -> None:
        """An answered request carried `lines` records."""
        with self._lock:
            self.answered += 1
            self.records += lines

    def close(self) -> None:
        """Stop serving (a held request is let go at once)."""
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class FaultyBackend(OnnxRuntimeBackend):
    """The real ONNX Runtime backend whose next call can be made to fail (`arm`).

    `extra_delay_s` slows every call down (only to check that the soak's latency verdict
    catches a pipeline that gets slower).
    """

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._armed = threading.Event()
        self.raised = 0
        self.extra_delay_s = 0.0

    def arm(self) -> None:
        """The next inference raises BackendError (once)."""
        self._armed.set()

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._armed.is_set():
            self._armed.clear()
            self.raised += 1
            raise BackendError("injected soak fault: the backend failed this call once")
        if self.extra_delay_s:
            time.sleep(self.extra_delay_s)
        return super()._infer(feeds)


@dataclass(frozen=True)
class Tick:
    """One stats tick as the probe saw it on the pipeline's thread.

    Attributes:
        time_ns: when (the pipeline's clock, monotonic ns).
        snapshot: the pipeline's live figures of that tick (`Pipeline.snapshot`).
        e2e_count: end-to-end latencies recorded so far.
        e2e_cumulative: how many of them were at or below each of the probe's bounds.
    """

    time_ns: int
    snapshot: dict[str, Any]
    e2e_count: int
    e2e_cumulative: tuple[int, ...]

    @property
    def time_s(self) -> float:
        """`time_ns` in seconds (monotonic)."""
        return self.time_ns / 1e9


class SoakProbe:
    """The soak's eyes inside the run (see the module docstring).

    Args:
        bounds_ms: latency bounds the end-to-end histogram is read at, every tick.
    """

    def __init__(self, bounds_ms: tuple[float, ...]) -> None:
        self.bounds_ms = bounds_ms
        #: set once the pipeline exists; ticks before that are skipped
        self.pipeline: Any = None
        #: the newest tick (replaced whole, never updated)
        self.latest: Tick | None = None
        #: (monotonic s, type, kind, stream, source, recoverable) of every record, and
        #: ("slow_sink", start, end) when the slow sink blocked
        self.records: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._slow = threading.Event()
        self._slow_s = 0.0

    def sink(self) -> CallbackSink:
        """The CallbackSink that feeds this probe."""
        return CallbackSink(self.on_record, on_stats=self.on_stats)

    def arm_slow(self, seconds: float) -> None:
        """The next record blocks the pipeline's thread for `seconds` (once)."""
        self._slow_s = seconds
        self._slow.set()

    def on_record(self, record: Record) -> None:
        health = isinstance(record, (WarningRecord, FaultRecord))
        kind = record.kind if health else None
        source = record.source if health else None
        rec = record.recoverable if isinstance(record, FaultRecord) else None
        self.records.put((time.monotonic(), record.type, kind, record.stream, source, rec))
        if self._slow.is_set():
            self._slow.clear()
            t0 = time.monotonic()
            time.sleep(self._slow_s)  # the fault: a callback that holds the pipeline up
            self.records.put(("slow_sink", t0, time.monotonic()))

    def on_stats(self, stats: Stats) -> None:
        pipe = self.pipeline
        if pipe is None or pipe.snapshot is None:
            return
        h = pipe.metrics.hist["end_to_end"]
        self.latest = Tick(
            time_ns=time.monotonic_ns(),
            snapshot=pipe.snapshot,
            e2e_count=h.count,
            e2e_cumulative=tuple(h.cumulative(self.bounds_ms)),
        )


__all__ = [
    "FaultyBackend",
    "SoakProbe",
    "Tick",
    "UdpSender",
    "WebhookEndpoint",
    "free_udp_port",
]
