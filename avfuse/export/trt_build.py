"""TensorRT engines from ONNX with the official Python API: network, profile, timing cache.

The choices are pure functions, tested on machines without TensorRT:
    profile_shapes   (min, opt, max) of every input: batch 1 .. max_batch on each input's
                     own batch axis, its other dims as the manifest fixes them
    build_plan       network and builder flags for a precision and TensorRT version
    engine_key       the cache key: everything that makes a built engine invalid
`build_engine` applies them: `trt.Builder`, a network from `trt.OnnxParser`, one
optimisation profile, a timing cache read from and written back to disk (later builds
on this GPU reuse its kernel timings), `build_serialized_network`.

Precision (TensorRT 10; TensorRT 11 removes the precision flags):
    fp32  as parsed
    fp16  BuilderFlag.FP16 on TensorRT 10; on 11, the ONNX converted to fp16 first (inputs
          and outputs kept fp32) and built strongly typed
    int8  a Q/DQ model (`avfuse.export.quantize`) built strongly typed: explicit
          quantisation, TensorRT's documented way since its calibrators were deprecated
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avfuse.errors import BackendUnavailable, ModelError, UsageError
from avfuse.manifest import Manifest

Shape = tuple[int, ...]
WORKSPACE_BYTES = 1 << 30
TRT_INSTALL = "pip install 'avfuse[gpu]'"


def profile_shapes(
    m: Manifest, *, max_batch: int, opt_batch: int | None = None
) -> dict[str, tuple[Shape, Shape, Shape]]:
    """(min, opt, max) shape of every graph input with a shape.

    A fixed dim stays as it is (a fixed batch too: min = opt = max); the symbolic dim on
    an input's batch axis spans 1 .. max_batch (opt: `opt_batch`, default min(8, max));
    any other symbolic dim is refused, since TensorRT needs its range.
    """
    if max_batch < 1:
        raise UsageError(f"max batch must be >= 1, got {max_batch}")
    opt = max(1, min(opt_batch or 8, max_batch))
    out: dict[str, tuple[Shape, Shape, Shape]] = {}
    for s in m.inputs:
        if s.shape is None:
            raise UsageError(
                f"input {s.name!r} has no shape in the manifest; load it from the "
                "graph first (any backend's load() completes it)"
            )
        dims: list[tuple[int, int, int]] = []
        for axis, d in enumerate(s.shape):
            if isinstance(d, int):
                dims.append((d, d, d))
            elif axis == s.batch_axis:
                dims.append((1, opt, max_batch))
            else:
                raise UsageError(
                    f"input {s.name!r} dim {axis} ({d!r}) is dynamic and not its batch axis: "
                    "TensorRT needs its range; export the model with a fixed size there"
                )
        out[s.name] = (
            tuple(x[0] for x in dims),
            tuple(x[1] for x in dims),
            tuple(x[2] for x in dims),
        )
    return out


@dataclass(frozen=True)
class BuildPlan:
    """How a network is made and built for one precision.

    Attributes:
        strongly_typed: create the network with NetworkDefinitionCreationFlag.STRONGLY_TYPED
            (tensor types come from the graph; no precision flags allowed).
        flags: BuilderFlag names to set.
        convert_fp16: convert the ONNX graph to fp16 before parsing.
    """

    strongly_typed: bool
    flags: tuple[str, ...]
    convert_fp16: bool = False


def trt_major(version: str) -> int:
    """Major version of a TensorRT version string ("10.3.0" -> 10)."""
    try:
        return int(version.split(".")[0])
    except ValueError:
        raise UsageError(f"cannot read the TensorRT version {version!r}") from None


def build_plan(precision: str, trt_version: str, *, qdq: bool) -> BuildPlan:
    """The network and builder choices for `precision` (see the module docstring).

    Raises:
        UsageError: int8 without a Q/DQ model, a precision unknown, TensorRT < 10.
    """
    major = trt_major(trt_version)
    if major < 10:
        raise UsageError(f"TensorRT {trt_version} is too old: avfuse needs 10 or newer")
    if precision == "int8":
        if not qdq:
            raise UsageError(
                "int8 needs an explicitly quantised (Q/DQ) model: `avfuse build MODEL "
                "--precision int8` makes one and builds it"
            )
        return BuildPlan(strongly_typed=True, flags=())
    if precision == "fp16":
        if major >= 11:
            return BuildPlan(strongly_typed=True, flags=(), convert_fp16=True)
        return BuildPlan(strongly_typed=False, flags=("FP16",))
    if precision == "fp32":
        return BuildPlan(strongly_typed=major >= 11 or qdq, flags=())
    raise UsageError(f"unknown precision {precision!r}; use fp32, fp16 or int8")


def engine_key(
    model_sha256: str,
    *,
    gpu: str,
    compute_capability: tuple[int, int],
    trt_version: str,
    cuda_runtime: int,
    cuda_driver: int,
    precision: str,
    profile: dict[str, tuple[Shape, Shape, Shape]],
) -> str:
    """Cache key of an engine: the model, the GPU, the TensorRT and CUDA versions, the
    precision and the optimisation profile; a change in any one of them means a rebuild."""
    shapes = ";".join(f"{k}={v}" for k, v in sorted(profile.items()))
    raw = (
        f"{model_sha256}|{gpu}|sm{compute_capability[0]}{compute_capability[1]}"
        f"|trt{trt_version}|cudart{cuda_runtime}|driver{cuda_driver}|{precision}|{shapes}"
    )
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def trt() -> Any:
    """The tensorrt module, or BackendUnavailable naming the install."""
    try:
        import tensorrt
    except ImportError as e:
        from avfuse.backends.select import gpu_names

        gpu = "" if gpu_names() else "; and no NVIDIA GPU is here (nvidia-smi lists none)"
        raise BackendUnavailable(
            f"TensorRT is not installed: {TRT_INSTALL} (needs an NVIDIA GPU and driver){gpu}"
        ) from e
    return tensorrt


def _fp16_copy(src: Path, dst: Path) -> Path:
    try:
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError as e:
        raise BackendUnavailable(
            f"fp16 on TensorRT 11 converts the ONNX first: {e}; pip install onnx"
        ) from e
    onnx.save(convert_float_to_float16(onnx.load(str(src)), keep_io_types=True), str(dst))
    return dst


def build_engine(
    model_path: Path,
    m: Manifest,
    *,
    precision: str,
    max_batch: int,
    timing_cache: Path,
    qdq: bool,
) -> bytes:
    """A serialised engine for `model_path` (see the module docstring)."""
    t = trt()
    plan = build_plan(precision, t.__version__, qdq=qdq)
    logger = t.Logger(t.Logger.WARNING)
    builder = t.Builder(logger)
    flags = 0
    strong = getattr(t.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if plan.strongly_typed and strong is not None:  # TensorRT 11: always strongly typed
        flags |= 1 << int(strong)
    network = builder.create_network(flags)
    parser = t.OnnxParser(network, logger)
    with tempfile.TemporaryDirectory() as tmp:
        src = _fp16_copy(model_path, Path(tmp) / "fp16.onnx") if plan.convert_fp16 else model_path
        if not parser.parse_from_file(str(src)):
            errs = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ModelError(f"TensorRT cannot parse {model_path.name}: {errs}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(t.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    for name in plan.flags:
        config.set_flag(getattr(t.BuilderFlag, name))
    profile = builder.create_optimization_profile()
    for name, (lo, mid, hi) in profile_shapes(m, max_batch=max_batch).items():
        profile.set_shape(name, lo, mid, hi)
    config.add_optimization_profile(profile)
    blob = timing_cache.read_bytes() if timing_cache.is_file() else b""
    cache = config.create_timing_cache(blob)
    config.set_timing_cache(cache, ignore_mismatch=False)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise ModelError(f"TensorRT could not build an engine for {model_path.name}; see its log")
    timing_cache.parent.mkdir(parents=True, exist_ok=True)
    timing_cache.write_bytes(bytes(config.get_timing_cache().serialize()))
    return bytes(engine)


__all__ = ["BuildPlan", "build_engine", "build_plan", "engine_key", "profile_shapes", "trt"]
