"""What a Triton Inference Server adds per request, against ONNX Runtime in the process.

    .venv/bin/python benchmarks/triton_overhead.py --python-env ENV [--requests 2000]
        [--seconds 5] [--bound-ms 50] [--streams 1,2,4,8,16,32]

The bundled model is exported (`avfuse export --triton`) and served by a local
tritonserver (nvidia-pytriton's: python backend, ONNX Runtime inside; ENV is the stub's
environment, numpy < 2 and onnxruntime). The client (this process) is pinned to CPU 0
with `sched_setaffinity`, the server to CPU 1 with `taskset`. Two measurements:

  overhead   batch-1 requests one after another: local `ort` (1 thread) vs the `triton`
             backend over gRPC and HTTP, with and without system shared memory; the
             difference of the percentiles is what the server path costs per request.
             The server's statistics split its side (queue, input, compute, output).
  streams    N live streams at --fps, each frame due at its own tick; a frame's latency
             is (result - tick), so a backlog shows. The most N whose p99 stays under
             --bound-ms, for: local `ort` batching the N frames of a tick (what avfuse
             run does), `triton` with the client batching the same way, and `triton`
             with N independent clients (one request per stream per frame, the server's
             dynamic batcher merging them: the edge-nodes-to-one-server picture).

On a 2-core machine this measures overhead, not scale: the server has one core, the
client one, and a local run has one. Writes benchmarks/results/triton.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from avfuse.assets import default_model_path
from avfuse.backends import create_backend
from avfuse.bench.env import machine, versions
from avfuse.bench.stats import latency_summary
from avfuse.export.triton import export_triton
from avfuse.manifest import load_manifest
from avfuse.tritonserver import TritonServer, free_port

RESULTS = Path(__file__).resolve().parent / "results"


def feeds(batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "audio": rng.standard_normal((batch, 64, 97)).astype(np.float32),
        "image": rng.standard_normal((batch, 1, 48, 64)).astype(np.float32),
        "mask": np.ones((batch, 2), np.float32),
    }


def sequential(be: Any, n: int) -> dict[str, Any]:
    """Batch-1 latency of `n` calls one after another (after 50 untimed)."""
    x = feeds(1)
    for _ in range(50):
        be.infer(x)
    ms = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        be.infer(x)
        ms.append((time.perf_counter_ns() - t0) / 1e6)
    return latency_summary(ms)


def paced_batched(be: Any, streams: int, fps: float, seconds: float) -> dict[str, Any]:
    """One batch of `streams` rows per tick; latency = result - tick (backlog included)."""
    x = feeds(streams)
    be.infer(x)
    period = 1.0 / fps
    ticks = int(seconds * fps)
    t0 = time.perf_counter() + 0.05
    ms = []
    for k in range(ticks):
        due = t0 + k * period
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        be.infer(x)
        ms.extend([(time.perf_counter() - due) * 1e3] * streams)
    return latency_summary(ms)


def paced_clients(be: Any, streams: int, fps: float, seconds: float) -> dict[str, Any]:
    """`streams` threads, each one request per frame at its own phase (batch 1)."""
    x = feeds(1)
    period = 1.0 / fps
    ticks = int(seconds * fps)
    t0 = time.perf_counter() + 0.2
    lat: list[list[float]] = [[] for _ in range(streams)]
    errors: list[str] = []

    def client(i: int) -> None:
        phase = period * i / streams
        try:
            for k in range(ticks):
                due = t0 + phase + k * period
                pause = due - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                be.infer(x)
                lat[i].append((time.perf_counter() - due) * 1e3)
        except Exception as e:  # reported in the result, the search stops there
            errors.append(str(e).splitlines()[0])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out = latency_summary([v for row in lat for v in row])
    out["errors"] = errors[:3]
    return out


def search(run: Any, streams: list[int], bound_ms: float) -> dict[str, Any]:
    """The largest N whose p99 <= bound (stops at the first N that misses)."""
    tried, best = [], 0
    for n in streams:
        s = run(n)
        ok = s["p99"] is not None and s["p99"] <= bound_ms and not s.get("errors")
        tried.append({"streams": n, "p50_ms": s["p50"], "p99_ms": s["p99"], "ok": ok,
                      **({"errors": s["errors"]} if s.get("errors") else {})})  # fmt: skip
        verdict = "ok" if ok else "MISSED"
        print(f"    {n:3d} streams: p50 {s['p50']:.2f} ms  p99 {s['p99']:.2f} ms  {verdict}")
        if not ok:
            break
        best = n
    return {"max_streams": best, "tried": tried}


PHASES = ("queue", "compute_input", "compute_infer", "compute_output", "success")


def server_totals(be: Any) -> dict[str, Any]:
    """The server's counters for the model (totals since it loaded)."""
    st = be.server_statistics()["model_stats"][0]
    inf = st.get("inference_stats", {})
    out = {"inference_count": int(st.get("inference_count", 0)),
           "execution_count": int(st.get("execution_count", 0))}  # fmt: skip
    for phase in PHASES:
        d = inf.get(phase, {})
        out[phase] = (int(d.get("count", 0)), int(d.get("ns", 0)))
    return out


def server_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What the server did between two `server_totals`: counts and mean us per phase."""
    out = {k: after[k] - before[k] for k in ("inference_count", "execution_count")}
    for phase in PHASES:
        n = after[phase][0] - before[phase][0]
        ns = after[phase][1] - before[phase][1]
        out[f"{phase}_mean_us"] = round(ns / n / 1e3, 1) if n else None
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--python-env", default=os.environ.get("AVFUSE_TRITON_PYTHON_ENV"),
                   help="the python stub's environment (numpy<2, onnxruntime)")  # fmt: skip
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--seconds", type=float, default=5.0, help="length of each streams step")
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--bound-ms", type=float, default=50.0)
    p.add_argument("--streams", default="1,2,4,8,16,32,64")
    p.add_argument("--no-pin", action="store_true", help="let the OS place client and server")
    p.add_argument("--out", default=str(RESULTS / "triton.json"))
    args = p.parse_args(argv)
    streams = [int(s) for s in args.streams.split(",")]
    cpus = sorted(os.sched_getaffinity(0))
    pinned = len(cpus) >= 2 and not args.no_pin
    client_cpu, server_cpu = (cpus[0], cpus[1]) if pinned else (None, None)
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    result: dict[str, Any] = {
        "benchmark": "triton_overhead",
        "started_utc": started,
        "machine": machine(),
        "versions": versions(),
        "settings": {**vars(args), "client_cpu": client_cpu, "server_cpu": server_cpu},
        "note": (
            f"{len(cpus)} CPUs, client on CPU {client_cpu}, server on CPU {server_cpu} "
            "(None: not pinned); this measures the overhead the server path adds, not "
            "scale-out (one server core, one client core, one core for a local run); the "
            f"load average at the start was {os.getloadavg()[0]:.1f} (a shared machine: "
            "tails are mostly other processes' work)"
        ),
    }
    with tempfile.TemporaryDirectory() as tmp:
        export_triton(default_model_path(), Path(tmp) / "repo", variants=("python",))
        model = Path(tmp) / "repo" / "avfuse-late_python"
        m = load_manifest(model)
        server = TritonServer(
            repository=Path(tmp) / "repo",
            models=("avfuse-late_python",),
            python_env=Path(args.python_env) if args.python_env else None,
            grpc_port=free_port(),
            http_port=free_port(),
            metrics_port=free_port(),
            cpus=str(server_cpu) if pinned else None,
        )
        if pinned:
            os.sched_setaffinity(0, {client_cpu})
        with server.start():
            over: dict[str, Any] = {}
            print("overhead (batch 1, sequential):")
            with create_backend("ort", threads=1).load(m) as be:
                over["ort"] = sequential(be, args.requests)
            modes = {
                "triton-grpc": server.grpc_url,
                "triton-grpc-shm": server.grpc_url + "?shm=system",
                "triton-http": server.http_url,
                "triton-http-shm": server.http_url + "?shm=system",
            }
            server_side = {}
            for name, url in modes.items():
                with create_backend(f"triton:{url}").load(m) as be:
                    before = server_totals(be)
                    over[name] = sequential(be, args.requests)
                    server_side[name] = server_delta(before, server_totals(be))
            for name, s in over.items():
                extra = ""
                if name != "ort":
                    s["overhead_vs_ort_ms"] = {
                        k: round(s[k] - over["ort"][k], 4) for k in ("p50", "p90", "p99")
                    }
                    extra = f"  (+{s['overhead_vs_ort_ms']['p50']:.3f} ms p50 vs ort)"
                print(f"  {name:<16} p50 {s['p50']:.3f} ms  p99 {s['p99']:.3f} ms{extra}")
            for name, d in server_side.items():
                phases = [f"{k[:-8]} {v} us" for k, v in d.items() if k.endswith("_mean_us")]
                print(f"  server side of {name}: " + ", ".join(phases))
            result["overhead"] = over
            result["server_statistics"] = server_side
            print(f"streams at {args.fps:g} fps, p99 <= {args.bound_ms:g} ms:")
            scale: dict[str, Any] = {}
            with create_backend("ort", threads=1).load(m) as be:
                print("  ort, batched per tick")
                scale["ort-batched"] = search(
                    lambda n: paced_batched(be, n, args.fps, args.seconds), streams, args.bound_ms
                )
            with create_backend(f"triton:{server.grpc_url}").load(m) as be:
                print("  triton gRPC, client batches per tick")
                scale["triton-batched"] = search(
                    lambda n: paced_batched(be, n, args.fps, args.seconds), streams, args.bound_ms
                )
            with create_backend(f"triton:{server.grpc_url}?in_flight=256").load(m) as be:
                print("  triton gRPC, one client per stream (server batches)")
                before = server_totals(be)
                scale["triton-clients"] = search(
                    lambda n: paced_clients(be, n, args.fps, args.seconds), streams, args.bound_ms
                )
                result["server_statistics"]["triton-clients"] = server_delta(
                    before, server_totals(be)
                )
            result["streams"] = scale
    result["finished_utc"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
