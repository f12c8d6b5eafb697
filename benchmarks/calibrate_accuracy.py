"""Accuracy of `avfuse calibrate`: known A/V offsets, measured through the engine.

    .venv/bin/python benchmarks/calibrate_accuracy.py [--seconds 15] [--size 1280x720]
                                                       [--no-udp] [--no-split]

The pattern is written once by `avfuse.calibrate.write_pattern`; for each offset from
-300 to +300 ms in 50 ms steps a real ffmpeg makes a copy with the audio moved
(`-itsoffset`, streams copied, MPEG-TS so the 90 kHz timestamps hold the shift exactly),
and the copy is measured

    file    read from disk (as fast as the engine goes);
    udp     sent by ffmpeg (`-re -c copy -f mpegts`) to udp://127.0.0.1:PORT and read
            live: one container, so the engine times video through the audio's clock;
    split   (at 0 and +300 ms only) video and audio sent by one ffmpeg as two UDP
            streams and read as --video/--audio: two arrival-timed clocks, as a camera
            and a microphone on separate encoders would be. The sender's own buffering
            then shows in the offset, which is what calibrating such a chain is for.

Error = measured - injected. The claims checked: every error within a frame (33.3 ms at
30 fps), and nine in ten within 10 ms. Writes benchmarks/results/calibrate.json with
every measurement (its pairs' offsets included), the machine and the versions.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from avfuse.bench.env import machine, versions
from avfuse.calibrate import PatternSpec, measure, write_pattern

RESULTS = Path(__file__).resolve().parent / "results"
OFFSETS_MS = [float(x) for x in range(-300, 301, 50)]
SPLIT_MS = [0.0, 300.0]


def _ffmpeg(*args: str, timeout: float = 600) -> None:
    cmd = [shutil.which("ffmpeg") or "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error"]
    subprocess.run([*cmd, "-y", *args], check=True, capture_output=True, timeout=timeout)


def _shift(pattern: Path, ms: float, out: Path) -> Path:
    _ffmpeg("-i", str(pattern), "-itsoffset", f"{ms / 1e3:.6f}", "-i", str(pattern),
            "-map", "0:v", "-map", "1:a", "-c", "copy", "-f", "mpegts", str(out))  # fmt: skip
    return out


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bound(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _send_when_bound(port: int, args: list[str], done: threading.Event) -> None:
    """Start ffmpeg once the reader has bound `port` (so nothing is sent into the void)."""
    deadline = time.monotonic() + 30
    while not _bound(port) and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        _ffmpeg(*args)
    finally:
        done.set()


def _entry(mode: str, ms: float, m: Any, wall_s: float) -> dict[str, Any]:
    c = m.calibration
    return {
        "mode": mode,
        "injected_ms": ms,
        "measured_ms": round(c.offset_ms, 3),
        "error_ms": round(c.offset_ms - ms, 3),
        "pairs": c.pairs,
        "mad_ms": round(c.mad_ms, 3),
        "p5_ms": round(c.p5_ms, 3),
        "p95_ms": round(c.p95_ms, 3),
        "pair_offsets_ms": [round(x, 2) for x in c.offsets_ms],
        "seconds_read": round(m.capture.seconds, 2),
        "notes": sorted(set(m.capture.notes)),
        "wall_s": round(wall_s, 2),
    }


def _live(mode: str, path: Path, ms: float, seconds: float) -> dict[str, Any]:
    """Measure `path` sent live by ffmpeg: one UDP stream ("udp") or two ("split")."""
    pv, pa = _free_port(), _free_port()
    base = ["-re", "-i", str(path)]
    if mode == "udp":
        url = f"udp://127.0.0.1:{pv}"
        send = [*base, "-c", "copy", "-f", "mpegts", f"{url}?pkt_size=1316"]
        kwargs: dict[str, Any] = {"sources": [url]}
    else:
        send = list(base)
        for kind, port in (("v", pv), ("a", pa)):
            url = f"udp://127.0.0.1:{port}?pkt_size=1316"
            send += ["-map", f"0:{kind}", "-c", "copy", "-f", "mpegts", url]
        kwargs = {"video": f"udp://127.0.0.1:{pv}", "audio": f"udp://127.0.0.1:{pa}"}
    # the (first) source blocks in open() until data comes: send once its port is bound
    done = threading.Event()
    threading.Thread(target=_send_when_bound, args=(pv, send, done), daemon=True).start()
    start = time.monotonic()
    m = measure(duration_s=seconds - 1.0, **kwargs)
    wall = time.monotonic() - start
    done.wait(seconds + 30)
    return _entry(mode, ms, m, wall)


def _claims(entries: list[dict[str, Any]], frame_ms: float) -> dict[str, Any]:
    e = np.abs([x["error_ms"] for x in entries])
    return {
        "cases": len(entries),
        "max_abs_error_ms": round(float(e.max()), 3),
        "mean_abs_error_ms": round(float(e.mean()), 3),
        "within_frame": bool(np.all(e <= frame_ms)),
        "share_within_10ms": round(float(np.mean(e <= 10.0)), 3),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the sweep and write results/calibrate.json."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=15.0, help="pattern length (s)")
    ap.add_argument("--size", default="1280x720", help="pattern size WxH (default 1280x720)")
    ap.add_argument("--no-udp", action="store_true", help="files only")
    ap.add_argument("--no-split", action="store_true", help="skip the two-stream cases")
    ap.add_argument("--out", type=Path, default=RESULTS / "calibrate.json")
    args = ap.parse_args(argv)
    w, h = (int(x) for x in args.size.lower().split("x"))
    spec = PatternSpec(seconds=args.seconds, width=w, height=h)
    frame_ms = 1e3 / spec.fps
    started = dt.datetime.now(dt.timezone.utc)
    env = {"machine": machine(), "versions": versions()}
    entries: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="avfuse-calib-") as tmp:
        folder = Path(tmp)
        pattern = write_pattern(folder / "pattern.mp4", spec)
        shifted = {ms: _shift(pattern, ms, folder / f"shift_{ms:+g}.ts") for ms in OFFSETS_MS}
        for ms in OFFSETS_MS:
            t0 = time.monotonic()
            m = measure(sources=[str(shifted[ms])])
            entries.append(_entry("file", ms, m, time.monotonic() - t0))
            print(f"file  {ms:+5.0f} ms -> {entries[-1]['measured_ms']:+8.2f} ms", flush=True)
        if not args.no_udp:
            for ms in OFFSETS_MS:
                entries.append(_live("udp", shifted[ms], ms, args.seconds))
                print(f"udp   {ms:+5.0f} ms -> {entries[-1]['measured_ms']:+8.2f} ms", flush=True)
        if not args.no_split:
            for ms in SPLIT_MS:
                entries.append(_live("split", shifted[ms], ms, args.seconds))
                print(f"split {ms:+5.0f} ms -> {entries[-1]['measured_ms']:+8.2f} ms", flush=True)
    by_mode = {
        mode: _claims([x for x in entries if x["mode"] == mode], frame_ms)
        for mode in ("file", "udp")
        if any(x["mode"] == mode for x in entries)
    }
    split = [x for x in entries if x["mode"] == "split"]
    result = {
        "benchmark": "calibrate_accuracy",
        "started_utc": started.isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "pattern": {
            "seconds": spec.seconds,
            "size": f"{w}x{h}",
            "fps": spec.fps,
            "audio": "aac 48 kHz mono",
            "frame_ms": round(frame_ms, 3),
        },  # fmt: skip
        "claims": by_mode,
        "split_streams": {
            "note": "two arrival-timed UDP streams from one ffmpeg: the offset the engine sees "
            "includes the sender's buffering of each stream (not a measurement error)",
            "seen_minus_injected_ms": [x["error_ms"] for x in split],
        },
        "entries": entries,
        **env,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(by_mode, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
