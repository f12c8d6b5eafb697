"""What this project's GPU paths do on a real GPU: the CUDA pre-processing kernels, and the
torch CUDA backend reading their device output, against the host paths. Run by
scripts/gpu_check.sh (which builds the kernels first) on a machine with an NVIDIA GPU:

    AVFUSE_KERNELS_LIB_DIR=build-gpu/lib python benchmarks/gpu_check.py [--repeats 200]

Measured, batch 1, 8 and 32 of the bundled model's inputs (1 s of 16 kHz audio, 320x240
BGR frames), CUDA events around GPU work, wall time around host work:
    kernels  log-mel and image on device buffers (`run_device`), through the host
             interface (upload, kernel, download), and the numpy CPU kernels; each
             checked against the float64 reference (max abs error)
    chain    raw audio + frames in page-locked memory -> one upload -> CUDA kernels into
             device feeds -> torch backend (no host round trip), against CPU kernels ->
             host feeds -> torch backend (which uploads them): per-batch latency, and
             whether both give the same logits
Paths this machine cannot run (no onnxruntime-gpu, no TensorRT) are listed with the
reason. Writes benchmarks/results/gpu_<device>.json with the device named.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
BATCHES = (1, 8, 32)


def _stats(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {
        "median_ms": round(float(np.median(a)), 4),
        "p90_ms": round(float(np.percentile(a, 90)), 4),
        "n": int(len(a)),
    }


def _gpu_ms(torch: Any, fn, repeats: int) -> list[float]:
    """CUDA-event times of `fn()` on the current stream (after 5 untimed calls)."""
    for _ in range(5):
        fn()
    out = []
    for _ in range(repeats):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        out.append(a.elapsed_time(b))
    return out


def _wall_ms(fn, repeats: int) -> list[float]:
    for _ in range(5):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - t0) / 1e6)
    return out


def _inputs(m: Any, batch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = m.audio.window_samples
    audio = (0.1 * rng.standard_normal((batch, n))).astype(np.float32)
    frames = rng.integers(0, 256, (batch, 240, 320, 3), dtype=np.uint8)
    return audio, frames


def _kernels_at(torch: Any, m: Any, k: dict[str, Any], batch: int, repeats: int) -> dict:
    from avfuse.kernels import reference as ref

    mel, img, cpu_mel, cpu_img = k["mel"], k["img"], k["cpu_mel"], k["cpu_img"]
    stream = torch.cuda.current_stream().cuda_stream
    audio, frames = _inputs(m, batch, batch)
    n = audio.shape[1]
    d_audio, d_frames = torch.from_numpy(audio).cuda(), torch.from_numpy(frames).cuda()
    d_mel = torch.empty((batch, *mel.out_shape(n)), device="cuda")
    d_img = torch.empty((batch, *img.out_shape), device="cuda")
    h_mel = np.empty((batch, *mel.out_shape(n)), np.float32)
    h_img = np.empty((batch, *img.out_shape), np.float32)
    c_mel, c_img = np.empty_like(h_mel), np.empty_like(h_img)
    row: dict[str, Any] = {"batch": batch}
    ways = {
        "log_mel_device": (True, lambda: mel.run_device(d_audio, batch, n, d_mel, stream)),
        "image_device": (
            True,
            lambda: img.run_device(d_frames, batch, "bgr24", 240, 320, d_img, stream),
        ),
        "log_mel_host_interface": (False, lambda: mel(audio, h_mel)),
        "image_host_interface": (False, lambda: img.batch(frames, "bgr24", h_img)),
        "log_mel_numpy_cpu": (False, lambda: cpu_mel(audio, c_mel)),
        "image_numpy_cpu": (False, lambda: cpu_img.batch(frames, "bgr24", c_img)),
    }
    for name, (on_gpu, fn) in ways.items():
        ms = _gpu_ms(torch, fn, repeats) if on_gpu else _wall_ms(fn, repeats)
        row[name] = _stats(ms)
    torch.cuda.synchronize()
    want_mel = ref.log_mel(audio, m.audio)
    want_img = np.stack([ref.image_to_tensor(f, m.video, "bgr24") for f in frames])
    row["max_abs_error"] = {
        "log_mel_device": float(np.abs(d_mel.cpu().numpy() - want_mel).max()),
        "log_mel_host_interface": float(np.abs(h_mel - want_mel).max()),
        "image_device": float(np.abs(d_img.cpu().numpy() - want_img).max()),
        "image_host_interface": float(np.abs(h_img - want_img).max()),
    }
    return row


def _kernels_of(m: Any) -> dict[str, Any]:
    from avfuse.kernels import cuda_gpu, image_kernel, log_mel_kernel

    return {
        "mel": cuda_gpu.LogMel(m.audio),
        "img": cuda_gpu.Image(m.video),
        "cpu_mel": log_mel_kernel(m.audio, "numpy"),
        "cpu_img": image_kernel(m.video, "numpy"),
    }


def kernels(torch: Any, m: Any, repeats: int) -> list[dict[str, Any]]:
    """The CUDA kernels three ways per batch size (see the module docstring)."""
    k = _kernels_of(m)
    return [_kernels_at(torch, m, k, batch, repeats) for batch in BATCHES]


def _chain_at(torch: Any, m: Any, k: dict[str, Any], be: Any, batch: int, repeats: int) -> dict:
    mel, img, cpu_mel, cpu_img = k["mel"], k["img"], k["cpu_mel"], k["cpu_img"]
    stream = torch.cuda.current_stream().cuda_stream
    audio, frames = _inputs(m, batch, 100 + batch)
    n = audio.shape[1]
    p_audio = torch.from_numpy(audio).pin_memory()
    p_frames = torch.from_numpy(frames).pin_memory()
    d_audio = torch.empty(p_audio.shape, device="cuda")
    d_frames = torch.empty(p_frames.shape, dtype=torch.uint8, device="cuda")
    feeds = {
        "audio": torch.empty((batch, *mel.out_shape(n)), device="cuda"),
        "image": torch.empty((batch, *img.out_shape), device="cuda"),
        "mask": torch.ones((batch, 2), device="cuda"),
    }
    host = {
        "audio": np.empty((batch, *mel.out_shape(n)), np.float32),
        "image": np.empty((batch, *img.out_shape), np.float32),
        "mask": np.ones((batch, 2), np.float32),
    }

    def on_device() -> np.ndarray:
        d_audio.copy_(p_audio, non_blocking=True)
        d_frames.copy_(p_frames, non_blocking=True)
        mel.run_device(d_audio, batch, n, feeds["audio"], stream)
        img.run_device(d_frames, batch, "bgr24", 240, 320, feeds["image"], stream)
        return be.infer(feeds)["logits"]

    def on_host() -> np.ndarray:
        cpu_mel(audio, host["audio"])
        cpu_img.batch(frames, "bgr24", host["image"])
        return be.infer(host)["logits"]

    a, b = on_device(), on_host()
    return {
        "batch": batch,
        "device_chain": _stats(_wall_ms(on_device, repeats)),
        "host_chain": _stats(_wall_ms(on_host, repeats)),
        "logits_max_abs_difference": float(np.abs(a - b).max()),
        "top1_agreement": float(np.mean(np.argmax(a, 1) == np.argmax(b, 1))),
    }


def chain(torch: Any, m: Any, repeats: int) -> list[dict[str, Any]]:
    """Device chain against host chain into the torch CUDA backend, per batch size."""
    from avfuse.api import load_backend

    k = _kernels_of(m)
    with load_backend(backend="torch", device="cuda") as be:
        return [_chain_at(torch, m, k, be, batch, repeats) for batch in BATCHES]


def not_covered() -> dict[str, str]:
    """The GPU paths this machine cannot run, and why."""
    import onnxruntime

    eps = onnxruntime.get_available_providers()
    out = {}
    if "CUDAExecutionProvider" not in eps:
        out["ORT CUDA provider"] = f"onnxruntime {onnxruntime.__version__} has {eps}"
    if "TensorrtExecutionProvider" not in eps:
        out["ORT TensorRT provider"] = "no onnxruntime-gpu"
    if importlib.util.find_spec("tensorrt") is None:
        out["native TensorRT"] = "tensorrt is not installed"
        out["CUDA graphs (TensorRT backend)"] = "tensorrt is not installed"
    return out


def main(argv: list[str] | None = None) -> int:
    """Measure, write the JSON; exit 1 when a device result disagrees with the reference."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--out", default=None, help="default: benchmarks/results/gpu_<device>.json")
    args = p.parse_args(argv)
    import torch

    from avfuse.assets import default_model_path
    from avfuse.bench.env import machine, versions
    from avfuse.manifest import load_manifest

    if not torch.cuda.is_available():
        print("gpu_check: torch sees no CUDA GPU", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name(0)
    m = load_manifest(default_model_path())
    record: dict[str, Any] = {
        "format": "avfuse-gpu-check",
        "started_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "device": {
            "name": name,
            "capability": list(torch.cuda.get_device_capability(0)),
            "torch_cuda": torch.version.cuda,
        },
        "machine": machine(),
        "versions": versions(),
        "repeats": args.repeats,
        "kernels": kernels(torch, m, args.repeats),
        "chain_into_torch_backend": chain(torch, m, args.repeats),
        "not_covered_here": not_covered(),
    }
    errs = [e for r in record["kernels"] for e in r["max_abs_error"].values()]
    agree = [r["top1_agreement"] for r in record["chain_into_torch_backend"]]
    record["ok"] = bool(max(errs) < 1e-3 and min(agree) >= 0.9)
    slug = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()
    out = Path(args.out or RESULTS / f"gpu_{slug}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    for r in record["chain_into_torch_backend"]:
        print(
            f"{name} batch {r['batch']}: device chain {r['device_chain']['median_ms']} ms, "
            f"host chain {r['host_chain']['median_ms']} ms, top-1 agreement "
            f"{r['top1_agreement']}"
        )
    missing = ", ".join(record["not_covered_here"]) or "nothing"
    print(f"kernels max abs error {max(errs):.2e}; not covered here: {missing}")
    print(f"wrote {out}")
    return 0 if record["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
