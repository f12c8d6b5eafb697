"""WebhookSink: records POSTed to an HTTP endpoint, with a bounded backlog.

`--sink webhook:http://127.0.0.1:8080/events[,backlog=1000,timeout=2]`. The pipeline's
thread only appends the record's JSON line to a bounded queue and returns; a sender
thread POSTs what is queued as one newline-delimited body (`application/x-ndjson`),
retrying with capped exponential back-off while the endpoint is unreachable. When the
backlog is full the OLDEST line is dropped and counted, so a box that lost its network
for a day keeps running, keeps its newest records and says how many it lost.

A webhook is not `durable`: an endpoint that is down does not end the run (a network
outage is expected on an edge box); deliveries, failures and drops are counted in the
summary's `sinks` figures. What is still queued at the end is sent for up to `timeout`
more seconds.
"""

from __future__ import annotations

import collections
import threading
import urllib.error
import urllib.request
from typing import Any

from avfuse.engine.records import Record, RunInfo
from avfuse.engine.sinks import Sink
from avfuse.errors import UsageError
from avfuse.redact import redact


class WebhookSink(Sink):
    """POSTs records to `url` (see the module docstring).

    Args:
        url: the endpoint (http or https).
        backlog: most records queued while the endpoint is slow or down.
        timeout: seconds per request, and the longest the end of the run waits.
        spec: the --sink text (for messages; credentials are masked).
        batch: most records per request.
    """

    durable = False

    def __init__(
        self,
        *,
        url: str,
        backlog: int = 1000,
        timeout: float = 2.0,
        spec: str | None = None,
        batch: int = 100,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"--sink {redact(spec or url)}: the URL must start with http(s)://")
        if not 1 <= backlog <= 10_000_000:
            raise UsageError(f"--sink {redact(spec or url)}: backlog must be 1..10000000")
        if not 0.05 <= timeout <= 300:
            raise UsageError(f"--sink {redact(spec or url)}: timeout must be 0.05..300 s")
        self.url = url
        self.name = redact(spec or f"webhook:{url}")
        self.timeout = timeout
        self.batch = batch
        self._queue: collections.deque[str] = collections.deque(maxlen=backlog)
        self._cond = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        self.sent = 0
        self.dropped = 0
        self.failures = 0
        self._down = False
        self._idle = threading.Event()
        self._idle.set()

    def on_start(self, info: RunInfo) -> None:
        self._thread = threading.Thread(target=self._send_loop, daemon=True, name="avfuse-webhook")
        self._thread.start()

    def on_record(self, record: Record) -> None:
        line = record.json_line()
        with self._cond:
            if len(self._queue) == self._queue.maxlen:
                self.dropped += 1  # the deque drops the oldest line on append
            self._queue.append(line)
            self._idle.clear()
            self._cond.notify()

    def _take(self) -> list[str]:
        out: list[str] = []
        while self._queue and len(out) < self.batch:
            out.append(self._queue.popleft())
        return out

    def _post(self, lines: list[str]) -> None:
        body = ("\n".join(lines) + "\n").encode()
        req = urllib.request.Request(
            self.url, data=body, method="POST",
            headers={"Content-Type": "application/x-ndjson"},
        )  # fmt: skip
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            if resp.status >= 300:
                raise urllib.error.HTTPError(
                    self.url, resp.status, "not accepted", resp.headers, None
                )

    def _send_loop(self) -> None:
        delay = 0.1
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue and self._closing:
                    return
                lines = self._take()
            try:
                self._post(lines)
            except (OSError, urllib.error.URLError, ValueError):
                self.failures += 1
                self._down = True
                with self._cond:  # put them back in front (newest are kept if it overflows)
                    for line in reversed(lines):
                        if len(self._queue) == self._queue.maxlen:
                            self.dropped += 1
                            continue
                        self._queue.appendleft(line)
                    if self._closing:
                        return
                    self._cond.wait(delay)
                delay = min(delay * 2, 10.0)
                continue
            self.sent += len(lines)
            self._down = False
            delay = 0.1
            with self._cond:
                if not self._queue:
                    self._idle.set()

    @property
    def down(self) -> bool:
        """True while the last delivery failed."""
        return self._down

    def figures(self) -> dict[str, Any]:
        """Delivery figures (sent, dropped, failures, queued)."""
        return {
            "name": self.name,
            "sent": self.sent,
            "dropped": self.dropped,
            "failures": self.failures,
            "queued": len(self._queue),
        }

    def close(self) -> None:
        if not self._down:
            self._idle.wait(self.timeout)  # the sender finishes what is queued (bounded)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(self.timeout + 1.0)


__all__ = ["WebhookSink"]
