"""The Prometheus collector and the HTTP endpoints, on snapshots of a real pipeline run.

The run: two live scripted streams through the tiny ONNX model with a 0.25 s stats tick;
stream "a" (1 s, a white card at 0.2-0.6 s: one "3" event) ends while "b" (2.5 s,
silence on black) goes on, so later snapshots hold a finished stream next to a running
one. A sink takes `pipeline.snapshot` in each `on_stats`, which the pipeline calls just
after publishing it, so every snapshot is paired with the Stats record of its own tick.
Every scrape goes through `MetricsServer` over HTTP and is read back by
prometheus_client's own text-format parser.
"""

from __future__ import annotations

import math
import socket
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("prometheus_client", reason="pip install 'avfuse[metrics]'")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from avfuse.backends import create_backend  # noqa: E402
from avfuse.engine.pipeline import LATENCY_BOUNDS_MS, Pipeline  # noqa: E402
from avfuse.engine.records import Stats, Summary  # noqa: E402
from avfuse.engine.sinks import Sink  # noqa: E402
from avfuse.errors import BackendUnavailable, UsageError  # noqa: E402
from avfuse.manifest import load_manifest  # noqa: E402
from avfuse.ops.http import MetricsServer  # noqa: E402
from avfuse.ops.metrics import SERIES  # noqa: E402
from tests.engine.pipeline_kit import ScriptedSource, config, write_tiny_model  # noqa: E402

DOCS = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class SnapshotTap(Sink):
    """Pairs each Stats record with the snapshot the pipeline published for that tick."""

    name = "tap"
    durable = False

    def __init__(self) -> None:
        self.pipeline: Pipeline | None = None
        self.pairs: list[tuple[Stats, dict[str, Any]]] = []

    def on_stats(self, stats: Stats) -> None:
        assert self.pipeline is not None and self.pipeline.snapshot is not None
        self.pairs.append((stats, self.pipeline.snapshot))


@dataclass
class Run:
    pairs: list[tuple[Stats, dict[str, Any]]]
    summary: Summary

    @property
    def last(self) -> dict[str, Any]:
        return self.pairs[-1][1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    be = create_backend("ort", threads=1).load(
        load_manifest(write_tiny_model(tmp_path_factory.mktemp("tiny")))
    )
    yield be
    be.close()


def _pipeline(tiny, *sinks: Sink, b_s: float = 2.5, tick: float = 0.25) -> Pipeline:  # noqa: ANN001
    streams = [
        ScriptedSource(name="a", duration_s=1.0, card=(0.2, 0.6), live=True),
        ScriptedSource(name="b", duration_s=b_s, card=None, live=True),
    ]
    return Pipeline(
        streams=streams, backend=tiny, sinks=list(sinks), config=config(stats_interval_s=tick)
    )


@pytest.fixture(scope="module")
def run(tiny) -> Run:  # noqa: ANN001 - the ORT backend
    tap = SnapshotTap()
    pipe = _pipeline(tiny, tap)
    tap.pipeline = pipe
    summary = pipe.run()
    assert len(tap.pairs) >= 4, "the run must publish several snapshots"
    return Run(pairs=tap.pairs, summary=summary)


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def scrape(snapshot: Any, **kw: Any) -> Samples:
    """Serve `snapshot` through a real MetricsServer and parse what /metrics returns."""
    with MetricsServer(snapshot=lambda: snapshot, port=0, **kw) as server:
        status, text = _get(server.url + "/metrics")
    assert status == 200, text
    out: Samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def val(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def total(samples: Samples, name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


def _stream(snap: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in snap["streams"] if s["name"] == name)


# ---------------------------------------------------------------------- the series


def test_counts_match_the_stats_record_the_sinks_got_at_the_same_tick(run: Run) -> None:
    for stats, snap in run.pairs:
        m = scrape(snap)
        assert total(m, "avfuse_frames_total") == stats.frames
        assert val(m, "avfuse_model_frames_total", model="tiny") == stats.frames
        assert val(m, "avfuse_events_total") == stats.events
        assert total(m, "avfuse_drops_total") == stats.drops
    assert run.pairs[-1][0].frames > run.pairs[0][0].frames > 0


def test_a_finished_stream_shows_what_the_run_summary_says(run: Run) -> None:
    m = scrape(run.last)
    a = next(s for s in run.summary.streams if s["name"] == "a")
    assert _stream(run.last, "a")["video_up"] is False  # the snapshot is after "a" ended
    # 1 s at 30 fps and 16 kHz in blocks of 320: what the scripted source delivered
    assert val(m, "avfuse_video_frames_captured_total", stream="a") == a["video_frames"] == 30
    assert val(m, "avfuse_audio_blocks_total", stream="a") == a["audio_blocks"]
    assert val(m, "avfuse_frames_total", stream="a") == a["frames"]
    assert val(m, "avfuse_events_total") == run.summary.events == 1  # the card
    for mod in ("audio", "video"):
        assert val(m, "avfuse_modality_up", stream="a", modality=mod) == 0.0
        assert val(m, "avfuse_modality_up", stream="b", modality=mod) == 1.0
        clock = a[f"{mod}_clock"]
        assert val(m, "avfuse_clock_updates_total", stream="a", modality=mod) == clock["updates"]
        assert val(m, "avfuse_clock_drift_ppm", stream="a", modality=mod) == clock["drift_ppm"]
        res = val(m, "avfuse_clock_residual_seconds", stream="a", modality=mod)
        assert res == pytest.approx(clock["residual_ms"] / 1e3)
    assert val(m, "avfuse_sink_errors_total") == run.summary.sink_errors == 0
    assert val(m, "avfuse_backend_errors_total", model="tiny") == 0
    drops = run.last["drops"]  # how many depends on the machine's load; present always
    for reason in ("queue_full", "deadline", "backend_error", "shutdown", "reload"):
        assert val(m, "avfuse_drops_total", reason=reason) == drops.get(reason, 0)


def test_stage_latency_is_in_seconds_with_the_snapshot_buckets(run: Run) -> None:
    stats, snap = run.pairs[-1]
    m = scrape(snap)
    name = "avfuse_stage_latency_seconds"
    e2e = snap["stages"]["end_to_end"]
    # every decision records its capture -> sinks latency once
    assert val(m, name + "_count", stage="end_to_end") == stats.frames == e2e["count"]
    assert val(m, name + "_sum", stage="end_to_end") == pytest.approx(e2e["sum_ms"] / 1e3)
    les = sorted(
        float(dict(labels)["le"])
        for (n, labels), _ in m.items()
        if n == name + "_bucket" and ("stage", "end_to_end") in labels
    )
    assert les == [b / 1e3 for b in LATENCY_BOUNDS_MS] + [math.inf]
    for bound_ms, count in e2e["le"]:
        assert val(m, name + "_bucket", stage="end_to_end", le=str(bound_ms / 1e3)) == count
    assert val(m, name + "_bucket", stage="end_to_end", le="+Inf") == e2e["count"]
    mean_s = e2e["sum_ms"] / 1e3 / e2e["count"]
    assert 0 < mean_s < 1.0  # a tiny model on a live 30 fps stream: milliseconds


def test_no_sync_estimate_is_nan_not_zero_and_one_status_holds(run: Run) -> None:
    m = scrape(run.last)
    for name in ("a", "b"):
        sync = _stream(run.last, name)["av_sync"]
        assert sync["residual_offset_ms"] is None  # no cues in a scripted scene
        assert math.isnan(val(m, "avfuse_av_sync_offset_seconds", stream=name))
        assert math.isnan(val(m, "avfuse_av_sync_offset_ci_seconds", stream=name, bound="low"))
        states = {
            dict(labels)["avfuse_av_sync_status"]: v
            for (n, labels), v in m.items()
            if n == "avfuse_av_sync_status" and ("stream", name) in labels
        }
        assert states[sync["status"]] == 1.0 and sum(states.values()) == 1.0


def test_the_docs_table_and_a_real_exposition_list_the_same_series(run: Run) -> None:
    rows = []
    for line in DOCS.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`avfuse_"):
            labels = tuple(x.strip() for x in cells[2].split(",") if x.strip())
            rows.append((cells[0].strip("`"), cells[1], labels))
    assert rows == [(s.name, s.kind, s.labels) for s in SERIES]
    with MetricsServer(snapshot=lambda: run.last, port=0) as server:
        text = _get(server.url + "/metrics")[1]
    parsed = {f.name: f.type for f in text_string_to_metric_families(text)}
    # the text format names a counter family without _total, and has no info or state
    # set type: both are gauges there
    expected = {
        s.name.removesuffix("_total") if s.kind == "counter" else s.name: (
            "gauge" if s.kind in ("info", "stateset") else s.kind
        )
        for s in SERIES
    }
    assert parsed == expected


# ---------------------------------------------------------------------- health, readiness


def test_health_and_readiness_follow_the_run_from_start_to_stale(tiny) -> None:  # noqa: ANN001
    pipe = _pipeline(tiny, b_s=1.5, tick=0.1)
    with MetricsServer(snapshot=lambda: pipe.snapshot, port=0, stale_after_s=1.0) as server:
        code, body = _get(server.url + "/healthz")
        assert (code, body.split(":")[0]) == (200, "starting")  # warm-up is not a failure
        assert _get(server.url + "/readyz")[0] == 503
        assert val(scrape(None), "avfuse_up") == 0.0
        pipe.start()
        deadline = time.monotonic() + 30
        while (pipe.snapshot is None or pipe.snapshot["frames"] == 0) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.02)
        assert _get(server.url + "/healthz")[0] == 200
        code, body = _get(server.url + "/readyz")
        assert code == 200 and body.startswith("ready:"), body
        live = pipe.snapshot  # a snapshot of the running pipeline
        assert pipe.wait(30)
        # the pipeline's last snapshot says the run ended: at once, not once stale
        assert pipe.snapshot["running"] is False
        assert _get(server.url + "/healthz") == (503, "the run has ended\n")
    # figures of a running pipeline that stopped coming (a hung loop) go stale
    with MetricsServer(snapshot=lambda: live, port=0, stale_after_s=1.0) as server:
        time.sleep(max(0.0, 1.05 - (time.monotonic_ns() - live["time_ns"]) / 1e9))
        code, body = _get(server.url + "/healthz")
        assert code == 503 and body.startswith("stale:") and body.count("\n") == 1, body
        code, body = _get(server.url + "/readyz")
        assert code == 503 and "stale" in body
        assert val(scrape(live, stale_after_s=1.0), "avfuse_up") == 0.0


def test_an_ended_run_is_neither_alive_nor_ready(run: Run) -> None:
    ended = dict(run.last, running=False, time_ns=time.monotonic_ns())
    with MetricsServer(snapshot=lambda: ended, port=0) as server:
        assert _get(server.url + "/healthz") == (503, "the run has ended\n")
        assert _get(server.url + "/readyz") == (503, "not ready: the run has ended\n")
    assert val(scrape(ended), "avfuse_up") == 0.0


# ---------------------------------------------------------------------- the server


def test_the_server_listens_on_loopback_only_by_default() -> None:
    with MetricsServer(snapshot=lambda: None, port=0) as server:
        assert server._server is not None
        assert server._server.server_address[0] == "127.0.0.1"
        assert server.port > 0 and server.url == f"http://127.0.0.1:{server.port}"


def test_an_unknown_path_is_404_naming_the_endpoints() -> None:
    with MetricsServer(snapshot=lambda: None, port=0) as server:
        code, body = _get(server.url + "/nope")
    assert code == 404 and "/metrics" in body and "/healthz" in body


def test_a_port_in_use_is_a_one_line_usage_error_naming_it() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(UsageError, match=rf"--metrics-port {port}: .*pick a free port"):
            MetricsServer(snapshot=lambda: None, port=port).start()


@pytest.mark.parametrize("port", [-1, 65536, "9100"])
def test_a_bad_port_is_refused_before_anything_binds(port: Any) -> None:
    with pytest.raises(UsageError, match="--metrics-port must be a TCP port"):
        MetricsServer(snapshot=lambda: None, port=port)


@pytest.mark.timeout(30)
def test_stop_ends_the_thread_and_frees_the_port() -> None:
    server = MetricsServer(snapshot=lambda: None, port=0).start()
    port, thread = server.port, server._thread
    assert thread is not None and thread.is_alive()
    server.stop()
    server.stop()  # twice is fine
    assert not thread.is_alive()
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port)):
        pass  # nothing listens there any more
    with MetricsServer(snapshot=lambda: None, port=port) as again:  # a restart gets it back
        assert _get(again.url + "/healthz")[0] == 200


def test_without_prometheus_client_it_names_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # import fails as if absent
    with pytest.raises(BackendUnavailable, match=r"pip install 'avfuse\[metrics\]'"):
        MetricsServer(snapshot=lambda: None, port=0)
