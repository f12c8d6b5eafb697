"""What a result was measured on: machine, versions, git commit.

Every result JSON carries this record so two runs can only be compared knowingly
(same CPU? same onnxruntime?), and the file name says the machine and date.
"""

from __future__ import annotations

import functools
import os
import platform
import re
import socket
import subprocess
from pathlib import Path
from typing import Any

from avfuse.provenance import git_commit, package_versions

_PACKAGES = (
    "avfuse",
    "numpy",
    "onnxruntime",
    "onnxruntime-gpu",
    "onnx",
    "torch",
    "numba",
    "opencv-python-headless",
    "mlcommons-loadgen",
    "tensorrt",
)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


@functools.lru_cache(maxsize=1)
def _gpus() -> tuple[str, ...]:
    try:
        r = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ()
    if r.returncode != 0:
        return ()
    return tuple(ln.strip() for ln in r.stdout.splitlines() if ln.strip())


def versions() -> dict[str, str | None]:
    """Installed versions of the packages that decide the numbers (None: absent)."""
    return package_versions(_PACKAGES)


def machine() -> dict[str, Any]:
    """Host, CPU, cores, memory, GPUs and load at the start of the run."""
    try:
        load = list(os.getloadavg())
    except OSError:
        load = None
    return {
        "hostname": socket.gethostname(),
        "system": f"{platform.system()} {platform.release()}",
        "arch": platform.machine(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": _memory_gib(),
        "gpus": list(_gpus()),
        "load_avg": load,
        "git_commit": git_commit(short=True),
    }


def machine_slug(m: dict[str, Any]) -> str:
    """File-name-safe machine tag: `<host>-<cores>c` (plus `-gpu` where one is present)."""
    host = re.sub(r"[^A-Za-z0-9]+", "-", str(m.get("hostname", "host"))).strip("-")[:24]
    tag = f"{host or 'host'}-{m.get('cores_usable') or m.get('cores')}c"
    return tag + ("-gpu" if m.get("gpus") else "")
