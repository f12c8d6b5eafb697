"""`MetricsServer`: Prometheus metrics, liveness and readiness over HTTP, beside a run.

    GET /metrics   the Prometheus text format of `SnapshotCollector` (a private registry:
                   nothing of prometheus_client's process-wide default registry leaks in)
    GET /healthz   200 while the run goes on and its snapshot is younger than
                   `stale_after_s`, else 503; the body is one line saying why
    GET /readyz    200 while the run makes decisions or has a source up (fresh figures),
                   else 503

It listens on 127.0.0.1 unless told otherwise: the figures name streams and models, and an
edge box should not show them to its network by accident. Requests are served by a
`ThreadingHTTPServer` on daemon threads that read only the snapshot callable, so a slow or
stuck scraper never holds up the pipeline, and the pipeline never waits for a scrape.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from avfuse.engine.clock import now_ns
from avfuse.errors import UsageError
from avfuse.ops.health import Verdict, liveness, readiness
from avfuse.ops.metrics import SnapshotCollector, prometheus_core

#: a wildcard address is woken through the loopback of its family
_ANY_TO_LOOPBACK = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}

Snapshot = Callable[[], Mapping[str, Any] | None]


class _Handler(BaseHTTPRequestHandler):
    """Routes the three paths; everything else is 404 (HEAD answers like GET, no body)."""

    server: _Server
    #: HTTP/1.0: one request per connection, so no kept-alive connection outlives `stop`
    protocol_version = "HTTP/1.0"
    #: a client that sends nothing for this long is dropped (its thread must not linger)
    timeout = 10.0

    def do_GET(self) -> None:  # noqa: N802 - the http.server hook name
        self._answer(body=True)

    def do_HEAD(self) -> None:  # noqa: N802 - the http.server hook name
        self._answer(body=False)

    def _answer(self, *, body: bool) -> None:
        owner = self.server.owner
        path = urlsplit(self.path).path
        try:
            if path == "/metrics":
                status, ctype, data = HTTPStatus.OK, owner.content_type, owner.exposition()
            elif path in ("/healthz", "/readyz"):
                v = owner.health() if path == "/healthz" else owner.ready()
                status = HTTPStatus.OK if v.ok else HTTPStatus.SERVICE_UNAVAILABLE
                ctype, data = "text/plain; charset=utf-8", (v.reason + "\n").encode()
            else:
                status, ctype = HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8"
                data = f"no such path {path!r}; try /metrics, /healthz or /readyz\n".encode()
        except Exception as e:  # noqa: BLE001 - a scrape must get an answer, not a reset
            status, ctype = HTTPStatus.INTERNAL_SERVER_ERROR, "text/plain; charset=utf-8"
            data = f"error: {type(e).__name__}: {e}\n".encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the hook's name
        """Silent: a scrape a second must not fill the console or the journal."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    timeout = None  # handle_request waits for a connection as long as it takes

    def __init__(self, address: tuple[str, int], owner: MetricsServer) -> None:
        self.owner = owner
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Silent: a scraper that hung up mid-answer is no fault of the run's (the default
        prints a traceback to stderr)."""


class MetricsServer:
    """Serves /metrics, /healthz and /readyz for a run on a background daemon thread.

    Args:
        snapshot: returns the latest `Pipeline.snapshot` (e.g. ``lambda: pipe.snapshot``);
            called on the server's threads, so it must only read.
        host: the address to listen on; 127.0.0.1 keeps the figures on the box.
        port: the TCP port; 0 picks a free one (see `port` after `start`).
        stale_after_s: /healthz fails (and `avfuse_up` is 0) once the snapshot is this old.

    Raises:
        BackendUnavailable: prometheus_client is not installed (with the install command).
        UsageError: the port or the staleness limit is out of range.
    """

    def __init__(
        self,
        *,
        snapshot: Snapshot,
        host: str = "127.0.0.1",
        port: int,
        stale_after_s: float = 5.0,
    ) -> None:
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
            raise UsageError(f"--metrics-port must be a TCP port in [0, 65535], got {port!r}")
        if not 0 < stale_after_s < float("inf"):
            raise UsageError(f"stale_after_s must be a positive number, got {stale_after_s!r}")
        core = prometheus_core()  # fails here, before the run, when it is missing
        from prometheus_client import exposition

        self._snapshot = snapshot
        self.host = host
        self._requested_port = port
        self.stale_after_s = float(stale_after_s)
        self._since = now_ns()
        self._collector = SnapshotCollector(
            snapshot, stale_after_s=self.stale_after_s, since_ns=self._since
        )
        self._registry = core.CollectorRegistry(auto_describe=False)
        self._registry.register(self._collector)
        self._generate = exposition.generate_latest
        self.content_type: str = exposition.CONTENT_TYPE_LATEST
        self._server: _Server | None = None
        self._stopping = False
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ answers
    def exposition(self) -> bytes:
        """The /metrics body: the Prometheus text format of the latest snapshot."""
        return self._generate(self._registry)

    def health(self) -> Verdict:
        """The /healthz verdict (see avfuse.ops.health.liveness)."""
        return liveness(
            self._snapshot(),
            now_ns=now_ns(),
            since_ns=self._since,
            stale_after_s=self.stale_after_s,
        )

    def ready(self) -> Verdict:
        """The /readyz verdict (see avfuse.ops.health.readiness)."""
        return readiness(self._snapshot(), now_ns=now_ns(), stale_after_s=self.stale_after_s)

    # ------------------------------------------------------------------ lifecycle
    @property
    def port(self) -> int:
        """The bound port once started (the one asked for before)."""
        if self._server is None:
            return self._requested_port
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """http://HOST:PORT of the running server."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> MetricsServer:
        """Bind and serve on a daemon thread; returns self.

        Raises:
            UsageError: the address cannot be bound (in use, not on this host).
        """
        if self._server is not None:
            return self
        try:
            server = _Server((self.host, self._requested_port), self)
        except OSError as e:
            raise UsageError(
                f"--metrics-port {self._requested_port}: cannot listen on "
                f"{self.host}:{self._requested_port} ({e.strerror or e}); "
                "pick a free port (0 chooses one) or stop what holds it"
            ) from e
        self._since = now_ns()
        self._collector.since_ns = self._since
        self._server = server
        self._stopping = False
        self._thread = threading.Thread(target=self._serve, daemon=True, name="avfuse-metrics")
        self._thread.start()
        return self

    def _serve(self) -> None:
        """Accept requests until `stop`; blocks in `select` between them (no polling)."""
        server = self._server
        assert server is not None  # set by start before the thread runs
        while not self._stopping:
            server.handle_request()

    def _wake(self, address: tuple[str, int]) -> None:
        """Unblock the accepting thread: one empty connection makes `select` return."""
        try:
            with socket.create_connection(address[:2], timeout=1.0):
                pass
        except OSError:
            pass  # nothing listens any more: the thread is not waiting either

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and release the port (safe to call twice)."""
        server = self._server
        if server is None:
            return
        self._stopping = True
        host, port = server.server_address[:2]
        self._wake((_ANY_TO_LOOPBACK.get(host, host), port))
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        server.server_close()
        self._server = None

    def __enter__(self) -> MetricsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["MetricsServer"]
