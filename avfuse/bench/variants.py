"""Open a loaded backend for each benchmark `Variant`, or say why it cannot run here.

fp32 variants load the model as exported. Reduced-precision ONNX Runtime variants
load a derived copy written to a work folder: int8 via `onnxruntime.quantization`
(dynamic, or static calibrated on the benchmark data), fp16 via ONNX Runtime's
float16 converter (inputs and outputs kept float32, so feeds do not change). Other
backends receive the precision in their options and decide themselves.

A variant that cannot run on this machine (package or GPU absent) is *skipped* with
the reason; one that fails for another cause is *failed* with the error. Both are
reported in the results, never dropped.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from avfuse.backends import create_backend
from avfuse.backends.base import Backend
from avfuse.bench.config import Variant
from avfuse.bench.data import BenchData, calibration_data
from avfuse.bench.env import machine
from avfuse.errors import AvfuseError, BackendUnavailable, ModelError
from avfuse.manifest import Manifest

CALIBRATION_SAMPLES = 64


class VariantUnavailable(AvfuseError, RuntimeError):
    """A variant cannot be measured; `status` is "skipped" (not here) or "failed" (error)."""

    def __init__(self, message: str, *, status: str) -> None:
        self.status = status
        super().__init__(message)


def _derived_manifest(manifest: Manifest, model_file: Path, tag: str) -> Manifest:
    """A manifest for a derived model file in `model_file`'s folder (hash cleared)."""
    m = dataclasses.replace(
        manifest,
        model_file=model_file.name,
        sha256=None,
        name=f"{manifest.name}-{tag}",
        path=model_file.parent / f"manifest.{tag}.json",
    )
    m.save(m.path)  # type: ignore[arg-type]
    return m


class _Calibration:
    """onnxruntime.quantization CalibrationDataReader over the first rows of the data."""

    def __init__(self, data: BenchData, n: int) -> None:
        self._rows = iter(range(min(n, data.n)))
        self._data = data

    def get_next(self) -> dict[str, np.ndarray] | None:
        i = next(self._rows, None)
        return None if i is None else self._data.batch([i])

    def rewind(self) -> None:  # newer onnxruntime versions call this
        pass


def derive_model(
    manifest: Manifest, variant: Variant, data: BenchData, workdir: Path
) -> tuple[Manifest, dict[str, Any]]:
    """Manifest of the model this ONNX Runtime variant runs (quantised/converted copy)."""
    if variant.precision == "fp32":
        return manifest, {}
    workdir.mkdir(parents=True, exist_ok=True)
    tag = f"{variant.precision}-{variant.quant}" if variant.precision == "int8" else "fp16"
    if variant.provider == "tensorrt" and variant.precision == "int8":
        tag = "int8-qdq"
    dst = workdir / f"model.{tag}.onnx"
    info: dict[str, Any] = {"derived_model": dst.name}
    if not dst.exists():
        src = manifest.model_path
        if variant.precision == "int8" and variant.provider == "tensorrt":
            # TensorRT takes symmetric Q/DQ only: the model `avfuse build` would make
            from avfuse.export.quantize import Labelled, quantize_qdq

            calib = calibration_data(manifest, n=CALIBRATION_SAMPLES, fallback=data)
            rows = Labelled(calib.feeds, np.zeros(calib.n, np.int64), calib.source)
            info.update(quantize_qdq(manifest, dst, rows, samples=CALIBRATION_SAMPLES))
        elif variant.precision == "int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic, quantize_static
            from onnxruntime.quantization.shape_inference import quant_pre_process

            from avfuse.export.quantize import quiet_root_logger as _quiet

            tmp = workdir / f"model.{tag}.src.onnx"
            with _quiet():
                try:  # shape inference + folding first, as onnxruntime recommends
                    quant_pre_process(str(src), str(tmp))
                    info["pre_process"] = True
                except Exception:  # a graph it cannot process is quantised as exported
                    shutil.copyfile(src, tmp)
                    info["pre_process"] = False
                if variant.quant == "dynamic":
                    quantize_dynamic(str(tmp), str(dst), weight_type=QuantType.QInt8)
                else:
                    calib = calibration_data(manifest, n=CALIBRATION_SAMPLES, fallback=data)
                    info["calibration"] = f"{calib.n} samples of {calib.source}"
                    if calib.reason:
                        info["calibration"] += f" ({calib.reason})"
                    quantize_static(str(tmp), str(dst), _Calibration(calib, CALIBRATION_SAMPLES))
            tmp.unlink(missing_ok=True)
        else:
            import onnx
            from onnxruntime.transformers.float16 import convert_float_to_float16

            model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
            onnx.save(model, str(dst))
        dst.with_suffix(".json").write_text(json.dumps(info))
    info = json.loads(dst.with_suffix(".json").read_text())  # the same notes for every user
    return _derived_manifest(manifest, dst, tag), info


def open_variant(
    variant: Variant, manifest: Manifest, data: BenchData, workdir: Path
) -> tuple[Backend, dict[str, Any]]:
    """A loaded backend for `variant` plus notes for the record; raises VariantUnavailable."""
    if variant.device != "cpu" and not machine()["gpus"]:
        raise VariantUnavailable(
            "no CUDA GPU on this machine (nvidia-smi found none)", status="skipped"
        )
    info: dict[str, Any] = {}
    trt_ep = variant.provider == "tensorrt"
    try:
        m = manifest
        if variant.backend == "ort" and not (trt_ep and variant.precision == "fp16"):
            m, info = derive_model(manifest, variant, data, workdir)
        be = create_backend(
            f"{variant.backend}:{variant.url}" if variant.url else variant.backend,
            device=variant.device,
            threads=variant.threads,
            optimization=variant.optimization,
            provider=variant.provider,
            # a quantised or converted copy carries its precision; the TensorRT provider
            # is told it (its fp16 is a builder flag, its int8 reads the copy's Q/DQ)
            precision=variant.precision if trt_ep or variant.backend != "ort" else "fp32",
        )
        be.load(m)
    except (BackendUnavailable, ImportError) as e:
        raise VariantUnavailable(_one_line(e), status="skipped") from e
    except ModelError as e:
        if variant.backend != "torch":  # torch needs checkpoint.pt, which not every model has
            raise VariantUnavailable(f"ModelError: {_one_line(e)}", status="failed") from e
        raise VariantUnavailable(_one_line(e), status="skipped") from e
    except Exception as e:
        raise VariantUnavailable(f"{type(e).__name__}: {_one_line(e)}", status="failed") from e
    if variant.backend == "ort" and hasattr(be, "providers"):
        info["providers"] = be.providers  # type: ignore[attr-defined]
    return be, info


def _one_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:300]
