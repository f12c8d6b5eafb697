"""A real Prometheus server (Debian's `prometheus` package) scrapes a real run's metrics.

Prometheus listens on 127.0.0.1 with its own temporary config and storage, scraping the
metrics endpoint of a real `avfuse run --metrics-port` process every second; the run is
the synthetic A/V scene through the bundled model, played at its own pace. The test then
asks Prometheus's HTTP API, not the exporter, for every series docs/metrics.md documents,
and checks their values are sane. Everything started is stopped by its PID. Install the
server with `apt-get install -y prometheus` (scripts/install.sh --all does).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("prometheus_client", reason="pip install 'avfuse[metrics]'")

import socket  # noqa: E402
import sys  # noqa: E402

from tests.fixtures.ffmpeg import free_port  # noqa: E402

PROMETHEUS = shutil.which("prometheus")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
#: documented series a one-stream run without faults has no sample of
NOT_IN_THIS_RUN = {"avfuse_ingest_other_total"}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        PROMETHEUS is None, reason="needs the Prometheus server: apt-get install -y prometheus"
    ),
]


class Prometheus:
    """A private Prometheus process: temporary config and storage, 127.0.0.1 only."""

    def __init__(self, root: Path, *, target: str) -> None:
        import socket

        self.port = free_port(socket.SOCK_STREAM)
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = root / "prometheus.yml"
        self.config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n  - job_name: avfuse\n    static_configs:\n"
            f"      - targets: ['{target}']\n"
        )
        self.storage = root / "data"
        self.log = root / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Prometheus:
        """Start the server and wait (bounded) until it says it is ready."""
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [str(PROMETHEUS), f"--config.file={self.config}",
                 f"--storage.tsdb.path={self.storage}",
                 f"--web.listen-address=127.0.0.1:{self.port}"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"prometheus not ready in 60 s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        """SIGTERM by PID, then SIGKILL if it does not go within 20 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query through /api/v1/query; the result vector."""
        url = self.url + "/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]["result"]

    def values(self, promql: str) -> list[float]:
        return [float(x["value"][1]) for x in self.query(promql)]


def documented_samples() -> set[str]:
    """Sample names of the series in the docs table (a histogram as its _count)."""
    out = set()
    for line in DOCS.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`avfuse_"):
            name = cells[0].strip("`")
            out.add(name + "_count" if cells[1] == "histogram" else name)
    return out


@pytest.fixture
def scraped_run(tmp_path: Path) -> Iterator[tuple[Prometheus, str]]:
    """`avfuse run --metrics-port` on the synthetic scene, scraped by a real Prometheus;
    yields the Prometheus and the run's metrics URL."""
    port = free_port(socket.SOCK_STREAM)
    cmd = [sys.executable, "-m", "avfuse.cli", "run", "--source", "synthetic", "--realtime",
           "--duration", "120", "--sink", f"jsonl:{tmp_path / 'records.jsonl'}",
           "--metrics-port", str(port)]  # fmt: skip
    run = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=open(tmp_path / "run.err", "wb"))  # fmt: skip  # noqa: SIM115
    url = f"http://127.0.0.1:{port}"
    prom: Prometheus | None = None
    try:
        deadline = time.monotonic() + 60
        while True:  # bounded wait for the endpoint (the run loads its model first)
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=2):
                    break
            except (urllib.error.URLError, OSError):
                if run.poll() is not None or time.monotonic() > deadline:
                    err = (tmp_path / "run.err").read_text()
                    pytest.fail(f"avfuse run served no metrics: {err}")
                time.sleep(0.2)
        prom = Prometheus(tmp_path, target=f"127.0.0.1:{port}")
        yield prom.start(), url
    finally:
        if prom is not None:
            prom.stop()
        run.terminate()  # SIGTERM: the run drains and exits 143
        try:
            run.wait(30)
        except subprocess.TimeoutExpired:
            run.kill()
            run.wait(10)


@pytest.mark.timeout(240)
def test_a_real_prometheus_scrapes_every_documented_series_with_sane_values(
    scraped_run: tuple[Prometheus, str],
) -> None:
    prom, url = scraped_run
    # wait (bounded) until Prometheus holds several scrapes of a run making decisions
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if prom.values('count_over_time(avfuse_frames_total{job="avfuse"}[1m]) >= 6'):
            break
        time.sleep(0.5)
    else:
        pytest.fail("Prometheus did not get 6 scrapes of avfuse_frames_total in 90 s")
    assert prom.values('up{job="avfuse"}') == [1.0]
    names = {x["metric"]["__name__"] for x in prom.query('{__name__=~"avfuse_.+"}')}
    missing = documented_samples() - NOT_IN_THIS_RUN - names
    assert not missing, f"documented but not scraped: {sorted(missing)}"

    # decisions go up between scrapes, at a live scene's pace (30 fps video)
    first, last = (
        prom.values("min_over_time(avfuse_frames_total[1m])"),
        prom.values("max_over_time(avfuse_frames_total[1m])"),
    )
    assert last[0] > first[0] > 0
    (rate,) = prom.values("rate(avfuse_frames_total[5s])")
    assert 5.0 < rate < 60.0, rate
    # every decision has its capture -> sinks latency, in seconds
    (count,) = prom.values('avfuse_stage_latency_seconds_count{stage="end_to_end"}')
    (frames,) = prom.values("sum(avfuse_frames_total)")
    assert count == frames > 0
    (p99,) = prom.values(
        'histogram_quantile(0.99, avfuse_stage_latency_seconds_bucket{stage="end_to_end"})'
    )
    assert 0.0 < p99 <= 5.0, p99
    drift = prom.values("avfuse_clock_drift_ppm")
    assert len(drift) == 2 and all(math.isfinite(d) and abs(d) < 1000 for d in drift), drift
    assert all(
        math.isfinite(r) and 0 <= r < 0.1 for r in prom.values("avfuse_clock_residual_seconds")
    )
    assert prom.values("avfuse_up") == [1.0]
    assert prom.values("avfuse_modality_up") == [1.0, 1.0]
    assert prom.values("sum by (stream) (avfuse_av_sync_status)") == [1.0]  # one state holds
    assert prom.values('avfuse_build_info{version!=""}') == [1.0]
    assert all(q >= 0 for q in prom.values("avfuse_queue_depth"))
    assert prom.values("avfuse_sink_errors_total") == [0.0]
    (age,) = prom.values("avfuse_snapshot_age_seconds")
    assert 0 <= age < 5
    # and the run answers its probes while Prometheus watches
    for path in ("/healthz", "/readyz"):
        with urllib.request.urlopen(url + path, timeout=10) as r:
            assert r.status == 200
