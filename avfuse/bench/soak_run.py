"""Run a soak: the real pipeline for a long time, in real time, with faults on a schedule.

    from avfuse.bench.soak_run import SoakConfig, run_soak
    result = run_soak(SoakConfig(seconds=60, fault_every_s=12))
    result["verdicts"]["fds"], result["faults"]

Three streams, on the bundled model through the real ONNX Runtime backend:

    synthetic   the demo scene, live, looped (`LoopingSceneSource`)
    file        the demo scene encoded to mp4 and looped to cover the run, played in
                real time (a file source: read only as fast as it is processed)
    udp         another demo scene streamed on a loop by a real ffmpeg over UDP on
                127.0.0.1 (a live network stream; the one that is killed)

and three sinks: a rotating JSONL file, a webhook to a real HTTP server on 127.0.0.1,
and a CallbackSink (the probe). The run goes through `avfuse.api.start`, as
`avfuse run` does, keeping no records in memory as it does (`path="pipeline"` builds
the Pipeline directly, without the session). Every `sample_every_s` the process's
figures and the newest stats tick are written into preallocated arrays (the soak's
own bookkeeping must not grow); `analyse` judges them at the end.
"""

from __future__ import annotations

import math
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TextIO

import numpy as np

from avfuse.bench.soak import LATENCY_BOUNDS_MS, ProcessSampler, SoakGoals, analyse, percentile
from avfuse.bench.soak_faults import FAULT_KINDS, FAULTS, Fault, Rig, frames_of, schedule
from avfuse.bench.soak_rig import FaultyBackend, SoakProbe, Tick, UdpSender, WebhookEndpoint
from avfuse.bench.soak_sources import LoopingSceneSource, ffmpeg_path, write_scene_files
from avfuse.errors import UsageError

#: a stats tick may lag this much: fault windows (judged at tick times) are kept apart by it
TICK_MARGIN_S = 1.5

#: deliberate defects, to check that each verdict fails when what it guards breaks
SABOTAGE = ("fd", "thread", "rss", "latency", "no_restart")


@dataclass(frozen=True, kw_only=True)
class SoakConfig:
    """How long, how often, how hard.

    Attributes:
        seconds: length of the run (real time).
        fault_every_s: a fault every this many seconds, the kinds in turn (`faults`).
        warmup_s: not judged (default: a sixth of the run, at most 120 s); the first
            fault comes at its end.
        sample_every_s: sampling period of the process's figures.
        threads: ONNX Runtime intra-op threads (0: half the usable cores, 1 to 4, as the CLI).
        faults: the kinds injected, in turn.
        outage_s: how long the network stream's sender stays dead.
        read_timeout_s: silence after which the network source counts as gone.
        stall_s: how long the webhook endpoint does not answer.
        slow_sink_s: how long the slow callback holds the pipeline up.
        recovery_timeout_s: a fault not recovered after this long counts as not recovered.
        settle_s: after a recovery, the aftermath still belongs to the fault at least this
            long, and until the end-to-end p99 is back to its level before the fault
            in `settle_intervals` sample intervals in a row (at most `settle_timeout_s`;
            how long it took is in the fault's report).
        path: "session" (avfuse.api.start, as `avfuse run`) or "pipeline".
        jsonl_max_mb: the JSONL sink rotates past this size (keeping 3 files).
        udp_muxrate: the network stream is padded to this constant rate. FFmpeg's UDP
            receive buffer (9.4 MB, the `fifo_size` MediaSource sets) takes memory as it
            first fills: at the scene's own ~0.6 Mbit/s that lasts two minutes and would
            read as growth; at 8 Mbit/s it is over in ~10 s, inside the warm-up.
        udp_refill_s: after the network stream reconnects, memory is judged again only
            this long after the recovery (the new receive buffer fills again).
        sabotage: one of `SABOTAGE`, once per fault (checks the checks).
        progress_every_s: a progress line on the progress stream this often.
        goals: the verdicts' bounds.
    """

    seconds: float = 1800.0
    fault_every_s: float = 120.0
    warmup_s: float | None = None
    sample_every_s: float = 2.0
    threads: int = 0
    faults: tuple[str, ...] = FAULT_KINDS
    outage_s: float = 4.0
    read_timeout_s: float = 2.0
    stall_s: float = 6.0
    slow_sink_s: float = 1.0
    recovery_timeout_s: float = 30.0
    settle_s: float = 2.0
    settle_timeout_s: float = 60.0
    settle_intervals: int = 4
    path: Literal["session", "pipeline"] = "session"
    jsonl_max_mb: float = 0.05
    udp_muxrate: str | None = "8M"
    udp_refill_s: float = 12.0
    sabotage: str | None = None
    progress_every_s: float = 30.0
    goals: SoakGoals = field(default_factory=SoakGoals)

    def __post_init__(self) -> None:
        unknown = [k for k in self.faults if k not in FAULTS]
        if unknown:
            raise UsageError(f"unknown fault kind(s) {unknown}: use {', '.join(FAULT_KINDS)}")
        if self.sabotage is not None and self.sabotage not in SABOTAGE:
            raise UsageError(f"unknown sabotage {self.sabotage!r}: use {', '.join(SABOTAGE)}")
        if self.path not in ("session", "pipeline"):
            raise UsageError(f"path must be 'session' or 'pipeline', got {self.path!r}")
        if not (self.seconds > 0 and self.fault_every_s > 0 and self.sample_every_s > 0):
            raise UsageError("seconds, fault_every_s and sample_every_s must be positive")

    @property
    def warmup(self) -> float:
        """The warm-up in seconds."""
        return self.warmup_s if self.warmup_s is not None else min(120.0, self.seconds / 6)


class _Series:
    """The time series, in arrays allocated (and touched) before the run starts."""

    def __init__(self, n: int, streams: list[str]) -> None:
        self.cols = ["t", "tick_t", "e2e_count", "p99_ms", *ProcessSampler.FIELDS, "records",
                     "drops", *(f"frames:{s}" for s in streams)]  # fmt: skip
        self.data = np.full((n, len(self.cols)), np.nan)
        self.cum = np.full((n, len(LATENCY_BOUNDS_MS)), 0, np.int64)
        self.n = 0

    def add(self, values: dict[str, float], cum: tuple[int, ...]) -> None:
        if self.n >= len(self.data):
            return  # the run overran its schedule: later samples are not kept
        self.data[self.n] = [values[c] for c in self.cols]
        self.cum[self.n] = cum
        self.n += 1

    def columns(self) -> dict[str, np.ndarray]:
        return {c: self.data[: self.n, i] for i, c in enumerate(self.cols)}


def next_wake(
    now: float,
    *,
    times: tuple[float, ...],
    pending: list[float],
    quiet_until: float,
    active: bool,
) -> float:
    """When the soak's loop next has something to do.

    While a fault is active it is looked at every 0.2 s and the next one waits for its
    window to close, so the next fault's time counts only when none is active: counting
    it then made the loop spin (a wait of 0) from the moment that time passed until the
    active fault settled, which took a core from the pipeline it measures (seen with
    faults every 15 s, whose windows overlap the next fault's time).
    """
    wake = min(times)
    if active:
        return min(wake, now + 0.2)
    if pending:
        wake = min(wake, max(pending[0], quiet_until))
    return wake


def _sabotage(kind: str | None, rig: Rig, kept: list[Any]) -> None:
    """One deliberate defect per fault (see `SABOTAGE`)."""
    if kind == "fd":
        kept.append(open("/dev/null", "rb"))  # noqa: SIM115 - leaked on purpose
    elif kind == "thread":
        t = threading.Thread(target=threading.Event().wait, daemon=True, name="soak-leak")
        t.start()
        kept.append(t)
    elif kind == "rss":
        kept.append(np.ones(2 << 20, np.uint8))  # 2 MiB, touched
    elif kind == "latency":
        rig.backend.extra_delay_s += 0.025


def run_soak(cfg: SoakConfig, *, progress: TextIO | None = sys.stderr) -> dict[str, Any]:
    """Run the soak and judge it; returns the result (the JSON the script writes, less its
    command and provenance)."""
    from avfuse.assets import default_model_path
    from avfuse.backends.base import BackendOptions
    from avfuse.engine.pipeline import Pipeline, PipelineConfig
    from avfuse.engine.sink_webhook import WebhookSink
    from avfuse.engine.sinks import JsonlSink
    from avfuse.engine.sources.media import MediaSource
    from avfuse.manifest import load_manifest
    from avfuse.manifest.spec import Cadence

    sampler = ProcessSampler()
    before = dict(zip(ProcessSampler.FIELDS, sampler.sample(), strict=True))
    ffmpeg = ffmpeg_path()
    with tempfile.TemporaryDirectory(prefix="avfuse-soak-") as tmp:
        folder = Path(tmp)
        _, file_long = write_scene_files(folder, seed=1, seconds=cfg.seconds + 60)
        net_one, _ = write_scene_files(folder, seed=2, seconds=1)
        sender = UdpSender(ffmpeg, net_one, muxrate=cfg.udp_muxrate)
        endpoint = WebhookEndpoint()
        backend = FaultyBackend(options=BackendOptions(threads=cfg.threads))
        # the model on every frame (its manifest says every 3rd): the hardest cadence, and
        # the loss figures count processed frames against the frame rate
        bundled = load_manifest(default_model_path())
        backend.load(replace(bundled, cadence=Cadence(every_frames=1)))
        pcfg = PipelineConfig(realtime=True)
        probe = SoakProbe(LATENCY_BOUNDS_MS)
        webhook = WebhookSink(url=endpoint.url, backlog=10_000, timeout=1.0)
        sinks = [
            JsonlSink(path=folder / "records.jsonl", max_bytes=int(cfg.jsonl_max_mb * 1e6), keep=3),
            webhook,
            probe.sink(),
        ]
        try:
            sender.start()
            sources = [
                LoopingSceneSource(seed=0, name="synthetic"),
                MediaSource(file_long, name="file", realtime=True),
                MediaSource(sender.url, name="udp", read_timeout_s=cfg.read_timeout_s,
                            reconnect_s=3600.0),
            ]  # fmt: skip
            session = None
            if cfg.path == "session":
                from avfuse.api import start

                # as `avfuse run` without --truth: the records go to the sinks, none kept
                session = start(sources=sources, backend=backend, sinks=sinks, config=pcfg,
                                keep_records=0)  # fmt: skip
                pipe = session.pipeline
            else:
                pipe = Pipeline(streams=sources, backend=backend, sinks=sinks, config=pcfg)
                pipe.start()
            probe.pipeline = pipe
            streams = [
                {"name": s.name, "fps": s.fps, "live": s.live} for s in pipe.run_info().streams
            ]
            rig = Rig(sender=sender, endpoint=endpoint, webhook=webhook, backend=backend,
                      probe=probe, streams=streams, net_stream="udp", max_batch=pcfg.max_batch,
                      outage_s=cfg.outage_s, stall_s=cfg.stall_s, slow_sink_s=cfg.slow_sink_s,
                      restart=cfg.sabotage != "no_restart",
                      refill_s=cfg.udp_refill_s)  # fmt: skip
            loop = _Loop(cfg, rig, pipe, sampler, progress)
            error = loop.run()
            t_stop = time.monotonic()
            retained = 0
            try:
                if session is not None:
                    session.stop()
                    res = session.wait(60)
                    retained = len(res.records) if res is not None else 0
                else:
                    pipe.stop(60)
                    pipe.wait(0)
            except Exception as e:  # noqa: BLE001 - a failed end is a result too
                error = error or f"the run ended with {type(e).__name__}: {e}"
            summary = pipe.summary
            stop_s = time.monotonic() - t_stop
            loop.drain()  # the records of the drain, the summary last
        finally:
            sender.kill()
            endpoint.close()
            backend.close()
        series = loop.series.columns()
        faults = [f.report(t0=loop.t0) for f in loop.done]
        verdicts = analyse(series, loop.series.cum[: loop.series.n], faults=faults,
                           streams=streams, warmup_s=cfg.warmup, settle_s=cfg.settle_s,
                           goals=cfg.goals)  # fmt: skip
        verdicts["faults"]["skipped"] = loop.skipped
        rotated = sorted(p.name for p in folder.glob("records.jsonl.*"))
    return {
        "benchmark": "soak",
        "config": {**asdict(cfg), "warmup_s": cfg.warmup},
        "streams": streams,
        "before_start": {k: round(v, 2) for k, v in before.items()},
        "faults": faults,
        "faults_skipped": loop.skipped,
        "verdicts": verdicts,
        "run_error": error,
        "records": {"/".join(str(x) for x in k): v for k, v in sorted(loop.counts.items())},
        "records_sent": loop.n_records,
        "retained_by_session": retained,
        "jsonl_rotations": rotated,
        "webhook": {
            **webhook.figures(),
            "endpoint_records": endpoint.records,
            "endpoint_unanswered": endpoint.unanswered,
        },  # fmt: skip
        "sender_starts": sender.starts,
        "stop_s": round(stop_s, 3),
        "summary": summary.to_dict() if summary is not None else None,
        "series": _plain_series(series, loop.series.cum[: loop.series.n]),
    }


def _plain_series(series: dict[str, np.ndarray], cum: np.ndarray) -> dict[str, list[Any]]:
    """JSON-ready columns, with each sample interval's p50 end-to-end latency added."""
    out: dict[str, list[Any]] = {
        k: [None if not math.isfinite(x) else round(float(x), 3) for x in v]
        for k, v in series.items()
    }
    p50: list[float | None] = [None]
    counts = series["e2e_count"]
    for i in range(1, len(counts)):
        p50.append(percentile(cum[i] - cum[i - 1], int(counts[i] - counts[i - 1]), 50))
    out["p50_ms"] = p50
    return out


class _Loop:
    """The soak's own thread: samples, injects faults, polls them until they recover."""

    def __init__(self, cfg: SoakConfig, rig: Rig, pipe: Any, sampler: ProcessSampler,
                 progress: TextIO | None) -> None:  # fmt: skip
        self.cfg, self.rig, self.pipe, self.sampler, self.progress = (
            cfg,
            rig,
            pipe,
            sampler,
            progress,
        )
        names = [s["name"] for s in rig.streams]
        self.series = _Series(int(cfg.seconds / cfg.sample_every_s) + 16, names)
        self.tail_s = min(cfg.fault_every_s, 15.0)  # the last fault's time to recover
        self.times = schedule(seconds=cfg.seconds, warmup_s=cfg.warmup, every_s=cfg.fault_every_s,
                              tail_s=self.tail_s)  # fmt: skip
        self.done: list[Fault] = []
        self.skipped = 0
        self.counts: dict[tuple[Any, ...], int] = {}
        self.n_records = 0
        self.kept: list[Any] = []
        self._wake = threading.Event()
        self.t0 = time.monotonic()

    def drain(self) -> None:
        """Take in what the probe has queued (records, the slow sink's blocks)."""
        rig = self.rig
        while not rig.probe.records.empty():
            item = rig.probe.records.get()
            if item[0] == "slow_sink":
                rig.slow_blocks.append((item[1], item[2]))
                continue
            t, rtype, kind, stream, source, rec = item
            self.n_records += 1
            key = (rtype, kind) if kind else (rtype,)
            self.counts[key] = self.counts.get(key, 0) + 1
            rig.seen[(rtype, kind, stream)] = t
            if rtype == "fault":
                rig.seen[(rtype, kind, source, rec)] = t

    def _sample(self, now: float, tick: Tick | None) -> None:
        figures = dict(zip(ProcessSampler.FIELDS, self.sampler.sample(), strict=True))
        snap = tick.snapshot if tick is not None else {"drops": {}, "streams": []}
        drops = sum(snap["drops"].values()) + sum(
            v for s in snap["streams"] for v in s.get("drops", {}).values()
        )
        values = {"t": now - self.t0, "tick_t": (tick.time_s - self.t0) if tick else math.nan,
                  "e2e_count": tick.e2e_count if tick else 0, "records": self.n_records,
                  "drops": drops, **figures}  # fmt: skip
        for s in self.rig.streams:
            values[f"frames:{s['name']}"] = frames_of(tick, s["name"])
        cum = tick.e2e_cumulative if tick is not None else (0,) * len(LATENCY_BOUNDS_MS)
        values["p99_ms"] = math.nan
        n = self.series.n
        if n:  # over the interval since the last sample
            prev = self.series.cum[n - 1]
            count = (
                values["e2e_count"] - self.series.data[n - 1, self.series.cols.index("e2e_count")]
            )
            p = percentile(np.asarray(cum) - prev, int(count), 99)
            values["p99_ms"] = math.nan if p is None else p
        self.series.add(values, cum)

    def _say(self, now: float, active: Fault | None) -> None:
        if self.progress is None or self.series.n == 0:
            return
        c = self.series.columns()
        ok = sum(f.recovered for f in self.done)
        p99 = c["p99_ms"][-1]
        print(
            f"[soak] {now - self.t0:6.0f}/{self.cfg.seconds:.0f} s  rss {c['rss_mb'][-1]:.1f} MB  "
            f"fds {c['fds'][-1]:.0f}  threads {c['threads_os'][-1]:.0f}  "
            f"p99 {p99:.1f} ms  drops {c['drops'][-1]:.0f}  "
            f"faults {ok}/{len(self.done)} recovered" + (f", {active.kind} now" if active else ""),
            file=self.progress,
            flush=True,
        )

    def _recent_p99(self) -> float | None:
        """Median p99 of the last three sample intervals (None before any)."""
        p = self.series.data[
            max(0, self.series.n - 3) : self.series.n, self.series.cols.index("p99_ms")
        ]
        p = p[np.isfinite(p)]
        return round(float(np.median(p)), 3) if len(p) else None

    def _advance(self, f: Fault, now: float, tick: Tick | None) -> bool:
        """Move a fault on (recovering, then settling); True once its window has closed.

        Settled: `settle_s` after the recovery, the p99 of each of the last
        `settle_intervals` sample intervals (all after the recovery) is within 1.5 x + 5 ms
        of its level before the fault.
        """
        cfg = self.cfg
        if f.t_recovered is None:
            if f.poll(now, tick):
                f.recovered, f.t_recovered = True, now
            elif now - f.t_inject > cfg.recovery_timeout_s:
                f.t_window_end = now
                return True
            return False
        since = now - f.t_recovered
        if since < cfg.settle_s:
            return False
        before = f.details.get("p99_before_ms")
        c = self.series.columns()
        after = c["p99_ms"][c["t"] > f.t_recovered - self.t0 + cfg.sample_every_s]
        n = cfg.settle_intervals
        settled = before is None or (
            len(after) >= n and bool(np.all(after[-n:] <= 1.5 * before + 5.0))
        )
        if settled or since >= cfg.settle_timeout_s:
            f.t_window_end = now
            f.details["settled"] = settled
            f.details["settled_after_s"] = round(since, 3)
            return True
        return False

    def run(self) -> str | None:
        """Until the run's time is up; returns why the pipeline ended early (None: it did not)."""
        cfg, rig = self.cfg, self.rig
        end = self.t0 + cfg.seconds
        next_sample, next_say = self.t0, self.t0 + cfg.progress_every_s
        pending = [self.t0 + t for t in self.times] if cfg.faults else []
        kinds = list(cfg.faults)
        active: Fault | None = None
        quiet_until = self.t0
        while (now := time.monotonic()) < end:
            self.drain()
            tick = rig.probe.latest
            try:
                if self.pipe.wait(0):
                    return f"the pipeline ended early ({self.pipe.stopped_by})"
            except BaseException as e:  # noqa: BLE001 - reported in the result
                return f"the pipeline failed: {type(e).__name__}: {e}"
            if active is not None and self._advance(active, now, tick):
                active = None  # the next fault waits for this one's window to close
                quiet_until = now + TICK_MARGIN_S
            if pending and max(pending[0], quiet_until) > end - self.tail_s + TICK_MARGIN_S:
                self.skipped += len(pending)  # delayed too far: no time left to recover
                pending.clear()
            # sample before a fault due at the same moment: a sample taken just after the
            # injection carries the injection's time and counted as before the fault (an
            # fd the killed stream had closed became the fd baseline)
            if now >= next_sample and tick is not None:
                self._sample(now, tick)
                next_sample += cfg.sample_every_s
            if active is None and pending and now >= max(pending[0], quiet_until):
                pending.pop(0)
                kind = kinds[len(self.done) % len(kinds)]
                active = FAULTS[kind](rig, now)
                active.details["p99_before_ms"] = self._recent_p99()
                active.inject(tick)
                self.done.append(active)
                _sabotage(cfg.sabotage, rig, self.kept)
            if now >= next_say:
                self._say(now, active)
                next_say += cfg.progress_every_s
            wake = next_wake(now, times=(next_sample, next_say, end), pending=pending,
                             quiet_until=quiet_until, active=active is not None)  # fmt: skip
            self._wake.wait(max(0.0, wake - time.monotonic()))
        return None


__all__ = ["SABOTAGE", "SoakConfig", "next_wake", "run_soak"]
