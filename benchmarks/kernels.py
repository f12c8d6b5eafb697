"""Pre-processing kernels vs their peers, side by side in one run.

    .venv/bin/python benchmarks/kernels.py [--rounds 30] [--quick]

Log-mel of one 1 s window (16 kHz, n_fft 512, hop 160, 64 mels): avfuse numba, the
vectorised numpy kernel (what `pip install avfuse` runs without the `fast` extra), the
numpy reference (and CUDA where a GPU exists) vs librosa.feature.melspectrogram +
power_to_db and torch.stft + mel matmul + log (torchaudio is used where installed).
Streaming: StreamingLogMel per new 33 ms of audio vs a full 1 s recompute.
Batches of 16 windows per stream. Images: fused numba pre-processing and the numpy
kernel vs cv2.cvtColor + cv2.resize(INTER_AREA) + numpy normalise + CHW.

All libraries run on one thread by default (--threads): numba's single-window kernel is
serial, and on a shared machine multi-threaded runtimes (OpenMP/BLAS pools) measure the
neighbours more than themselves. Every implementation is timed in interleaved rounds
(each round runs every candidate once, `inner` calls each), so a noisy shared machine
slows all of them alike; medians and ratios are what to read.
Results: benchmarks/results/kernels.json and kernels.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path


def _threads_from_argv() -> str:
    """--threads must act before numpy/torch/numba start their thread pools."""
    for i, a in enumerate(sys.argv):
        if a == "--threads" and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return "1"


for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = _threads_from_argv()

import numpy as np  # noqa: E402

from avfuse.errors import BackendUnavailable  # noqa: E402
from avfuse.kernels import AudioParams, VideoParams, image_kernel, log_mel_kernel  # noqa: E402
from avfuse.kernels import reference as ref  # noqa: E402
from avfuse.kernels.streaming import StreamingLogMel  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def _audio(seconds: float, sr: int) -> np.ndarray:
    n = int(seconds * sr)
    t = np.arange(n) / sr
    x = 0.4 * np.sin(2 * np.pi * (150 + 2000 * t / seconds) * t)
    x += 0.05 * np.random.default_rng(0).standard_normal(n)
    return x.astype(np.float32)


def _time(cands: dict[str, Callable[[], object]], rounds: int, inner: int) -> dict[str, dict]:
    """Median wall and thread-CPU microseconds per call, rounds interleaved."""
    for fn in cands.values():
        for _ in range(3):
            fn()
    wall: dict[str, list[float]] = {k: [] for k in cands}
    cpu: dict[str, list[float]] = {k: [] for k in cands}
    for _ in range(rounds):
        for name, fn in cands.items():
            c0, w0 = time.thread_time_ns(), time.perf_counter_ns()
            for _ in range(inner):
                fn()
            wall[name].append((time.perf_counter_ns() - w0) / inner / 1e3)
            cpu[name].append((time.thread_time_ns() - c0) / inner / 1e3)
    return {
        k: {"wall_us": float(np.median(wall[k])), "cpu_us": float(np.median(cpu[k])),
            "wall_p10_us": float(np.percentile(wall[k], 10))}
        for k in cands
    }  # fmt: skip


def _optional_kernel(factory: Callable[[], object]) -> object | None:
    try:
        return factory()
    except BackendUnavailable:
        return None


def log_mel_peers(p: AudioParams) -> dict[str, Callable[[np.ndarray], object]]:
    """librosa and torch log-mel with the reference's exact definition (no centring, HTK)."""
    import librosa
    import torch

    fb = ref.mel_filterbank(p.sample_rate, p.n_fft, p.n_mels, p.fmin, p.fmax)
    fb_t = torch.from_numpy(fb.astype(np.float32))
    win_t = torch.from_numpy(ref.hann_window(p.win_length, p.n_fft).astype(np.float32))

    def lib(x: np.ndarray) -> np.ndarray:
        s = librosa.feature.melspectrogram(
            y=x, sr=p.sample_rate, n_fft=p.n_fft, hop_length=p.hop_length,
            win_length=p.win_length, center=False, n_mels=p.n_mels, fmin=p.fmin,
            fmax=p.fmax, htk=True, norm=None, power=2.0,
        )  # fmt: skip
        return librosa.power_to_db(s, ref=1.0, amin=p.log_floor, top_db=None)

    def tor(x: torch.Tensor) -> torch.Tensor:
        s = torch.stft(x, p.n_fft, p.hop_length, p.n_fft, window=win_t, center=False,
                       return_complex=True)  # fmt: skip
        mel = torch.matmul(fb_t, s.real.square() + s.imag.square())
        return 10.0 * torch.log10(torch.clamp(mel, min=p.log_floor))

    return {"librosa": lib, "torch": tor}


def bench_audio(p: AudioParams, rounds: int, inner: int) -> dict:
    import torch

    x = _audio(p.window_s, p.sample_rate)
    peers = log_mel_peers(p)
    xt = torch.from_numpy(x)
    out = np.empty((p.n_mels, p.frames), np.float32)
    numba_k = log_mel_kernel(p, "numba")
    numba_k.warmup()
    numpy_k = log_mel_kernel(p, "numpy")
    ref_k = log_mel_kernel(p, "reference")
    want = ref.log_mel(x, p)
    errors = {
        "numba": float(np.abs(numba_k(x) - want).max()),
        "numpy": float(np.abs(numpy_k(x) - want).max()),
        "librosa": float(np.abs(peers["librosa"](x) - want).max()),
        "torch": float(np.abs(peers["torch"](xt).numpy() - want).max()),
    }
    cands: dict[str, Callable[[], object]] = {
        "numba": lambda: numba_k(x, out),
        "numpy": lambda: numpy_k(x, out),
        "reference": lambda: ref_k(x, out),
        "librosa": lambda: peers["librosa"](x),
    }
    threads = torch.get_num_threads()
    cands["torch"] = lambda: peers["torch"](xt)
    cuda_k = _optional_kernel(lambda: log_mel_kernel(p, "cuda"))
    if cuda_k is not None:
        cands["cuda"] = lambda: cuda_k(x, out)
    res = _time(cands, rounds, inner)

    # streaming: one window per video frame at 30 fps (end index snapped to the hop grid)
    long = _audio(60.0, p.sample_rate)
    w, hop = p.window_samples, p.hop_length
    ends = [w + (int(i * p.sample_rate / 30) // hop) * hop for i in range(1, 1700)]
    steps = 8  # one timed call = 8 consecutive windows (~the time of one full window)

    def incremental(kernel: object) -> Callable[[], None]:
        stream = StreamingLogMel(kernel)
        pos = [0]

        def run() -> None:
            for _ in range(steps):
                i = pos[0] % len(ends)
                if i == 0:
                    stream.invalidate()
                e = ends[i]
                stream.window(long[e - w : e], e, out)
                pos[0] += 1

        return run

    # short timed runs for all (5 calls), so preemption on a shared machine hits all alike
    sres = _time(
        {
            "numba_full_window": lambda: numba_k(x, out),
            "numba_streaming_33ms": incremental(numba_k),
            "numpy_full_window": lambda: numpy_k(x, out),
            "numpy_streaming_33ms": incremental(numpy_k),
        },
        rounds * 4,
        5,
    )
    for name in ("numba_streaming_33ms", "numpy_streaming_33ms"):
        for key in ("wall_us", "cpu_us", "wall_p10_us"):
            sres[name][key] /= steps
    res.update(sres)

    # batches: 16 streams' windows at once
    xb = np.stack([np.roll(x, 97 * i) for i in range(16)])
    xbt = torch.from_numpy(xb)
    outb = np.empty((16, p.n_mels, p.frames), np.float32)
    bc = {
        "numba_batch16": lambda: numba_k(xb, outb),
        "numpy_batch16": lambda: numpy_k(xb, outb),
        "torch_batch16": lambda: peers["torch"](xbt),
        "librosa_batch16": lambda: [peers["librosa"](r) for r in xb],
    }
    if cuda_k is not None:
        bc["cuda_batch16"] = lambda: cuda_k(xb, outb)
    bres = _time(bc, max(5, rounds // 3), max(1, inner // 8))
    for v in bres.values():
        v["per_stream_wall_us"] = v["wall_us"] / 16
    res.update(bres)
    return {"timings": res, "max_abs_error_db_vs_reference": errors, "torch_threads": threads}


def bench_image(v: VideoParams, rounds: int, inner: int) -> dict:
    import cv2

    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    out = np.empty((v.channels, v.height, v.width), np.float32)
    numba_k = image_kernel(v, "numba")
    numba_k.warmup()
    numpy_k = image_kernel(v, "numpy")
    ref_k = image_kernel(v, "reference")
    mean = np.asarray(v.mean, np.float32)[:, None, None]
    std = np.asarray(v.std, np.float32)[:, None, None]

    def opencv(fr: np.ndarray) -> np.ndarray:
        g = cv2.cvtColor(fr, cv2.COLOR_BGR2GRAY)
        r = cv2.resize(g, (v.width, v.height), interpolation=cv2.INTER_AREA)
        return (r[None].astype(np.float32) * np.float32(1 / 255) - mean) / std

    errors = {
        "numba": float(np.abs(numba_k(frame, "bgr24") - ref.image_to_tensor(frame, v)).max()),
        "numpy": float(np.abs(numpy_k(frame, "bgr24") - ref.image_to_tensor(frame, v)).max()),
        "opencv": float(np.abs(opencv(frame) - ref.image_to_tensor(frame, v)).max()),
    }
    cands = {
        "numba": lambda: numba_k(frame, "bgr24", out),
        "numpy": lambda: numpy_k(frame, "bgr24", out),
        "reference": lambda: ref_k(frame, "bgr24", out),
        "opencv": lambda: opencv(frame),
    }
    frames = np.stack([np.roll(frame, i, axis=1) for i in range(16)])
    outb = np.empty((16, *out.shape), np.float32)
    cands["numba_batch16"] = lambda: numba_k.batch(frames, "bgr24", outb)
    cands["numpy_batch16"] = lambda: numpy_k.batch(frames, "bgr24", outb)
    cands["opencv_batch16"] = lambda: [opencv(f) for f in frames]
    cuda_k = _optional_kernel(lambda: image_kernel(v, "cuda"))
    if cuda_k is not None:
        cands["cuda"] = lambda: cuda_k(frame, "bgr24", out)
        cands["cuda_batch16"] = lambda: cuda_k.batch(frames, "bgr24", outb)
    res = _time(cands, rounds, inner)
    for k, t in res.items():
        if k.endswith("batch16"):
            t["per_stream_wall_us"] = t["wall_us"] / 16
    return {"timings": res, "max_abs_error_vs_reference": errors, "input": "bgr24 240x320"}


def _versions() -> dict[str, str]:
    import cv2
    import librosa
    import numba
    import torch

    vers = {"python": platform.python_version(), "numpy": np.__version__,
            "numba": numba.__version__, "torch": torch.__version__,
            "librosa": librosa.__version__, "opencv": cv2.__version__}  # fmt: skip
    try:
        import torchaudio  # noqa: F401  (not installed here; recorded when it is)

        vers["torchaudio"] = torchaudio.__version__
    except ImportError:
        vers["torchaudio"] = "not installed"
    return vers


def _machine() -> dict[str, object]:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "system": platform.platform(),
            "load_average_at_start": os.getloadavg()}  # fmt: skip


def ratios(a: dict, im: dict) -> dict[str, float]:
    """The headline ratios (> 1 means the avfuse kernel is faster)."""
    t = a["timings"]
    i = im["timings"]

    def r(x: str, y: str, d: dict = t, key: str = "wall_us") -> float:
        return round(d[x][key] / d[y][key], 3)

    return {
        "librosa / numba (1 s log-mel, >= 3 wanted)": r("librosa", "numba"),
        "torch / numba (1 s log-mel)": r("torch", "numba"),
        "numba / torch (1 s log-mel, <= 1.5 wanted)": r("numba", "torch"),
        "numba / torch (cpu time)": r("numba", "torch", key="cpu_us"),
        "full 1 s recompute / streaming per 33 ms (numba, >= 10 wanted)": r(
            "numba_full_window", "numba_streaming_33ms"
        ),
        "full / streaming (cpu time)": r("numba_full_window", "numba_streaming_33ms", key="cpu_us"),
        "torch_batch16 / numba_batch16": r("torch_batch16", "numba_batch16"),
        "opencv / numba (image 240x320 -> 1x48x64)": r("opencv", "numba", i),
        "opencv_batch16 / numba_batch16 (images)": r("opencv_batch16", "numba_batch16", i),
        "numpy / numba (1 s log-mel, the lean install's cost)": r("numpy", "numba"),
        "reference / numpy (1 s log-mel)": r("reference", "numpy"),
        "numpy / numba (streaming per 33 ms)": r("numpy_streaming_33ms", "numba_streaming_33ms"),
        "numpy / numba (image 240x320 -> 1x48x64)": r("numpy", "numba", i),
        "reference / numpy (image)": r("reference", "numpy", i),
    }


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    for ax, (title, block) in zip(
        axes,
        (("log-mel, 1 s window", result["audio"]), ("image, 240x320 -> 48x64", result["image"])),
        strict=True,
    ):
        names = list(block["timings"])
        vals = [block["timings"][n]["wall_us"] for n in names]
        colours = [
            "tab:green" if n.startswith(("numba", "cuda"))
            else "tab:blue" if n.startswith("numpy") else "tab:gray"
            for n in names
        ]  # fmt: skip
        ax.barh(names, vals, color=colours)
        ax.set_xscale("log")
        ax.set_xlabel("median wall time per call (us, log scale)")
        ax.set_title(title)
        for y, val in enumerate(vals):
            ax.text(val, y, f" {val:.1f}", va="center", fontsize=8)
    fig.suptitle(f"avfuse kernels vs peers ({result['machine']['cpu']}, one run)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=30, help="interleaved rounds per group")
    ap.add_argument("--inner", type=int, default=20, help="calls per round and candidate")
    ap.add_argument("--quick", action="store_true", help="few rounds (smoke test)")
    ap.add_argument("--threads", default="1", help="threads for every library (default 1)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    rounds, inner = (3, 2) if args.quick else (args.rounds, args.inner)
    audio_p = AudioParams()
    video_p = VideoParams(height=48, width=64, colour="gray")
    result = {
        "machine": _machine(),
        "versions": _versions(),
        "settings": {
            "audio": vars(audio_p) | {"window_samples": audio_p.window_samples},
            "video": vars(video_p),
            "rounds": rounds,
            "inner": inner,
            "threads": args.threads,
            "timer": "median of rounds; each round = `inner` calls",
        },  # fmt: skip
    }
    result["audio"] = bench_audio(audio_p, rounds, inner)
    result["image"] = bench_image(video_p, rounds, inner)
    result["ratios"] = ratios(result["audio"], result["image"])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "kernels.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    plot(result, args.out / "kernels.png")
    for block in ("audio", "image"):
        for name, t in result[block]["timings"].items():
            print(f"{block:5s} {name:24s} {t['wall_us']:10.1f} us wall  {t['cpu_us']:10.1f} us cpu")
    print("ratios (> 1: avfuse faster):")
    for k, val in result["ratios"].items():
        print(f"  {k:55s} {val:8.2f}")
    print(f"wrote {args.out / 'kernels.json'} and {args.out / 'kernels.png'}")


if __name__ == "__main__":
    main()
