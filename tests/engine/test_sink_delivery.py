"""Sinks for boxes that run for months: a rotated JSONL file and a webhook with a backlog.

The webhook tests POST to a real HTTP server on 127.0.0.1 (http.server in a thread);
the rotation tests write real files. Expected figures come from the records fed in,
never from the sink.
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from avfuse.engine.pipeline import Pipeline
from avfuse.engine.records import RunInfo, WarningRecord
from avfuse.engine.sink_webhook import WebhookSink
from avfuse.engine.sinks import JsonlSink, make_sink
from avfuse.errors import UsageError
from tests.engine.pipeline_kit import Collect, ScriptedSource, config

pytestmark = pytest.mark.timeout(60)

INFO = RunInfo(model="m", labels=("a",), streams=())


def _warning(i: int) -> WarningRecord:
    return WarningRecord(source="s", kind="test", message=f"record {i:04d}", data={"i": i})


def _numbers(lines: list[str]) -> list[int]:
    return [json.loads(x)["data"]["i"] for x in lines]


# ------------------------------------------------------------------ JSONL rotation


def test_jsonl_rotates_by_size_keeping_the_newest_files_and_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    line_bytes = len(_warning(0).json_line()) + 1
    sink = JsonlSink(path=path, max_bytes=5 * line_bytes, keep=3)
    sink.on_start(INFO)
    for i in range(40):
        sink.on_record(_warning(i))
    sink.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["events.jsonl", "events.jsonl.1", "events.jsonl.2", "events.jsonl.3"]
    # oldest first: .3, .2, .1, then the live file; every line parses (none split)
    kept = []
    for name in ["events.jsonl.3", "events.jsonl.2", "events.jsonl.1", "events.jsonl"]:
        lines = (tmp_path / name).read_text().splitlines()
        assert len(lines) == (5 if name[-1].isdigit() else 0)
        kept += lines
    # 40 records, 5 a file: the 8th file filled with record 39 and was rotated at once,
    # so the live file is new and empty, and the 3 kept files hold records 25..39
    assert _numbers(kept) == list(range(25, 40))
    assert sink.rotations == 8


def test_jsonl_rotates_by_age(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    sink = JsonlSink(path=path, every_s=1.0, keep=2)
    sink.on_start(INFO)
    sink.on_record(_warning(0))
    assert not (tmp_path / "events.jsonl.1").exists()
    time.sleep(1.05)  # the file is now older than `every`
    sink.on_record(_warning(1))  # written, then the file is rotated
    sink.on_record(_warning(2))
    sink.close()
    assert _numbers((tmp_path / "events.jsonl.1").read_text().splitlines()) == [0, 1]
    assert _numbers(path.read_text().splitlines()) == [2]


def test_a_rotating_jsonl_appends_so_a_restarted_service_keeps_the_last_runs_records(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(_warning(0).json_line() + "\n")
    sink = JsonlSink(path=path, max_bytes=10**6)
    sink.on_start(INFO)
    sink.on_record(_warning(1))
    sink.close()
    assert _numbers(path.read_text().splitlines()) == [0, 1]


def test_jsonl_rotation_options_are_parsed_and_checked() -> None:
    sink = make_sink("jsonl:/tmp/x/e.jsonl,max_mb=2.5,every=1d,keep=7")
    assert isinstance(sink, JsonlSink)
    assert (sink.max_bytes, sink.every_s, sink.keep) == (2_500_000, 86400.0, 7)
    assert make_sink("jsonl:/tmp/x/e.jsonl,every=90m").every_s == 5400.0  # type: ignore[attr-defined]
    for spec, words in [
        ("jsonl:/tmp/e.jsonl,size=1", "'size=1' is not an option"),
        ("jsonl:/tmp/e.jsonl,max_mb=lots", "max_mb='lots' is not a number"),
        ("jsonl:/tmp/e.jsonl,keep=0", "keep must be 1..10000"),
        ("jsonl:/tmp/e.jsonl,every=0.5", "every must be at least 1 s"),
        ("jsonl:-,max_mb=1", "stdout cannot be rotated"),
    ]:
        with pytest.raises(UsageError, match=words):
            make_sink(spec)


# ------------------------------------------------------------------ webhook


class _Endpoint:
    """A real HTTP server on 127.0.0.1 that records each POST body.

    `fail_first` requests are answered 503; `gate`, when given, holds every request
    until it is set (a slow or stuck endpoint).
    """

    def __init__(self, *, fail_first: int = 0, gate: threading.Event | None = None) -> None:
        self.bodies: list[bytes] = []
        self.types: list[str] = []
        self.requests = 0
        self.fail_first = fail_first
        self.gate = gate
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if outer.gate is not None:
                    outer.gate.wait(30)
                outer.requests += 1
                if outer.requests <= outer.fail_first:
                    self.send_response(503)
                else:
                    outer.bodies.append(body)
                    outer.types.append(self.headers["Content-Type"])
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def lines(self) -> list[str]:
        return [x for b in self.bodies for x in b.decode().splitlines()]


@pytest.fixture
def endpoint() -> Iterator[_Endpoint]:
    ep = _Endpoint()
    ep.thread.start()
    yield ep
    ep.server.shutdown()
    ep.server.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_webhook_delivers_every_record_of_a_real_run_as_ndjson(backend, endpoint) -> None:  # noqa: ANN001
    collect = Collect()
    hook = WebhookSink(url=endpoint.url)
    src = ScriptedSource(duration_s=3.0, card=(1.0, 2.0))
    Pipeline(streams=[src], backend=backend, sinks=[hook, collect], config=config()).run()
    assert endpoint.lines() == [r.json_line() for r in collect.records]
    assert [json.loads(x)["type"] for x in endpoint.lines()] == ["onset", "event", "summary"]
    assert set(endpoint.types) == {"application/x-ndjson"}


def test_a_failing_endpoint_is_retried_and_nothing_is_lost_or_reordered() -> None:
    ep = _Endpoint(fail_first=3)
    ep.thread.start()
    try:
        hook = WebhookSink(url=ep.url, timeout=5.0)
        hook.on_start(INFO)
        for i in range(20):
            hook.on_record(_warning(i))
        hook.close()  # waits (bounded) for the queue to drain after the retries
        assert _numbers(ep.lines()) == list(range(20))
        stats = hook.figures()
        assert (stats["sent"], stats["dropped"], stats["failures"]) == (20, 0, 3)
    finally:
        ep.server.shutdown()
        ep.server.server_close()


def test_a_stuck_endpoint_never_blocks_the_pipeline_and_the_oldest_records_are_dropped() -> None:
    gate = threading.Event()
    ep = _Endpoint(gate=gate)
    ep.thread.start()
    try:
        hook = WebhookSink(url=ep.url, backlog=10, timeout=5.0, batch=1)
        hook.on_start(INFO)
        hook.on_record(_warning(0))  # taken by the sender, which now waits on the endpoint
        deadline = time.monotonic() + 10
        while hook.figures()["queued"] and time.monotonic() < deadline:
            time.sleep(0.01)
        # the endpoint is stuck: 100 more records are accepted at once (if on_record
        # waited for the endpoint this loop would never end and the test would time out)
        for i in range(1, 101):
            hook.on_record(_warning(i))
        stats = hook.figures()
        assert (stats["queued"], stats["dropped"]) == (10, 90)
        gate.set()
        hook.close()
        # record 0 was in flight; of 1..100 the newest 10 were kept
        assert _numbers(ep.lines()) == [0, *range(91, 101)]
    finally:
        gate.set()
        ep.server.shutdown()
        ep.server.server_close()


def test_an_unreachable_endpoint_does_not_fail_the_run_and_the_summary_counts_it(backend) -> None:  # noqa: ANN001
    collect = Collect()
    hook = WebhookSink(url=f"http://127.0.0.1:{_free_port()}/events", backlog=2, timeout=0.5)
    src = ScriptedSource(duration_s=3.0, card=(1.0, 2.0))
    pipeline = Pipeline(streams=[src], backend=backend, sinks=[hook, collect], config=config())
    summary = pipeline.run()  # returns: a webhook is not durable
    assert summary.stopped_by == "end"
    assert collect.records[-1] == summary
    (figures,) = summary.sinks
    assert figures["name"].startswith("webhook:http://127.0.0.1:")
    assert figures["sent"] == 0 and figures["failures"] >= 1
    # onset + event were queued before the summary; neither reached the endpoint
    assert figures["queued"] + figures["dropped"] == 2


def test_webhook_options_are_parsed_and_checked() -> None:
    hook = make_sink("webhook:http://127.0.0.1:9/e,backlog=50,timeout=1.5")
    assert isinstance(hook, WebhookSink)
    assert (hook.url, hook._queue.maxlen, hook.timeout) == ("http://127.0.0.1:9/e", 50, 1.5)
    for spec, words in [
        ("webhook:ftp://host/x", "must start with http"),
        ("webhook:http://h/x,backlog=0", "backlog must be"),
        ("webhook:http://h/x,retries=3", "'retries=3' is not an option"),
    ]:
        with pytest.raises(UsageError, match=words):
            make_sink(spec)


def test_webhook_credentials_are_masked_in_its_name() -> None:
    hook = make_sink("webhook:http://user:secret@127.0.0.1:9/e")
    assert "secret" not in hook.name
