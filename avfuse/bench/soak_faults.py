"""The soak's fault schedule: each kind of fault injected, watched until it recovered.

Times are monotonic seconds (`time.monotonic()`), as the probe's records and ticks
carry. A fault is injected at its time, then polled (a few times a second, from the soak's
thread) until the run shows it recovered or `recovery_timeout_s` passed:

    stream_kill    the network stream's ffmpeg is killed; after `outage_s` a new one
                   starts on the same port. Recovered: the stream reported the loss and
                   the reconnect, both its tracks are up and its frames flow again.
    webhook_stall  the webhook endpoint stops answering for `stall_s`. Recovered: the
                   sink delivered again and its backlog drained.
    slow_sink      a callback sink blocks the pipeline's thread for `slow_sink_s`, once.
    backend_error  the backend raises BackendError on one call. Recovered (both): frames
                   flow on every stream after it (and, for the backend, the pipeline
                   counted exactly one error and reported it as recoverable).

Each fault says how many frames it may cost each stream (`budget`): the killed stream
its frame rate times the outage; every stream the frames of a blocked pipeline (the
run is in real time, and a file played in real time is paced like a live source: its
frames are not held back for a pipeline that stalls); one batch for a backend error;
nothing for a stalled webhook (it must never block the pipeline).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from avfuse.bench.soak_rig import FaultyBackend, SoakProbe, Tick, UdpSender, WebhookEndpoint
from avfuse.engine.sink_webhook import WebhookSink

FAULT_KINDS = ("stream_kill", "webhook_stall", "slow_sink", "backend_error")


@dataclass(kw_only=True)
class Rig:
    """The parts a fault acts on and watches, and what the soak has seen so far.

    `seen` holds, per (record type, kind, stream or source), the time the last such
    record arrived (a fixed set of keys, so it does not grow with the run).
    """

    sender: UdpSender
    endpoint: WebhookEndpoint
    webhook: WebhookSink
    backend: FaultyBackend
    probe: SoakProbe
    streams: list[dict[str, Any]]
    net_stream: str
    max_batch: int
    outage_s: float = 4.0
    stall_s: float = 6.0
    slow_sink_s: float = 1.0
    restart: bool = True
    refill_s: float = 12.0
    seen: dict[tuple[Any, ...], float] = field(default_factory=dict)
    slow_blocks: list[tuple[float, float]] = field(default_factory=list)


def frames_of(tick: Tick | None, name: str) -> int:
    """Frames processed so far on stream `name`, as of `tick` (0 before any)."""
    if tick is None:
        return 0
    return next((int(s["frames"]) for s in tick.snapshot["streams"] if s["name"] == name), 0)


class Fault:
    """One injected fault (base: times, outcome, the fields every kind reports)."""

    kind = ""

    def __init__(self, rig: Rig, t_inject: float) -> None:
        self.rig = rig
        self.t_inject = t_inject
        self.t_recovered: float | None = None
        self.recovered = False
        #: when the fault's window closed: recovered and the latency back to its level
        #: before the fault (or the settling time ran out)
        self.t_window_end: float | None = None
        self.details: dict[str, Any] = {}

    def inject(self, tick: Tick | None) -> None:
        """Make the fault happen now."""

    def poll(self, now: float, tick: Tick | None) -> bool:
        """True once the run has recovered from the fault."""
        return False

    def budget(self) -> dict[str, float]:
        """Frames the fault may cost each stream."""
        return {}

    def _flowing(self, since: float, tick: Tick | None, base: dict[str, int]) -> bool:
        """Every stream processed frames after `since` (a tick later than it, frames up)."""
        if tick is None or tick.time_s <= since:
            return False
        return all(frames_of(tick, s["name"]) > base.get(s["name"], 0) for s in self.rig.streams)

    def report(self, *, t0: float) -> dict[str, Any]:
        """What the result file keeps of this fault (times in seconds from `t0`)."""

        def rel(t: float | None) -> float | None:
            return None if t is None else round(t - t0, 3)

        rec = self.t_recovered
        return {
            "kind": self.kind,
            "t_inject": rel(self.t_inject),
            "t_recovered": rel(rec),
            "recovery_s": None if rec is None else round(rec - self.t_inject, 3),
            "t_window_end": rel(self.t_window_end),
            "recovered": self.recovered,
            "budget": {k: round(v) for k, v in self.budget().items()},
            **self.details,
        }


class StreamKill(Fault):
    """Kill the network stream's sender, restart it after the outage."""

    kind = "stream_kill"

    def inject(self, tick: Tick | None) -> None:
        self.details["rss_settle_s"] = self.rig.refill_s
        self.rig.sender.kill()
        self.restarted_at: float | None = None
        self.base: dict[str, int] = {}

    def poll(self, now: float, tick: Tick | None) -> bool:
        rig, name = self.rig, self.rig.net_stream
        if self.restarted_at is None and now >= self.t_inject + rig.outage_s and rig.restart:
            rig.sender.start()
            self.restarted_at = now
            self.base = {name: frames_of(tick, name)}
        lost = rig.seen.get(("warning", "disconnected", name), -1.0)
        back = rig.seen.get(("warning", "reconnected", name), -1.0)
        self.details["loss_reported"] = lost > self.t_inject
        self.details["reconnect_reported"] = back > self.t_inject
        if self.restarted_at is None or not (lost > self.t_inject and back > self.t_inject):
            return False
        if tick is None or tick.time_s <= back or frames_of(tick, name) <= self.base[name]:
            return False
        snap = next(s for s in tick.snapshot["streams"] if s["name"] == name)
        if not (snap["audio_up"] and snap["video_up"]):  # both tracks back
            return False
        self.details["reported_loss_after_s"] = round(lost - self.t_inject, 3)
        self.details["reconnected_after_restart_s"] = round(back - self.restarted_at, 3)
        return True

    def budget(self) -> dict[str, float]:
        s = next(s for s in self.rig.streams if s["name"] == self.rig.net_stream)
        end = self.t_recovered if self.t_recovered is not None else self.t_inject
        return {s["name"]: s["fps"] * (end - self.t_inject + 1.0)}


class WebhookStall(Fault):
    """The webhook endpoint stops answering for a while."""

    kind = "webhook_stall"

    def inject(self, tick: Tick | None) -> None:
        wh = self.rig.webhook
        self.f0, self.d0 = wh.failures, wh.dropped
        self.rig.endpoint.stall(self.rig.stall_s)
        self.sent_at_end: int | None = None
        self.details["max_queued"] = 0

    def poll(self, now: float, tick: Tick | None) -> bool:
        wh = self.rig.webhook
        queued = wh.figures()["queued"]
        self.details["max_queued"] = max(self.details["max_queued"], queued)
        if now < self.t_inject + self.rig.stall_s:
            return False
        if self.sent_at_end is None:
            self.sent_at_end = wh.sent
        self.details["failed_posts"] = wh.failures - self.f0
        self.details["dropped"] = wh.dropped - self.d0
        return wh.sent > self.sent_at_end and not wh.down and queued <= 5


class SlowSink(Fault):
    """A callback sink holds the pipeline's thread up once."""

    kind = "slow_sink"

    def inject(self, tick: Tick | None) -> None:
        self.n0 = len(self.rig.slow_blocks)
        self.base: dict[str, int] | None = None
        self.rig.probe.arm_slow(self.rig.slow_sink_s)

    def poll(self, now: float, tick: Tick | None) -> bool:
        if len(self.rig.slow_blocks) <= self.n0:
            return False
        t0, t1 = self.rig.slow_blocks[self.n0]
        self.details["blocked_s"] = round(t1 - t0, 3)
        if self.base is None:  # the first tick after the block: frames from here on count
            if tick is None or tick.time_s <= t1:
                return False
            self.base = {s["name"]: frames_of(tick, s["name"]) for s in self.rig.streams}
            self.base_t = tick.time_s
            return False
        return self._flowing(self.base_t, tick, self.base)

    def budget(self) -> dict[str, float]:
        wait = self.rig.slow_sink_s + 1.0
        return {s["name"]: s["fps"] * wait for s in self.rig.streams}


class BackendFailure(Fault):
    """The backend raises once; the pipeline drops that batch and goes on."""

    kind = "backend_error"

    def inject(self, tick: Tick | None) -> None:
        self.r0 = self.rig.backend.raised
        self.e0 = int(tick.snapshot["backend_errors"]) if tick is not None else 0
        self.base = {s["name"]: frames_of(tick, s["name"]) for s in self.rig.streams}
        self.rig.backend.arm()

    def poll(self, now: float, tick: Tick | None) -> bool:
        if self.rig.backend.raised <= self.r0:
            return False
        fault_seen = self.rig.seen.get(("fault", "error", "backend:ort", True), -1.0)
        self.details["fault_reported"] = fault_seen > self.t_inject
        if tick is None or not self.details["fault_reported"]:
            return False
        counted = int(tick.snapshot["backend_errors"]) - self.e0
        self.details["errors_counted"] = counted
        return counted == 1 and self._flowing(fault_seen, tick, self.base)

    def budget(self) -> dict[str, float]:
        return {s["name"]: float(self.rig.max_batch) for s in self.rig.streams}


FAULTS: dict[str, type[Fault]] = {
    c.kind: c for c in (StreamKill, WebhookStall, SlowSink, BackendFailure)
}


def schedule(*, seconds: float, warmup_s: float, every_s: float, tail_s: float) -> list[float]:
    """Fault times: at the end of the warm-up, then every `every_s`, none in the last `tail_s`."""
    out = []
    t = warmup_s
    while t <= seconds - tail_s:
        out.append(round(t, 3))
        t += every_s
    return out


__all__ = ["FAULTS", "FAULT_KINDS", "Fault", "Rig", "frames_of", "schedule"]
