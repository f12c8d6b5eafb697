"""ONNX Runtime IO binding against plain `InferenceSession.run`, on the CPU provider.

    .venv/bin/python benchmarks/ort_binding.py [--model DIR] [--calls 2000] [--repeats 7]

The bundled model, one thread, the engine's way of calling (the same preallocated feed
arrays every call, new content each time), batch 1 and 8. Three ways, alternating in
blocks of 100 calls within each repeat so that machine noise hits them alike:

    run          extra={"io_binding": False}: InferenceSession.run, new output arrays
    bind-borrow  IO binding, outputs read from the bound buffers (what the engine does)
    bind-copy    IO binding, outputs copied out (what callers that keep results get)

Per way: per-call latency (median, p90, p99 over every call of every repeat; the
binding/run ratio of the medians per repeat), and per call: new output array objects
(0 when outputs are bound buffers), Python heap peak above the start of the call and
heap left behind per 1000 calls (tracemalloc, in a separate untimed pass; ONNX
Runtime allocates its output tensors outside the Python heap, which the array count
covers). Writes benchmarks/results/ort_binding.json; the verdict says whether binding
is no slower than run at either batch size (the ort backend's default depends on it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

from avfuse.assets import default_model_path
from avfuse.backends import create_backend
from avfuse.bench.env import machine, versions
from avfuse.manifest import load_manifest

RESULTS = Path(__file__).resolve().parent / "results"
WAYS = {"run": (False, False), "bind-borrow": (True, True), "bind-copy": (True, False)}
#: a binding/run ratio of medians up to this counts as "no slower" (timing noise here)
NOISE = 1.03
#: calls per block; the ways alternate block by block
CHUNK = 100


def _feeds(m, batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    out = {}
    for s in m.inputs:
        shape = (batch, *(d if isinstance(d, int) else 1 for d in s.shape[1:]))
        out[s.name] = (
            np.ones(shape, np.float32)
            if s.modality == "mask"
            else rng.standard_normal(shape).astype(np.float32)
        )
    return out


def _time(be, feeds: dict[str, np.ndarray], borrow: bool, calls: int) -> np.ndarray:
    src = feeds[next(iter(feeds))]
    fresh = src.copy()
    t = np.empty(calls, np.int64)
    for i in range(calls):
        src[0, 0] = fresh[0, 0] + i  # new content, same array, as the engine refills it
        t0 = time.perf_counter_ns()
        be.infer(feeds, borrow=borrow)
        t[i] = time.perf_counter_ns() - t0
    return t


def _allocations(be, feeds: dict[str, np.ndarray], borrow: bool, calls: int) -> dict:
    first = be.infer(feeds, borrow=borrow)
    new_arrays = 0
    gc.collect()
    tracemalloc.start(25)
    peaks = []
    before = tracemalloc.take_snapshot()
    for _ in range(calls):
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        out = be.infer(feeds, borrow=borrow)
        peaks.append(tracemalloc.get_traced_memory()[1] - base)
        new_arrays += sum(out[k] is not first[k] for k in out)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    # onnxruntime's pybind layer keeps a few small objects per call for a while, in every
    # way alike, and this loop keeps its own list of peaks; what is left besides is avfuse's
    keep = [tracemalloc.Filter(False, "*onnxruntime*", all_frames=True),
            tracemalloc.Filter(False, tracemalloc.__file__),
            tracemalloc.Filter(False, __file__)]  # fmt: skip
    diff = after.filter_traces(keep).compare_to(before.filter_traces(keep), "filename")
    left = sum(d.size_diff for d in diff)
    return {
        "new_output_arrays_per_call": new_arrays / calls,
        "python_heap_peak_per_call_bytes": int(np.median(peaks)),
        "python_heap_left_per_1000_calls_bytes": round(left / calls * 1000),
        "python_heap_left_note": "outside onnxruntime's own frames",
        "output_bytes_per_call": int(sum(v.nbytes for v in first.values())),
    }


def _summary(t: np.ndarray) -> dict:
    us = t / 1e3
    return {
        "calls": int(len(us)),
        "median_us": round(float(np.median(us)), 2),
        "p90_us": round(float(np.percentile(us, 90)), 2),
        "p99_us": round(float(np.percentile(us, 99)), 2),
    }


def measure(m, batch: int, calls: int, repeats: int, threads: int) -> dict:
    """Every way at one batch size (see the module docstring)."""
    rng = np.random.default_rng(batch)
    backends = {w: create_backend("ort", threads=threads, extra={"io_binding": io}).load(m)
                for w, (io, _) in WAYS.items()}  # fmt: skip
    feeds = {w: _feeds(m, batch, rng) for w in WAYS}
    times: dict[str, list[np.ndarray]] = {w: [] for w in WAYS}
    try:
        for w, be in backends.items():
            _time(be, feeds[w], WAYS[w][1], 200)  # warm-up
        for r in range(repeats):  # blocks of CHUNK calls, the ways alternating (ABC CBA ...)
            blocks: dict[str, list[np.ndarray]] = {w: [] for w in WAYS}
            for c in range(max(1, calls // CHUNK)):
                order = list(WAYS) if (r + c) % 2 == 0 else list(reversed(WAYS))
                for w in order:
                    blocks[w].append(_time(backends[w], feeds[w], WAYS[w][1], CHUNK))
            for w in WAYS:
                times[w].append(np.concatenate(blocks[w]))
        allocs = {w: _allocations(backends[w], feeds[w], WAYS[w][1], 500) for w in WAYS}
    finally:
        for be in backends.values():
            be.close()
    per_repeat = {w: [float(np.median(t)) for t in times[w]] for w in ("bind-borrow", "bind-copy")}
    ratios = {
        w: [b / np.median(a) for b, a in zip(per_repeat[w], times["run"], strict=True)]
        for w in per_repeat
    }
    return {
        "batch": batch,
        "latency": {w: _summary(np.concatenate(times[w])) for w in WAYS},
        "ratio_to_run_median": {
            w: {"per_repeat": [round(x, 3) for x in v], "median": round(float(np.median(v)), 3)}
            for w, v in ratios.items()
        },
        "allocations": allocs,
    }


def main(argv: list[str] | None = None) -> int:
    """Measure, write the JSON, print the verdict (exit 0 either way: it is a measurement)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="model folder (default: the bundled model)")
    p.add_argument("--calls", type=int, default=2000, help="timed calls per way and repeat")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batches", default="1,8")
    p.add_argument("--out", default=str(RESULTS / "ort_binding.json"))
    args = p.parse_args(argv)
    m = load_manifest(args.model or default_model_path())
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    rows = [
        measure(m, int(b), args.calls, args.repeats, args.threads) for b in args.batches.split(",")
    ]
    slower = [r["batch"] for r in rows if r["ratio_to_run_median"]["bind-borrow"]["median"] > NOISE]
    record = {
        "format": "avfuse-ort-binding",
        "started_utc": started,
        "machine": machine(),
        "versions": versions(),
        "model": {"name": m.name, "sha256": m.sha256},
        "settings": {
            "calls": args.calls,
            "repeats": args.repeats,
            "threads": args.threads,
            "provider": "cpu",
            "noise_ratio": NOISE,
        },  # fmt: skip
        "results": rows,
        "verdict": {
            "binding_no_slower": not slower,
            "slower_at_batches": slower,
            "note": "binding is the ort default only while binding_no_slower holds",
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    for r in rows:
        lat, ratio = r["latency"], r["ratio_to_run_median"]["bind-borrow"]["median"]
        print(
            f"batch {r['batch']}: run {lat['run']['median_us']} us, bind-borrow "
            f"{lat['bind-borrow']['median_us']} us (x{ratio}), "
            f"bind-copy {lat['bind-copy']['median_us']} us; new output arrays per call: run "
            f"{r['allocations']['run']['new_output_arrays_per_call']}, bind-borrow "
            f"{r['allocations']['bind-borrow']['new_output_arrays_per_call']}"
        )
    print(("binding is no slower than run" if not slower else f"binding is slower at {slower}")
          + f"; wrote {args.out}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
