"""Running third-party ONNX models through `avfuse run`, and decoding what avfuse decoded.

The models are the files their own PyPI packages ship (installed by `scripts/install.sh
--all` with `--no-deps`). A test writes a manifest from `manifests/` into a temporary
folder and links the package's .onnx beside it, so the manifest is all avfuse is told.

The package's reference then runs on the same samples and pixels avfuse fed the model:
`decode_audio` and `decode_video` decode a media file the way `MediaSource` does
(PyAV; audio through one resampler to mono float32 at the model rate, frame by frame,
flushed at the end; video converted to bgr24 at the size the stream opened with).

A missing package or tool skips the test with the reason, except under CI (CI=true),
where it fails: there a missing package is a broken set-up, not a reason to pass.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import av
import numpy as np
import pytest

import avfuse

MANIFESTS = Path(__file__).parent / "manifests"
#: what the issue allows per output frame
TOLERANCE = 1e-4
INSTALL_HINT = "bash scripts/install.sh --all (it installs the model packages with --no-deps)"


def _missing(what: str) -> None:
    """Fail under CI, skip elsewhere (a skip is never a pass)."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} (CI=true: the test set-up is broken)", pytrace=False)
    pytest.skip(what)


def need(module: str) -> ModuleType:
    """Import a model package, or skip/fail naming how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        _missing(f"{module} is not installed ({e}); install it with {INSTALL_HINT}")
        raise  # not reached: _missing raises


def need_tool(name: str) -> str:
    """The path of a command the media are made with, or skip/fail naming it."""
    path = shutil.which(name)
    if path is None:
        _missing(f"the {name} command is not installed (apt-get install {name})")
    return str(path)


def manifest(name: str) -> dict[str, Any]:
    """A copy of `manifests/NAME.json`, to run or to break."""
    return json.loads((MANIFESTS / f"{name}.json").read_text())


def package_file(m: dict[str, Any]) -> Path:
    """The .onnx a manifest's provenance names, inside its installed package."""
    prov = m["provenance"]
    need(prov["module"])
    spec = importlib.util.find_spec(prov["module"])
    assert spec is not None and spec.origin is not None
    path = Path(spec.origin).parent / prov["path"]
    if not path.is_file():
        _missing(f"{prov['package']} is installed but has no {prov['path']}")
    return path


def install(
    m: dict[str, Any] | str, folder: Path, *, edit: Callable[[dict[str, Any]], None] | None = None
) -> Path:
    """Write the manifest (after `edit`) as folder/manifest.json with the model linked
    beside it; returns the manifest's path."""
    m = manifest(m) if isinstance(m, str) else copy.deepcopy(m)
    onnx = package_file(m)
    if edit is not None:
        edit(m)
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / m["model"]["file"]
    if not link.exists():
        link.symlink_to(onnx)
    path = folder / "manifest.json"
    path.write_text(json.dumps(m, indent=2))
    return path


def avfuse_cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """`python -m avfuse.cli ARGS` with the avfuse this test imports."""
    env = dict(os.environ)
    root = str(Path(avfuse.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, "-m", "avfuse.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def run_values(
    sources: Sequence[Path], models: Sequence[Path], out: Path, *extra: str
) -> list[dict[str, Any]]:
    """Every record of `avfuse run --values` on the sources with the models."""
    args = ["run", "--values", "--sink", f"jsonl:{out}", "--quiet"]
    for s in sources:
        args += ["--source", str(s)]
    for m in models:
        args += ["--model", str(m)]
    done = avfuse_cli(*args, *extra)
    assert done.returncode == 0, f"avfuse run failed ({done.returncode}): {done.stderr}"
    return [json.loads(line) for line in out.read_text().splitlines()]


def values(
    records: list[dict[str, Any]], *, model: str, output: str, stream: Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(stream times, [n, values]) of one output's value records, in order."""
    rows = [
        r
        for r in records
        if r["type"] == "value"
        and r["model"] == model
        and r["output"] == output
        and (stream is None or r["stream"] == str(stream))
    ]
    assert rows, f"no value records of {model}:{output}"
    times = np.array([r["stream_time"] for r in rows], np.float64)
    return times, np.array([r["values"] for r in rows], np.float64)


def events(records: list[dict[str, Any]], *, stream: Path | None = None) -> list[dict[str, Any]]:
    """The event records (of one stream), in order."""
    return [
        r
        for r in records
        if r["type"] == "event" and (stream is None or r["stream"] == str(stream))
    ]


def frame_errors(got: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Max |got - ref| per output frame (row)."""
    assert got.shape == ref.shape, f"{got.shape} values against the package's {ref.shape}"
    return np.abs(got - ref.astype(np.float64)).reshape(len(got), -1).max(axis=1)


# ---------------------------------------------------------------------- decoding


def decode_audio(path: Path, rate: int) -> np.ndarray:
    """The file's first audio stream as MediaSource delivers it: mono float32 at `rate`."""
    blocks: list[np.ndarray] = []
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        resampler: av.AudioResampler | None = None
        for packet in container.demux(stream):
            for frame in packet.decode():
                if resampler is None:
                    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
                blocks += [o.to_ndarray().reshape(-1) for o in resampler.resample(frame)]
        if resampler is not None:
            blocks += [o.to_ndarray().reshape(-1) for o in resampler.resample(None)]
    return np.concatenate(blocks).astype(np.float32, copy=False)


def decode_video(path: Path) -> tuple[np.ndarray, list[np.ndarray]]:
    """(stream times, bgr24 frames) of the file's first video stream, as MediaSource
    delivers them (times from the container's start)."""
    times, frames = [], []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        w, h = stream.codec_context.width, stream.codec_context.height
        origin = container.start_time / av.time_base if container.start_time is not None else None
        for packet in container.demux(stream):
            for frame in packet.decode():
                t = float(frame.time)
                origin = t if origin is None else origin
                times.append(t - origin)
                frames.append(frame.reformat(width=w, height=h, format="bgr24").to_ndarray())
    return np.array(times), frames
