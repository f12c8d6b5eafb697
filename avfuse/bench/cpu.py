"""CPU time of a child process over its steady state, read from /proc (Linux).

What a pipeline costs at rest is CPU seconds per wall second while it plays, not while
Python imports, the model loads and the kernels compile. `watch` runs a command, samples
the child's CPU time (every thread, live or exited, and its descendants) every few tens
of milliseconds, and notes when the child holds a marker file open for writing: the
`jsonl:` sink opens its file right after the warm-up, just before the sources start, and
closes it after the summary, so that open interval is the run itself. `window` then takes
the CPU and wall time between two samples inside it.

Linux only (/proc); elsewhere `watch` raises `BenchUnavailable`.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avfuse.errors import AvfuseError

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class BenchUnavailable(AvfuseError, OSError):
    """The measurement needs something this machine lacks (here: Linux's /proc)."""


@dataclass(frozen=True, kw_only=True)
class Sample:
    """One reading: seconds since the child started, its CPU seconds, marker held or not.

    `threads` holds (thread id, name, CPU seconds) of each live thread of the child itself,
    so a window can say which thread spent the time.
    """

    t: float
    cpu_s: float
    marker: bool
    threads: tuple[tuple[int, str, float], ...] = ()


@dataclass(frozen=True, kw_only=True)
class Trace:
    """Every sample of one run, the exit status, and where the marker opened and closed.

    `cpu_total_s` is the kernel's account of the whole run (start-up and exit too);
    `descendants` counts the processes the child started that a scan saw.
    """

    samples: tuple[Sample, ...]
    returncode: int
    wall_s: float
    cpu_total_s: float
    stderr_tail: str
    descendants: int = 0

    @property
    def opened(self) -> Sample | None:
        """The first sample that saw the marker open (the run's start)."""
        return next((s for s in self.samples if s.marker), None)

    @property
    def closed(self) -> Sample | None:
        """The first sample after the marker's open interval that saw it closed (the end)."""
        seen = False
        for s in self.samples:
            seen = seen or s.marker
            if seen and not s.marker:
                return s
        return None


def _stat_cpu(path: str, fields: slice = slice(11, 15)) -> float:
    """utime + stime (+ cutime + cstime) of a /proc stat file, in seconds (0: gone)."""
    try:
        text = Path(path).read_text()
    except OSError:
        return 0.0
    rest = text.rsplit(")", 1)[1].split()  # the command name may hold spaces and ')'
    return sum(int(x) for x in rest[fields]) / _TICK


def thread_cpu(pid: int) -> tuple[tuple[int, str, float], ...]:
    """(thread id, name, utime + stime seconds) of every live thread of `pid`."""
    out = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return ()
    for tid in tids:
        try:
            name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
        except OSError:
            continue
        out.append((int(tid), name, _stat_cpu(f"/proc/{pid}/task/{tid}/stat", slice(11, 13))))
    return tuple(out)


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (one scan of /proc: call it seldom)."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                rest = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            parent[int(entry)] = int(rest[1])
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p and c not in found]
        found.update(kids)
        todo += kids
    return found


def process_cpu_s(pid: int, others: Sequence[int] | set[int] = ()) -> float:
    """CPU seconds of a process (all its threads, live or exited) and of `others`.

    /proc/PID/stat of a process sums every thread it has had, plus the descendants it
    has reaped (cutime, cstime); a descendant still running counts only when it is in
    `others` (see `descendants`).
    """
    return _stat_cpu(f"/proc/{pid}/stat") + sum(_stat_cpu(f"/proc/{d}/stat") for d in others)


def holds_for_writing(pid: int, path: str) -> bool:
    """Whether `pid` has `path` open write-only on a descriptor >= 3.

    Write-only tells a sink's `open(path, "w")` from a library opening /dev/null
    read-write for a subprocess; descriptors 0-2 are the standard streams.
    """
    fd_dir = f"/proc/{pid}/fd"
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return False
    for fd in fds:
        if int(fd) < 3:
            continue
        try:
            if os.readlink(f"{fd_dir}/{fd}") != path:
                continue
            info = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
        except OSError:
            continue
        flags = next((ln.split()[1] for ln in info.splitlines() if ln.startswith("flags:")), "0")
        if int(flags, 8) & os.O_ACCMODE == os.O_WRONLY:
            return True
    return False


def watch(
    cmd: Sequence[str],
    *,
    marker: str = os.devnull,
    interval_s: float = 0.05,
    timeout_s: float = 300.0,
    scan_every: int = 20,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
) -> Trace:
    """Run `cmd` to its end, sampling its CPU time and whether it holds `marker` open.

    Every `scan_every` samples /proc is scanned for processes the child started (a
    descendant's CPU counts from its start, so one found late is not undercounted).

    Raises:
        BenchUnavailable: without /proc (not Linux).
        TimeoutError: the command ran past `timeout_s` (it is killed first).
    """
    if not Path("/proc/self/stat").exists():
        raise BenchUnavailable("CPU sampling reads /proc: run this benchmark on Linux")
    samples: list[Sample] = []
    with tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            list(cmd), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
            env=dict(env) if env is not None else None, cwd=cwd,
        )  # fmt: skip
        total, below, n = None, set(), 0
        try:
            while True:
                t = time.monotonic() - t0
                if n % scan_every == 0:
                    below |= descendants(proc.pid)
                n += 1
                cpu = process_cpu_s(proc.pid, below)
                held = holds_for_writing(proc.pid, marker)
                threads = thread_cpu(proc.pid)
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:  # reaped here, so its rusage (the whole run) is this child's alone
                    proc.returncode = os.waitstatus_to_exitcode(status)
                    total = usage.ru_utime + usage.ru_stime
                    break
                samples.append(Sample(t=t, cpu_s=cpu, marker=held, threads=threads))
                if t > timeout_s:
                    raise TimeoutError(f"{cmd[0]} ran past {timeout_s:.0f} s and was killed")
                time.sleep(interval_s)
            wall = time.monotonic() - t0
        finally:
            if total is None:
                proc.kill()
                proc.wait()
        err.seek(0)
        tail = err.read()[-4000:].decode("utf-8", "replace")
    return Trace(
        descendants=len(below),
        samples=tuple(samples),
        returncode=proc.returncode,
        wall_s=wall,
        cpu_total_s=total,
        stderr_tail=tail,
    )


def window(trace: Trace, *, settle_s: float = 0.0, tail_s: float = 0.0) -> dict[str, Any]:
    """CPU and wall seconds between two samples inside the marker's open interval.

    The window starts at the first sample at least `settle_s` after the marker opened
    and ends at the last sample at least `tail_s` before it closed (or before the last
    sample, when it never closed).

    Raises:
        ValueError: the marker never opened, or the interval is too short for the margins.
    """
    first = trace.opened
    if first is None:
        raise ValueError("the run never opened its marker file: did it fail before starting?")
    last = trace.closed or trace.samples[-1]
    inside = [s for s in trace.samples if first.t + settle_s <= s.t <= last.t - tail_s]
    if len(inside) < 2:
        raise ValueError(
            f"the run lasted {last.t - first.t:.2f} s: too short for {settle_s} s of settling "
            f"and {tail_s} s of tail; play a longer source"
        )
    a, b = inside[0], inside[-1]
    return {
        "start_s": a.t,
        "end_s": b.t,
        "wall_s": b.t - a.t,
        "cpu_s": b.cpu_s - a.cpu_s,
        "run_start_s": first.t,
        "run_end_s": last.t,
        "startup_cpu_s": first.cpu_s,
        "threads": _thread_shares(a, b),
    }


def _thread_shares(a: Sample, b: Sample, top: int = 6) -> list[dict[str, Any]]:
    """The threads that spent the most CPU between two samples (main thread: tid = pid)."""
    before = {tid: cpu for tid, _, cpu in a.threads}
    wall = max(b.t - a.t, 1e-9)
    main = min((tid for tid, _, _ in b.threads), default=None)
    rows = [
        {"tid": tid, "name": name, "main": tid == main, "cpu_s": cpu - before.get(tid, 0.0)}
        for tid, name, cpu in b.threads
    ]
    rows.sort(key=lambda r: -r["cpu_s"])
    for r in rows:
        r["share"] = r["cpu_s"] / wall
    return rows[:top]
