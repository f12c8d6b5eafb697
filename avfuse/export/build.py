"""`avfuse build`: a model folder with a TensorRT engine beside its ONNX, for one precision.

    from avfuse.export.build import build
    r = build("models/digits", precision="int8", out="digits-int8", data="test")
    r.record["int8"]["loss_points"], r.engine

The output folder is a model folder (`avfuse run --model DIR` runs it):
    model.onnx         the fp32 model as given, or for int8 its Q/DQ copy
                       (`avfuse.export.quantize`: accuracy-gated)
    manifest.json      the manifest (int8: renamed NAME-int8, its metrics["int8"] the
                       gate's record)
    model.engine       the engine (`avfuse.export.trt_build`), also put in the engine cache
    model.engine.json  the engine's key and settings: the tensorrt backend loads the engine
                       beside a model only when its key is this machine's

TensorRT is checked first, so a machine without it fails in a second, not after the
quantisation; `onnx_only` (int8) writes the Q/DQ model and its record without any
engine, and needs neither TensorRT nor a GPU: ONNX Runtime runs it on the CPU.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avfuse.errors import UsageError
from avfuse.manifest import Manifest, file_sha256


@dataclass(frozen=True)
class BuildResult:
    """What `build` wrote.

    Attributes:
        out: the output folder.
        manifest: the written model's manifest.
        engine: the engine file (None with onnx_only).
        record: notes (the int8 gate's numbers under "int8", the engine's key).
    """

    out: Path
    manifest: Manifest
    engine: Path | None
    record: dict[str, Any] = field(default_factory=dict)


def _copy_model(m: Manifest, out: Path) -> Manifest:
    out.mkdir(parents=True, exist_ok=True)
    dst = out / "model.onnx"
    if m.model_path.resolve() != dst.resolve():
        shutil.copyfile(m.model_path, dst)
    q = dataclasses.replace(
        m, model_file=dst.name, sha256=file_sha256(dst), path=out / "manifest.json"
    )
    q.save(q.path)  # type: ignore[arg-type]
    return q


def build(
    model: str | Path | None,
    *,
    precision: str,
    out: str | Path | None = None,
    device: str = "cuda",
    max_batch: int = 64,
    force: bool = False,
    onnx_only: bool = False,
    data: str = "test",
    calibration_samples: int = 128,
) -> BuildResult:
    """Build the model folder (see the module docstring).

    Raises:
        UsageError: settings that contradict each other (onnx_only without int8, a CPU
            device for an engine).
        BackendUnavailable: no TensorRT or no GPU (unless onnx_only).
        AccuracyGateError: the int8 model loses more than 1 point and not `force`d.
    """
    from avfuse.assets import default_model_path
    from avfuse.backends.base import BackendOptions
    from avfuse.manifest.todo import load_complete

    if precision not in ("fp32", "fp16", "int8"):
        raise UsageError(f"unknown precision {precision!r}; use fp32, fp16 or int8")
    if onnx_only and precision != "int8":
        raise UsageError(
            f"--onnx-only writes a quantised ONNX model: it needs --precision int8, "
            f"not {precision} (fp32/fp16 need no new ONNX file)"
        )
    opts = BackendOptions(device=device)
    if not onnx_only:
        if not device.startswith("cuda"):
            raise UsageError("a TensorRT engine is built on the GPU: use --device cuda[:N]")
        from avfuse.backends import cudart
        from avfuse.export.trt_build import trt

        trt()  # TensorRT first: missing, it fails now rather than after the quantisation
        if cudart.device_count() <= opts.device_index:
            raise UsageError(f"no CUDA device {opts.device_index}: nvidia-smi lists the ones here")
    from avfuse.backends.ort import complete_from_graph

    m = complete_from_graph(
        load_complete(str(model) if model is not None else default_model_path())
    )
    folder = Path(out) if out is not None else Path(f"{m.name}-{precision}")
    record: dict[str, Any] = {"precision": precision, "source_model": str(m.model_path)}
    if precision == "int8":
        from avfuse.export.quantize import sample_sets, write_int8

        calib, evaluation = sample_sets(m, data, calibration=calibration_samples)
        built, record["int8"] = write_int8(
            m,
            folder,
            calibration=calib,
            evaluation=evaluation,
            force=force,
            samples=calibration_samples,
        )
    else:
        built = _copy_model(m, folder)
    if onnx_only:
        return BuildResult(folder, built, None, record)
    from avfuse.backends.tensorrt import key_for, locate_engine

    # the engine is keyed by the written model (for int8, its Q/DQ copy)
    engine = locate_engine(
        built, precision=precision, max_batch=max_batch, device=opts.device_index
    )
    dst = built.model_path.with_suffix(".engine")
    shutil.copyfile(engine, dst)
    key = key_for(built, precision=precision, max_batch=max_batch, device=opts.device_index)
    record["engine"] = {"key": key, "max_batch": max_batch, "cached": str(engine)}
    dst.with_suffix(".engine.json").write_text(json.dumps({"key": key, **record}, indent=1))
    return BuildResult(folder, built, dst, record)


__all__ = ["BuildResult", "build"]
