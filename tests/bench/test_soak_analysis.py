"""The soak verdicts (avfuse.bench.soak.analyse) on made-up time series: each verdict
passes a healthy run, ignores what happens inside a fault's window, and fails on the one
defect it guards. The real run is tests/bench/test_soak.py."""

from __future__ import annotations

import numpy as np
import pytest

from avfuse.bench.soak import LATENCY_BOUNDS_MS, ProcessSampler, SoakGoals, analyse, percentile

N = 80  # samples, one a second
WARMUP = 10.0
FAULTS = (20.0, 40.0, 60.0)  # injected; each recovered 3 s later, its window closed at 6 s


def _cum(latency_ms: float, n: int) -> np.ndarray:
    """Cumulative counts at the bounds of `n` latencies of `latency_ms`."""
    return np.where(np.asarray(LATENCY_BOUNDS_MS) >= latency_ms, n, 0)


def run(
    *,
    fds: np.ndarray | None = None,
    threads: np.ndarray | None = None,
    rss: np.ndarray | None = None,
    latency: np.ndarray | None = None,
    fps: np.ndarray | None = None,
    recovered: tuple[bool, ...] = (True, True, True),
    rss_settle_s: float = 0.0,
) -> dict:
    """A healthy 80 s run (30 fps, 10 ms, flat figures), with the given columns replaced."""
    t = np.arange(N, dtype=float) + 1.0
    tick_t = t - 0.5
    per_interval = np.full(N, 30.0) if fps is None else fps
    frames = np.cumsum(np.r_[0.0, per_interval[1:]])
    lat = np.full(N, 10.0) if latency is None else latency
    cum = np.zeros((N, len(LATENCY_BOUNDS_MS)), np.int64)
    for i in range(1, N):
        cum[i] = cum[i - 1] + _cum(lat[i], 30)
    series = {
        "t": t,
        "tick_t": tick_t,
        "e2e_count": np.arange(N) * 30.0,
        "rss_mb": np.full(N, 300.0) if rss is None else rss,
        "anon_mb": np.full(N, 100.0),
        "fds": np.full(N, 12.0) if fds is None else fds,
        "threads_os": np.full(N, 24.0) if threads is None else threads,
        "threads_py": np.full(N, 7.0),
        "cpu_s": t * 0.3,
        "frames:cam": frames,
    }
    faults = [
        {"kind": "webhook_stall", "t_inject": a, "t_recovered": a + 3 if ok else None,
         "t_window_end": a + 6 if ok else a + 15, "recovered": ok, "budget": {"cam": 60},
         "rss_settle_s": rss_settle_s}
        for a, ok in zip(FAULTS, recovered, strict=True)
    ]  # fmt: skip
    return analyse(series, cum, faults=faults, streams=[{"name": "cam", "fps": 30.0}],
                   warmup_s=WARMUP, settle_s=2.0, goals=SoakGoals())  # fmt: skip


def _per_fault(step: float) -> np.ndarray:
    """+step after each fault's injection (a leak of one per fault)."""
    t = np.arange(N, dtype=float) + 1.0
    return sum(step * (t >= a) for a in FAULTS)


def _in_windows(value: float, base: float, *, ticks: bool = False) -> np.ndarray:
    """`value` for the 4 s after each injection (samples; or tick intervals, which end
    half a second before their sample), else `base`."""
    t = np.arange(N, dtype=float) + 1.0 - (0.5 if ticks else 0.0)
    inside = np.zeros(N, bool)
    for a in FAULTS:
        inside |= (t > a) & (t <= a + 4)
    return np.where(inside, value, base)


def test_a_healthy_run_passes_every_verdict() -> None:
    v = run()
    assert v["pass"] is True, v
    assert v["rss"]["growth_mb"] == 0.0 and v["fds"]["end_fds"] == 12
    assert v["p99"]["first"]["p99_ms"] == pytest.approx(10.0, rel=0.06)


def test_an_fd_leaked_per_fault_fails_the_fd_verdict() -> None:
    v = run(fds=12.0 + _per_fault(1.0))
    assert v["fds"]["pass"] is False
    assert (v["fds"]["baseline_fds"], v["fds"]["end_fds"]) == (12, 15)
    assert v["threads"]["pass"] is True and v["rss"]["pass"] is True


def test_fds_open_only_during_faults_are_allowed() -> None:
    v = run(fds=_in_windows(18.0, 12.0))
    assert v["fds"]["pass"] is True
    assert v["fds"]["max_during_faults"] == 18


def test_a_thread_leaked_per_fault_fails_the_thread_verdict() -> None:
    v = run(threads=24.0 + _per_fault(1.0))
    assert v["threads"]["pass"] is False and v["fds"]["pass"] is True


def test_rss_growth_beyond_the_goal_fails_and_noise_does_not() -> None:
    assert run(rss=300.0 + _per_fault(2.0))["rss"]["pass"] is False  # 6 MB
    noisy = 300.0 + np.random.default_rng(0).uniform(-1.0, 1.0, N)
    v = run(rss=noisy)
    assert v["rss"]["pass"] is True and abs(v["rss"]["growth_mb"]) < 1.0


def test_memory_is_judged_after_a_buffer_has_filled_again() -> None:
    t = np.arange(N, dtype=float) + 1.0
    last = FAULTS[-1]  # a reopened stream frees its 9 MB buffer and fills a new one slowly
    refill = np.clip((t - (last + 3)) / 30.0, 0.0, 1.0) * 9.0
    rss = np.where(t < last, 309.0, 300.0 + refill)
    # read mid-refill, the end looks 4-6 MB smaller: a leak of that size would hide in it
    assert run(rss=rss)["rss"]["growth_mb"] < -3.0
    v = run(rss=rss, rss_settle_s=30.0)  # judged only once the buffer is full again
    assert v["rss"]["pass"] is True and v["rss"]["growth_mb"] == 0.0


def test_rss_slope_is_reported_per_hour() -> None:
    t = np.arange(N, dtype=float) + 1.0
    v = run(rss=300.0 + t / 3600.0 * 36.0)  # 36 MB an hour
    assert v["rss"]["slope_mb_per_h"] == pytest.approx(36.0, rel=1e-6)


def test_latency_that_doubles_outside_faults_fails_the_p99_verdict() -> None:
    t = np.arange(N, dtype=float) + 1.0
    v = run(latency=np.where(t > 66, 20.0, 10.0))
    assert v["p99"]["pass"] is False
    assert v["p99"]["ratio"] == pytest.approx(2.0, rel=0.1)


def test_latency_high_only_inside_a_fault_window_passes() -> None:
    t = np.arange(N, dtype=float) + 0.5
    late = _in_windows(500.0, 10.0, ticks=True)
    v = run(latency=np.where(t > FAULTS[-1], late, 10.0))  # in the last fault's window
    assert v["p99"]["pass"] is True and v["p99"]["ratio"] == pytest.approx(1.0)


def test_frames_lost_outside_faults_fail_the_frame_verdict() -> None:
    t = np.arange(N, dtype=float) + 1.0
    v = run(fps=np.where(t % 10 == 5, 0.0, 30.0))  # a second lost every 10 s
    cam = v["frames"]["streams"]["cam"]
    assert v["frames"]["pass"] is False
    assert cam["loss_fraction_outside_faults"] == pytest.approx(0.1, abs=0.02)


def test_frames_a_fault_explains_pass_and_more_fail() -> None:
    explained = run(fps=_in_windows(15.0, 30.0, ticks=True))  # 4 s x 15 frames = 60: the budget
    assert explained["frames"]["pass"] is True, explained["frames"]
    beyond = run(fps=_in_windows(0.0, 30.0, ticks=True))  # 120 lost per fault
    rows = beyond["frames"]["streams"]["cam"]["faults"]
    assert [r["pass"] for r in rows] == [False, False, False]
    assert rows[0]["lost"] == 120 and rows[0]["budget"] == 60 + SoakGoals().fault_slack_frames


def test_a_fault_that_never_recovered_fails_the_fault_verdict() -> None:
    v = run(recovered=(True, False, True))
    assert v["faults"]["pass"] is False
    assert (v["faults"]["injected"], v["faults"]["recovered"]) == (3, 2)


def test_percentile_is_the_lowest_bound_holding_the_share() -> None:
    cum = np.asarray(_cum(10.0, 99) + _cum(100.0, 1))
    assert percentile(cum, 100, 50) == pytest.approx(10.0, rel=0.05)
    assert percentile(cum, 100, 99) == pytest.approx(10.0, rel=0.05)
    assert percentile(cum, 100, 100) == pytest.approx(100.0, rel=0.05)
    assert percentile(cum, 0, 99) is None


def test_the_process_sampler_sees_an_fd_this_process_opens(tmp_path) -> None:
    sampler = ProcessSampler(reads=2, gap_s=0.0)
    before = sampler.sample()
    with open(tmp_path / "x", "w"):
        during = sampler.sample()
    fields = ProcessSampler.FIELDS
    assert during[fields.index("fds")] == before[fields.index("fds")] + 1
    assert before[fields.index("rss_mb")] > 0 and before[fields.index("threads_os")] >= 1


def test_the_soak_loop_does_not_spin_while_a_fault_settles_past_the_next_ones_time() -> None:
    """A fault still settling when the next is due: the loop looks again in 0.2 s, not
    at once (the next fault's time, already past, made it spin and starve the pipeline)."""
    from avfuse.bench.soak_run import next_wake

    now = 100.0
    kw = dict(times=(101.0, 130.0, 200.0), pending=[90.0], quiet_until=95.0)
    assert next_wake(now, active=True, **kw) == pytest.approx(100.2)
    assert next_wake(now, active=False, **kw) == 95.0  # no fault active: inject now
    assert next_wake(now, active=False, **{**kw, "pending": []}) == 101.0
