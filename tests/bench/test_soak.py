"""The CI soak: `benchmarks/soak.py`'s run in 60 s, a fault every 11 s, and its invariants.

One real run is shared by the tests below: three streams (the demo scene looped live, the
demo scene as an mp4 played in real time, another scene streamed by a real ffmpeg over UDP
on 127.0.0.1) through the bundled model on ONNX Runtime, into a rotating JSONL file, a
webhook to a real HTTP server on 127.0.0.1 and a callback sink. Its faults, in turn: the
webhook endpoint stops answering (4 s), a callback sink blocks the pipeline's thread (1 s),
one inference raises BackendError, the UDP sender is killed and restarted (3 s outage).
Each test asserts one invariant with a bound suited to 60 s on a shared 2-core machine,
from counts and ratios within the run (never absolute times).

Each test fails on the defect it names: run the module with AVFUSE_SOAK_SABOTAGE set to
fd, thread, rss, latency or no_restart and the run gets that defect once per fault (an fd
or a thread left open, 2 MiB kept, a backend 25 ms slower each time, the sender never
restarted; see avfuse.bench.soak_run.SABOTAGE).

Marked `soak` (and `slow`): `pytest -m soak` runs it alone, `-m "not soak"` leaves it out.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest

from avfuse.bench.soak import SoakGoals
from avfuse.bench.soak_run import SoakConfig, run_soak

pytestmark = [
    pytest.mark.soak,
    pytest.mark.slow,
    pytest.mark.timeout(180),
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg command"),
]

#: the bounds of a 60 s run: RSS from the end of the warm-up (the UDP buffer is full by
#: then), p99 of the last third of the calm intervals over the first, frames lost outside
#: faults (a loaded CI machine drops some), frames a fault may lose beyond its budget
CI_GOALS = SoakGoals(rss_growth_mb=4.0, p99_ratio=1.5, loss_fraction=0.05, fault_slack_frames=30)
#: the stream kill last: its reconnect leaves the latency high for a while (see
#: test_the_audio_clock_of_a_reconnected_stream_stays_true), which must not fall between the others
CI_FAULTS = ("webhook_stall", "slow_sink", "backend_error", "stream_kill")


@pytest.fixture(scope="module")
def soak() -> dict[str, Any]:
    cfg = SoakConfig(
        seconds=60,
        fault_every_s=11,
        warmup_s=11,
        sample_every_s=1,
        faults=CI_FAULTS,
        stall_s=4,
        outage_s=3,
        # a fault whose latency has not settled 5 s after its recovery (a settled one takes
        # ~4.8 s: 2 s, then 4 calm 1-s intervals) closes its window anyway, its report says
        # so: on a loaded machine one slow aftermath must not push the later faults out of
        # the minute, nor leave no calm interval to judge the others by
        settle_timeout_s=5,
        sabotage=os.environ.get("AVFUSE_SOAK_SABOTAGE") or None,
        goals=CI_GOALS,
    )
    return run_soak(cfg, progress=None)


def test_the_run_went_to_its_end_and_stopped_cleanly(soak: dict[str, Any]) -> None:
    assert soak["run_error"] is None
    assert soak["summary"]["stopped_by"] == "stop"
    assert soak["stop_s"] < 15


def test_every_fault_kind_was_injected_and_recovered(soak: dict[str, Any]) -> None:
    kinds = [f["kind"] for f in soak["faults"]]
    assert kinds == list(CI_FAULTS), soak["faults"]
    not_recovered = [f for f in soak["faults"] if not f["recovered"]]
    assert not_recovered == []


def test_the_network_stream_reported_its_loss_and_reconnected(soak: dict[str, Any]) -> None:
    kill = next(f for f in soak["faults"] if f["kind"] == "stream_kill")
    assert kill["loss_reported"] and kill["reconnect_reported"], kill
    assert soak["sender_starts"] == 2
    assert soak["records"].get("warning/reconnected") == 1


def test_the_backend_error_was_counted_once_and_the_run_went_on(soak: dict[str, Any]) -> None:
    fault = next(f for f in soak["faults"] if f["kind"] == "backend_error")
    assert fault["errors_counted"] == 1 and fault["fault_reported"], fault
    assert soak["summary"]["drops"].get("backend_error", 0) <= 8  # one batch


def test_the_stalled_webhook_caught_up_without_dropping(soak: dict[str, Any]) -> None:
    stall = next(f for f in soak["faults"] if f["kind"] == "webhook_stall")
    assert stall["failed_posts"] >= 1 and stall["dropped"] == 0, stall
    wh = soak["webhook"]
    assert wh["dropped"] == 0 and wh["endpoint_unanswered"] >= 1
    # every record reached the endpoint in the end (the last ones during the drain)
    assert wh["endpoint_records"] == wh["sent"] == soak["records_sent"], wh


def test_open_fds_are_flat_after_the_faults(soak: dict[str, Any]) -> None:
    fds = soak["verdicts"]["fds"]
    assert fds["pass"] is True, fds
    assert fds["end_fds"] <= fds["baseline_fds"]


def test_threads_are_flat_after_the_faults(soak: dict[str, Any]) -> None:
    th = soak["verdicts"]["threads"]
    assert th["pass"] is True, th
    assert th["end_os"] <= th["baseline_os"] and th["end_py"] <= th["baseline_py"]


def test_rss_growth_after_the_warmup_is_bounded(soak: dict[str, Any]) -> None:
    rss = soak["verdicts"]["rss"]
    assert rss["pass"] is True, rss
    assert rss["growth_mb"] < CI_GOALS.rss_growth_mb


def test_median_latency_of_the_last_third_stays_near_the_first(soak: dict[str, Any]) -> None:
    """A slowdown that builds up fault after fault (a leak of work, not of memory) shows in
    the median. The p99 verdict (20 % in the 30-minute benchmark) is not asserted in 60 s:
    one minute's tail on a shared 2-core machine is the other processes' work."""
    p = soak["verdicts"]["p99"]
    assert p["pass"] is not None, p  # there were calm intervals to judge
    assert p["last"]["p50_ms"] <= CI_GOALS.p99_ratio * p["first"]["p50_ms"] + 5.0, p


def test_frames_are_lost_only_to_the_faults(soak: dict[str, Any]) -> None:
    frames = soak["verdicts"]["frames"]
    for name, s in frames["streams"].items():
        assert s["loss_fraction_outside_faults"] <= CI_GOALS.loss_fraction, (name, s)
        over = [f for f in s["faults"] if not f["pass"]]
        assert over == [], (name, over)


def test_the_audio_clock_of_a_reconnected_stream_stays_true(soak: dict[str, Any]) -> None:
    udp = next(s for s in soak["summary"]["streams"] if s["name"] == "udp")
    # the sender and the receiver share one host clock: the true drift is ~0 ppm. Measured
    # here: -58 ppm; with the fit not restarted at the reconnect (ClockModel.restart a
    # no-op) -3400 ppm. The AAC's 0.3 s bursts leave ~90 ms of arrival jitter, so a minute
    # on a loaded machine reads up to ~1100 ppm with no reconnect at all (one CI run)
    assert abs(udp["audio_clock"]["drift_ppm"]) < 1500, udp["audio_clock"]
