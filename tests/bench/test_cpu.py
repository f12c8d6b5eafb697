"""CPU sampling of a child process (avfuse.bench.cpu) on real processes and threads.

The children burn fixed amounts of CPU time (each thread until its own thread_time
reaches a target), so the expected figures hold whatever the machine's load: only the
wall time stretches.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from avfuse.bench.cpu import watch, window

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")

# Phase A: a thread burns 0.3 s and exits while /dev/null is held read-write (as a library
# starting a subprocess holds it): not the marker. Phase B: /dev/null opened for writing
# (the marker), 0.5 s idle, two threads burn 0.4 s each and exit, 0.5 s idle, closed.
# Phase C: the main thread burns 0.2 s after the marker closed.
CHILD = r"""
import os, threading, time

def burn(s):
    t = time.thread_time()
    while time.thread_time() - t < s:
        pass

def in_threads(n, s):
    ts = [threading.Thread(target=burn, args=(s,)) for _ in range(n)]
    for t in ts: t.start()
    for t in ts: t.join()

rw = os.open(os.devnull, os.O_RDWR)
in_threads(1, 0.3)
os.close(rw)
with open(os.devnull, "w"):
    time.sleep(0.5)
    in_threads(2, 0.4)
    time.sleep(0.5)
burn(0.2)
"""

# the child starts a grandchild that burns 0.5 s and then waits, still alive (not reaped)
# when the marker closes: only a scan for the child's descendants can see its time
PARENT = r"""
import subprocess, sys, time
BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.5: pass\n"
BURN += "print('done', flush=True)\ntime.sleep(60)"
with open("/dev/null", "w"):
    time.sleep(0.3)
    g = subprocess.Popen([sys.executable, "-c", BURN], stdout=subprocess.PIPE, text=True)
    if g.stdout.readline() != "done\n":
        raise SystemExit("the grandchild failed")
    time.sleep(0.3)
g.kill()
g.wait()
"""


@pytest.mark.timeout(60)
def test_window_counts_every_thread_of_the_run_and_only_the_run() -> None:
    trace = watch([sys.executable, "-c", CHILD], interval_s=0.02)
    assert trace.returncode == 0, trace.stderr_tail
    assert trace.opened is not None and trace.closed is not None
    w = window(trace)
    # both burner threads had exited when the window closed: a sum over live threads, or
    # the main thread's own figure, would miss them
    assert 0.78 <= w["cpu_s"] <= 0.95, w
    assert w["startup_cpu_s"] >= 0.29  # phase A (read-write /dev/null) was before the run
    assert w["wall_s"] >= 1.0  # the two idle half-seconds are inside
    assert trace.cpu_total_s >= 0.3 + 0.8 + 0.2 - 0.03


@pytest.mark.timeout(60)
def test_a_live_subprocess_of_the_child_is_counted() -> None:
    trace = watch([sys.executable, "-c", PARENT], interval_s=0.02, scan_every=5)
    assert trace.returncode == 0, trace.stderr_tail
    assert trace.descendants == 1
    w = window(trace)
    assert 0.49 <= w["cpu_s"] <= 0.9, w  # the grandchild's 0.5 s plus its interpreter start


@pytest.mark.timeout(30)
def test_a_run_that_never_opens_the_marker_is_reported() -> None:
    trace = watch([sys.executable, "-c", "pass"], interval_s=0.02)
    with pytest.raises(ValueError, match="never opened"):
        window(trace)
