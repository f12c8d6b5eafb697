"""Liveness and readiness of a run, judged from the pipeline's published snapshot.

Liveness answers "is the run stuck?": the pipeline publishes a snapshot every stats tick
(`PipelineConfig.stats_interval_s`, 1 s by default), so a snapshot older than
`stale_after_s` means its loop has stopped turning (a hung backend, a dead worker), and a
snapshot that says it is no longer running means the run ended. Before the first snapshot
the age counts from when the watcher started, so warm-up is not a failure until it has
taken longer than `stale_after_s` too.

Readiness answers "is it doing its job?": a fresh snapshot exists, the run goes on, and
decisions are being made or at least one source is up.

Both are pure functions of (snapshot, time), so the HTTP endpoints and a systemd watchdog
give the same verdict for the same state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Verdict:
    """One health answer.

    Attributes:
        ok: True when healthy (HTTP 200), False otherwise (HTTP 503).
        reason: one line for a person saying why.
    """

    ok: bool
    reason: str


def streams_up(snapshot: Mapping[str, Any]) -> tuple[int, int]:
    """(streams with at least one modality up, streams) in a snapshot."""
    streams = snapshot.get("streams") or []
    up = sum(1 for s in streams if s.get("audio_up") or s.get("video_up"))
    return up, len(streams)


def snapshot_age_s(snapshot: Mapping[str, Any], now_ns: int) -> float:
    """Seconds since the snapshot was made (its `time_ns` is on the host's monotonic clock)."""
    return max(0.0, (now_ns - int(snapshot["time_ns"])) / 1e9)


def liveness(
    snapshot: Mapping[str, Any] | None, *, now_ns: int, since_ns: int, stale_after_s: float
) -> Verdict:
    """Whether the run is alive: running, with a snapshot younger than `stale_after_s`.

    Args:
        snapshot: the latest `Pipeline.snapshot` (None before the first stats tick).
        now_ns: the current host monotonic time (`avfuse.engine.clock.now_ns`).
        since_ns: when the watcher started; ages count from it before the first snapshot.
        stale_after_s: how old a snapshot may be; a few stats intervals.
    """
    if snapshot is None:
        age = max(0.0, (now_ns - since_ns) / 1e9)
        if age < stale_after_s:
            return Verdict(True, f"starting: no figures published yet ({age:.1f} s)")
        return Verdict(
            False,
            f"no figures published in {age:.1f} s since start (stale after {stale_after_s:g} s)",
        )
    if not snapshot.get("running", False):
        return Verdict(False, "the run has ended")
    age = snapshot_age_s(snapshot, now_ns)
    if age >= stale_after_s:
        return Verdict(
            False,
            f"stale: the pipeline published no figures for {age:.1f} s "
            f"(stale after {stale_after_s:g} s); its loop is stuck",
        )
    return Verdict(True, f"ok: figures {age:.1f} s old")


def readiness(snapshot: Mapping[str, Any] | None, *, now_ns: int, stale_after_s: float) -> Verdict:
    """Whether the run does its job: running with fresh figures, and decisions flowing or a
    source up. Stale figures are not ready either: nobody knows what the run does then."""
    if snapshot is None:
        return Verdict(False, "not ready: no figures published yet (warming up)")
    if not snapshot.get("running", False):
        return Verdict(False, "not ready: the run has ended")
    age = snapshot_age_s(snapshot, now_ns)
    if age >= stale_after_s:
        return Verdict(False, f"not ready: the figures are {age:.1f} s old (stale)")
    up, total = streams_up(snapshot)
    frames = int(snapshot.get("frames", 0))
    if frames > 0 or up > 0:
        return Verdict(True, f"ready: {frames} decisions, streams up {up}/{total}")
    return Verdict(False, f"not ready: no decisions yet and no source up (0/{total} streams)")


__all__ = ["Verdict", "liveness", "readiness", "snapshot_age_s", "streams_up"]
