"""The measurements benchmarks/footprint.py takes of one installed venv (Linux, /proc).

Each probe runs the venv's own interpreter as a child process, so what is measured is
that install, never this checkout.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

from avfuse.bench.cpu import descendants, watch, window

#: one 30 fps run: the synthetic scene (320x240 frames, 20 ms audio blocks), paced
LIVE = ["run", "--source", "synthetic", "--realtime"]
#: children see only the venv: no PYTHONPATH (tests set it to the checkout), and they run
#: in a folder of their own, so the checkout is never on their sys.path
CHILD_ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
CHILD_CWD = tempfile.mkdtemp(prefix="avfuse-footprint-")
_SIZES = r"""
import importlib.metadata as md, json, os, sys, sysconfig
site = sysconfig.get_paths()["purelib"]
rows = []
for d in md.distributions(path=[site]):
    size = 0
    for f in d.files or []:
        try:
            size += os.lstat(d.locate_file(f)).st_size
        except OSError:
            pass
    rows.append({"name": d.metadata["Name"], "version": d.version, "bytes": size})
blocks = 0
for top, _, files in os.walk(site):
    for f in files:
        blocks += os.lstat(os.path.join(top, f)).st_blocks
json.dump({"dists": rows, "du_bytes": blocks * 512}, sys.stdout)
"""
_KERNELS = """
from avfuse.assets import default_model_path
from avfuse.kernels import image_kernel, log_mel_kernel
from avfuse.manifest import load_manifest
m = load_manifest(default_model_path())
print(log_mel_kernel(m.audio).name, image_kernel(m.video).name)
"""


def _requires(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        text = z.read(meta).decode()
    return [
        ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("Requires-Dist:")
    ]


def runtime_requirements(wheel: Path) -> list[str]:
    """The wheel's requirements outside every extra (what `pip install avfuse` pulls)."""
    return [r for r in _requires(wheel) if "extra ==" not in r]


def extra_requirements(wheel: Path, extra: str) -> list[str]:
    """The requirements one extra adds, without their markers."""
    tag = re.compile(rf"""extra\s*==\s*["']{re.escape(extra)}["']""")
    return [r.split(";", 1)[0].strip() for r in _requires(wheel) if tag.search(r)]


def _py(python: Path, code: str, timeout: float = 120) -> str:
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                          timeout=timeout, env=CHILD_ENV, cwd=CHILD_CWD)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"{python} -c failed:\n{proc.stderr[-2000:]}")
    return proc.stdout


def site_packages(python: Path) -> Path:
    """The venv's site-packages folder."""
    return Path(_py(python, "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())


def distribution_sizes(python: Path) -> dict[str, Any]:
    """Installed bytes of every distribution (biggest first) and du of site-packages."""
    raw = json.loads(_py(python, _SIZES))
    dists = sorted(raw["dists"], key=lambda d: -d["bytes"])
    for d in dists:
        d["mb"] = d["bytes"] / 1e6
    total = sum(d["bytes"] for d in dists)
    return {"dists": dists, "total_mb": total / 1e6, "du_mb": raw["du_bytes"] / 1e6}


def kernel_names(python: Path) -> dict[str, str]:
    """Which kernels "auto" picks there for the bundled model."""
    mel, image = _py(python, _KERNELS).split()
    return {"log_mel": mel, "image": image}


def absent(python: Path, modules: list[str]) -> dict[str, bool]:
    """Whether each module is missing from the venv."""
    code = (
        "import importlib.util, json, sys; "
        f"print(json.dumps({{m: importlib.util.find_spec(m) is None for m in {modules!r}}}))"
    )
    return json.loads(_py(python, code))


def demo(python: Path) -> dict[str, Any]:
    """`avfuse demo --fast` through the venv's console script, and its score."""
    t0 = time.monotonic()
    proc = subprocess.run([str(python.parent / "avfuse"), "demo", "--fast"], capture_output=True,
                          text=True, timeout=600, env=CHILD_ENV, cwd=CHILD_CWD)  # fmt: skip
    text = proc.stdout + proc.stderr  # the score and the table go to stderr
    line = next((ln for ln in text.splitlines() if ln.startswith("score:")), "")
    m = re.search(r"(\d+)/(\d+)", line)
    return {
        "returncode": proc.returncode,
        "wall_s": time.monotonic() - t0,
        "score": f"{m.group(1)}/{m.group(2)}" if m else "none",
        "score_line": line or proc.stderr[-300:],
    }


def _first_frame_s(python: Path, extra: list[str] = ()) -> tuple[float, str]:
    """Seconds from process start to the first `value` record (one processed frame)."""
    cmd = [str(python), *extra, "-m", "avfuse.cli", *LIVE, "--duration", "20", "--values",
           "--sink", "jsonl:-", "--quiet"]  # fmt: skip
    with tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
                                env=CHILD_ENV, cwd=CHILD_CWD)  # fmt: skip
        try:
            line = proc.stdout.readline()
            took = time.monotonic() - t0
        finally:
            proc.kill()
            proc.wait()
            proc.stdout.close()
        err.seek(0)
        tail = err.read().decode("utf-8", "replace")
    if b'"type": "value"' not in line:
        raise RuntimeError(f"no value record from {cmd}:\n{tail[-2000:]}")
    return took, tail


def _import_times(stderr: str, top: int = 8) -> list[dict[str, Any]]:
    """Import seconds of each package root from `-X importtime` output, wherever it is
    first imported (numpy inside onnxruntime counts as numpy; avfuse includes them all)."""
    cum: dict[str, float] = {}
    for ln in stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)$", ln)
        if m and "." not in m.group(3):
            cum[m.group(3)] = max(cum.get(m.group(3), 0.0), int(m.group(1)) / 1e6)
    rows = sorted(cum.items(), key=lambda kv: -kv[1])
    return [{"package": k, "s": round(v, 3)} for k, v in rows[:top]]


def cold_start(python: Path, *, repeats: int) -> dict[str, Any]:
    """First processed frame with a warm cache: one run discarded, then `repeats` timed,
    then one with -X importtime to say where the time goes."""
    first, _ = _first_frame_s(python)
    runs = [_first_frame_s(python)[0] for _ in range(repeats)]
    traced, stderr = _first_frame_s(python, ["-X", "importtime"])
    imports = _import_times(stderr)
    return {
        "discarded_first_s": first,
        "runs_s": runs,
        "median_s": statistics.median(runs),
        "importtime_run_s": traced,
        "imports_top": imports,
    }


def _rss_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in kB (0, 0 once it is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0, 0
    vals = dict(re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", text, re.M))
    return int(vals.get("VmRSS", 0)), int(vals.get("VmHWM", 0))


def rss_by_mapping(pid: int, site: str, top: int = 8) -> list[dict[str, Any]]:
    """Resident MB per mapped file, grouped by installed package (anonymous memory apart)."""
    groups: dict[str, int] = {}
    name = "?"
    try:
        lines = Path(f"/proc/{pid}/smaps").read_text().splitlines()
    except OSError:
        return []
    for ln in lines:
        parts = ln.split()
        if parts and re.match(r"^[0-9a-f]+-[0-9a-f]+$", parts[0]):
            path = parts[5] if len(parts) > 5 else ""
            if path.startswith(site):
                name = path[len(site) :].lstrip("/").split("/")[0]
            elif not path or path.startswith("["):
                name = "anonymous (heap, arrays, model arena)"
            elif "python" in Path(path).name or "libpython" in path:
                name = "python"
            else:
                name = "system libraries"
        elif parts and parts[0] == "Rss:":
            groups[name] = groups.get(name, 0) + int(parts[1])
    rows = sorted(groups.items(), key=lambda kv: -kv[1])
    return [{"mapping": k, "mb": round(v * 1024 / 1e6, 1)} for k, v in rows[:top]]


class _RssSampler(threading.Thread):
    """Samples VmRSS of this process's avfuse child every 50 ms; reads smaps once at `mid_s`."""

    def __init__(self, site: str, mid_s: float) -> None:
        super().__init__(daemon=True)
        self.site, self.mid_s = site, mid_s
        self.samples: list[tuple[float, int]] = []
        self.hwm_kb = 0
        self.mappings: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self.t0 = time.monotonic()

    def _child(self) -> int | None:
        for pid in descendants(os.getpid()):
            try:
                if b"avfuse.cli" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return pid
            except OSError:
                continue
        return None

    def run(self) -> None:
        pid = None
        while not self.stop.wait(0.05):
            pid = pid or self._child()
            if pid is None:
                continue
            rss, hwm = _rss_kb(pid)
            t = time.monotonic() - self.t0
            if rss:
                self.samples.append((t, rss))
                self.hwm_kb = max(self.hwm_kb, hwm)
            if not self.mappings and t >= self.mid_s:
                self.mappings = rss_by_mapping(pid, self.site)


def live_run(python: Path, *, duration: float, settle_s: float = 3.0) -> dict[str, Any]:
    """One 30 fps single-stream run: steady-state RSS and CPU share, and who holds them."""
    site = str(site_packages(python))
    with tempfile.TemporaryDirectory() as tmp:
        marker, metrics = Path(tmp) / "records.jsonl", Path(tmp) / "summary.json"
        cmd = [str(python), "-m", "avfuse.cli", *LIVE, "--duration", f"{duration:g}",
               "--sink", f"jsonl:{marker}", "--quiet", "--metrics", str(metrics)]  # fmt: skip
        sampler = _RssSampler(site, mid_s=settle_s + duration / 2)
        sampler.start()
        try:
            trace = watch(cmd, marker=str(marker), timeout_s=duration + 120, env=CHILD_ENV,
                          cwd=CHILD_CWD)  # fmt: skip
        finally:
            sampler.stop.set()
            sampler.join()
        if trace.returncode != 0:
            raise RuntimeError(f"the 30 fps run failed:\n{trace.stderr_tail}")
        w = window(trace, settle_s=settle_s, tail_s=1.0)
        summary = json.loads(metrics.read_text())
    steady = [kb for t, kb in sampler.samples if w["start_s"] <= t <= w["end_s"]] or [0]
    return {
        "command": " ".join(cmd[1:]).replace(tmp, "$TMP"),
        "cpu_share": w["cpu_s"] / w["wall_s"],
        "window_s": w["wall_s"],
        "threads": [{k: t[k] for k in ("name", "main", "share")} for t in w["threads"]],
        "rss_mb_median": statistics.median(steady) * 1024 / 1e6,
        "rss_mb_peak": sampler.hwm_kb * 1024 / 1e6,
        "rss_mappings": sampler.mappings,
        "frames": summary["frames"],
        "drops": summary["drops"],
        "stages": _stage_shares(summary),
    }


def _stage_shares(summary: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per pipeline stage: p50 and mean ms per call, and mean x calls / wall as a share of
    one core (these stages compute rather than wait, so their wall time is CPU time)."""
    wall = summary["wall_s"] or 1.0
    out = {}
    for name in ("preprocess", "inference", "postprocess", "sink"):
        s = summary["latency_ms"].get(name)
        if s:
            out[name] = {"p50_ms": s["p50"], "mean_ms": s["mean"],
                         "share": s["mean"] * s["count"] / 1e3 / wall}  # fmt: skip
    return out
