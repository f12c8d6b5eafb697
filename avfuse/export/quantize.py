"""int8 by explicit quantisation: a Q/DQ ONNX model from ONNX Runtime's static quantiser,
kept only if it loses at most 1 point of accuracy against the fp32 model.

TensorRT's implicit int8 calibrators are deprecated; what it (and ONNX Runtime's CPU and
TensorRT providers) runs instead is an explicitly quantised graph, QuantizeLinear /
DequantizeLinear pairs around each weighted layer. `quantize_qdq` makes one with
`onnxruntime.quantization.quantize_static`: QDQ format, int8 weights (per channel) and
activations, both symmetric (TensorRT takes zero points of 0 only), activation ranges
calibrated by running the model on real inputs, biases left in float.

`gate` measures both models with real ONNX Runtime sessions on the same labelled
samples and refuses the int8 one (`AccuracyGateError`) when it is more than
`MAX_LOSS_POINTS` worse, or one sample where a sample is more (a set too small to
resolve 1 point: the 60 demo samples), unless forced. Sample sets, never the one calibrated on when
avoidable:
    test   calibrate on the AV-digits val split, score on its test split (the data extra,
           espeak-ng; generated and cached on first use)
    demo   the bundled demo samples for both (60 samples, seconds; a smoke check: one
           sample is 1.7 points, so the limit there is one sample)
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avfuse.backends.base import np_dtype
from avfuse.errors import AccuracyGateError, DataError, UsageError
from avfuse.manifest import Manifest, file_sha256

MAX_LOSS_POINTS = 1.0
CALIBRATION_SAMPLES = 128
SETS = ("test", "demo")


@dataclass(frozen=True)
class Labelled:
    """Model inputs with N rows and the label index of each row.

    Attributes:
        feeds: input name -> array of N rows (every input the caller feeds).
        labels: index into the manifest's labels, per row.
        source: where they come from (recorded with the result).
    """

    feeds: dict[str, np.ndarray]
    labels: np.ndarray
    source: str

    def __len__(self) -> int:
        return int(len(self.labels))

    def rows(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """Rows [start, stop) of every input, contiguous."""
        return {k: np.ascontiguousarray(v[start:stop]) for k, v in self.feeds.items()}


def demo_set(m: Manifest) -> Labelled:
    """The bundled demo samples (`avfuse.doctor.samples`) with a known label."""
    from avfuse.doctor.samples import build_samples

    s = build_samples(m)
    keep = [i for i, lab in enumerate(s.labels) if lab is not None]
    if not keep:
        raise UsageError(f"model {m.name!r} has no labels the demo digits match: use --data test")
    feeds = {k: np.concatenate([s.feeds[i][k] for i in keep]) for k in s.feeds[0]}
    labels = np.asarray([s.labels[i] for i in keep], np.int64)
    return Labelled(feeds, labels, s.source)


def split_set(m: Manifest, split: str, *, limit: int = 0) -> Labelled:
    """An AV-digits split pre-processed for `m` (raises DataError where it cannot load)."""
    try:
        from avfuse.bench.data import features_from_split
        from avfuse.data import DataConfig, load_split
        from avfuse.data.config import LABELS

        data = features_from_split(m, load_split(split, DataConfig(), progress=False), limit=limit)
    except (ImportError, DataError) as e:
        raise DataError(
            f"the AV-digits {split} split cannot be loaded ({e}); install the data extra "
            "(pip install 'avfuse[data]') and espeak-ng, or use --data demo"
        ) from e
    index = {lab: i for i, lab in enumerate(m.labels)}
    # the split's labels index AV-digits' own names ("0".."9", "none"); the model's may differ
    labels = np.asarray([index.get(LABELS[int(d)], -1) for d in data.labels], np.int64)
    return Labelled(data.feeds, labels, f"av-digits:{split} ({len(labels)} samples)")


def sample_sets(m: Manifest, which: str, *, calibration: int = CALIBRATION_SAMPLES):
    """(calibration set, evaluation set) for `which` ("test" or "demo")."""
    if which not in SETS:
        raise UsageError(f"unknown sample set {which!r}; use test or demo")
    if which == "demo":
        d = demo_set(m)
        return d, d
    return split_set(m, "val", limit=calibration), split_set(m, "test")


class _Reader:
    """onnxruntime.quantization's CalibrationDataReader: one row per call."""

    def __init__(self, data: Labelled, consts: dict[str, np.ndarray], n: int) -> None:
        self._data, self._consts = data, consts
        self._n = min(n, len(data))
        self._i = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._i >= self._n:
            return None
        row = {**self._data.rows(self._i, self._i + 1), **self._consts}
        self._i += 1
        return row

    def rewind(self) -> None:
        self._i = 0


@contextlib.contextmanager
def quiet_root_logger() -> Iterator[None]:
    """onnxruntime.quantization logs advice on the root logger; hold it back."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _consts(m: Manifest) -> dict[str, np.ndarray]:
    out = {}
    for s in m.inputs:
        if s.modality == "const":
            v = np.asarray(s.value, dtype=np_dtype(s.dtype))
            out[s.name] = v if s.batch_axis is None else np.expand_dims(v, s.batch_axis)
    return out


def quantize_qdq(m: Manifest, dst: Path, calibration: Labelled, *, samples: int) -> dict:
    """Write the Q/DQ int8 model of `m` to `dst`; returns notes for the record."""
    if m.state:
        raise UsageError(
            f"model {m.name!r} carries recurrent state; int8 calibration of stateful models "
            "is not supported: run it in fp32 or fp16"
        )
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    notes: dict[str, Any] = {
        "format": "QDQ",
        "weights": "int8 symmetric per channel",
        "activations": "int8 symmetric",
        "biases": "float",
    }
    with tempfile.TemporaryDirectory() as tmp, quiet_root_logger():
        src = Path(tmp) / "pre.onnx"
        try:  # shape inference and folding first, as onnxruntime recommends
            quant_pre_process(str(m.model_path), str(src), skip_symbolic_shape=True)
            notes["pre_process"] = True
        except Exception:  # noqa: BLE001 - a graph it cannot process is quantised as saved
            shutil.copyfile(m.model_path, src)
            notes["pre_process"] = False
        reader = _Reader(calibration, _consts(m), samples)
        quantize_static(
            str(src),
            str(dst),
            reader,
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            # TensorRT's Q/DQ are int8 with zero points of 0; biases stay float (it has
            # no int32 Q/DQ and folds biases into the layer itself)
            extra_options={
                "ActivationSymmetric": True,
                "WeightSymmetric": True,
                "QuantizeBias": False,
            },
        )
    notes["calibration"] = f"{min(samples, len(calibration))} rows of {calibration.source}"
    return notes


def accuracy(m: Manifest, data: Labelled, *, batch: int = 64) -> float:
    """Top-1 accuracy (0..1) of `m` on `data`, through the ort backend on the CPU."""
    from avfuse.backends import create_backend

    driver = m.driving_output.name
    right = 0
    with create_backend("ort", threads=0).load(m) as be:
        for i in range(0, len(data), batch):
            out = be.infer(data.rows(i, i + batch), borrow=True)[driver]
            right += int(
                np.sum(
                    np.argmax(out.reshape(out.shape[0], -1), axis=1) == data.labels[i : i + batch]
                )
            )
    return right / max(1, len(data))


def write_int8(
    m: Manifest,
    out_dir: Path,
    *,
    calibration: Labelled,
    evaluation: Labelled,
    force: bool = False,
    max_loss_points: float = MAX_LOSS_POINTS,
    samples: int = CALIBRATION_SAMPLES,
) -> tuple[Manifest, dict[str, Any]]:
    """Quantise `m` into out_dir/model.onnx + manifest.json, gated on accuracy.

    Returns the int8 model's manifest and the record (also in its metrics["int8"]).

    Raises:
        AccuracyGateError: the int8 model is more than `max_loss_points` worse (or one
            sample of `evaluation`, where that is more) and not `force`d; nothing is left
            in `out_dir` then.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    dst = out_dir / "model.onnx"
    tmp = out_dir / ".model.int8.onnx"
    notes = quantize_qdq(m, tmp, calibration, samples=samples)
    q = dataclasses.replace(m, model_file=tmp.name, sha256=None, path=out_dir / "manifest.json")
    fp32, int8 = accuracy(m, evaluation), accuracy(q, evaluation)
    raw_loss = (fp32 - int8) * 100
    loss = round(raw_loss, 3)
    # a set of n samples cannot tell a loss below one sample (100 / n points) from none:
    # on the 60 demo samples one changed answer is 1.7 points, whatever the limit says
    resolution = 100.0 / max(len(evaluation), 1)
    limit = max(max_loss_points, resolution)
    record = {
        **notes,
        "evaluation": evaluation.source,
        "fp32_accuracy": round(fp32, 5),
        "int8_accuracy": round(int8, 5),
        "loss_points": loss,
        "max_loss_points": max_loss_points,
        "resolution_points": round(resolution, 3),
        "limit_points": round(limit, 3),
        "forced": bool(force and raw_loss > limit + 1e-9),
    }
    if raw_loss > limit + 1e-9 and not force:
        tmp.unlink(missing_ok=True)
        raise AccuracyGateError(
            f"int8 model loses {loss:.2f} points of accuracy on {evaluation.source} "
            f"(fp32 {fp32 * 100:.2f} %, int8 {int8 * 100:.2f} %; limit {limit:.3g}): "
            "not written; --force keeps it anyway",
            fp32_accuracy=fp32,
            int8_accuracy=int8,
            loss_points=loss,
        )
    tmp.replace(dst)
    q = dataclasses.replace(
        m,
        model_file=dst.name,
        sha256=file_sha256(dst),
        name=f"{m.name}-int8",
        metrics={**m.metrics, "int8": record},
        path=out_dir / "manifest.json",
    )
    q.save(q.path)  # type: ignore[arg-type]
    return q, record


def has_qdq(model_path: Path) -> bool:
    """Whether an ONNX file holds QuantizeLinear nodes (explicit quantisation).

    Node types are stored as plain strings in the protobuf, so this reads bytes and needs
    no onnx package (the gpu extra does not bring one).
    """
    return b"QuantizeLinear" in Path(model_path).read_bytes()


__all__ = [
    "MAX_LOSS_POINTS",
    "SETS",
    "Labelled",
    "accuracy",
    "demo_set",
    "has_qdq",
    "quantize_qdq",
    "sample_sets",
    "split_set",
    "write_int8",
]
