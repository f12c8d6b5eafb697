"""WebhookSink: records POSTed to an HTTP endpoint, with a bounded backlog.

`--sink webhook:http://127.0.0.1:8080/events[,backlog=1000,timeout=2]`. Each delivery
is one POST of up to 100 queued records as newline-delimited JSON
(`application/x-ndjson`); any 2xx answer takes them. Queueing, back-off and drop
counting are the BacklogSink's (see `avfuse.engine.sink_backlog`).
"""

from __future__ import annotations

import urllib.error
import urllib.request

from avfuse.engine.sink_backlog import BacklogSink, DeliveryError
from avfuse.errors import UsageError
from avfuse.redact import redact


class WebhookSink(BacklogSink):
    """POSTs records to `url` (see the module docstring).

    Args:
        url: the endpoint (http or https).
        backlog: most records queued while the endpoint is slow or down.
        timeout: seconds per request, and the longest the end of the run waits.
        spec: the --sink text (for messages; credentials are masked).
        batch: most records per request.
    """

    thread_name = "avfuse-webhook"

    def __init__(
        self,
        *,
        url: str,
        backlog: int = 1000,
        timeout: float = 2.0,
        spec: str | None = None,
        batch: int = 100,
    ) -> None:
        spec = spec or f"webhook:{url}"
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"--sink {redact(spec)}: the URL must start with http(s)://")
        super().__init__(spec=spec, backlog=backlog, timeout=timeout, batch=batch)
        self.url = url

    def _deliver(self, lines: list[str]) -> None:
        body = ("\n".join(lines) + "\n").encode()
        req = urllib.request.Request(
            self.url, data=body, method="POST",
            headers={"Content-Type": "application/x-ndjson"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                if not 200 <= resp.status < 300:
                    raise DeliveryError(f"HTTP {resp.status}")
        except urllib.error.HTTPError as e:  # 4xx/5xx: not taken, retried
            raise DeliveryError(f"HTTP {e.code}") from e


__all__ = ["WebhookSink"]
