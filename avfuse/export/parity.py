"""Step 4 of export: the parity gate, ONNX Runtime against torch on held-out inputs.

Both runtimes get the same float32 feeds; the gate passes when the largest
absolute difference over every output (the logits, and for an embedding member its
per-modality probabilities and embeddings too) is within `atol` AND every sample's
top-1 label agrees. Otherwise it raises `ParityError` carrying the measured numbers. Fused
models are checked on each held-out sample three times (both modalities, audio
missing, video missing), because the runtime feeds all three.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from avfuse.errors import ExportError, ParityError
from avfuse.manifest import Manifest
from avfuse.models.features import Features
from avfuse.models.train import CONDITIONS, condition_inputs
from avfuse.models.zoo import ModelConfig

ATOL = 1e-4
MIN_SAMPLES = 500
_BATCH = 512


@dataclass(frozen=True, kw_only=True)
class ParityReport:
    """Measured agreement.

    Attributes:
        samples: rows compared.
        max_abs_error: largest |ort - torch| over all logits.
        top1_agreement: fraction of rows with the same argmax.
        atol: the tolerance applied.
    """

    samples: int
    max_abs_error: float
    top1_agreement: float
    atol: float

    def to_dict(self) -> dict[str, float | int]:
        """For the manifest's metrics."""
        return {
            "samples": self.samples,
            "max_abs_error": self.max_abs_error,
            "top1_agreement": self.top1_agreement,
            "atol": self.atol,
        }


def parity_feeds(config: ModelConfig, feats: Features) -> dict[str, np.ndarray]:
    """Graph feeds from held-out features: each sample under every condition the model takes."""
    conds = CONDITIONS if "mask" in config.inputs else ("clean",)
    parts = [condition_inputs(feats, c) for c in conds]
    stacked = {
        "audio": np.concatenate([p[0] for p in parts]),
        "image": np.concatenate([p[1] for p in parts]),
        "mask": np.concatenate([p[2] for p in parts]),
    }
    return {n: np.ascontiguousarray(stacked[n], dtype=np.float32) for n in config.inputs}


def torch_outputs(
    model: Any, config: ModelConfig, feeds: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Eager torch outputs (`config.outputs`) for graph feeds, in batches."""
    import torch

    from avfuse.export.onnx_export import export_module

    module = export_module(model.cpu().eval(), config)
    n = len(next(iter(feeds.values())))
    outs: dict[str, list[np.ndarray]] = {k: [] for k in config.outputs}
    with torch.inference_mode():
        for s in range(0, n, _BATCH):
            args = [torch.from_numpy(feeds[k][s : s + _BATCH]) for k in config.inputs]
            got = module(*args)
            got = got if isinstance(got, tuple) else (got,)
            for k, t in zip(config.outputs, got, strict=True):
                outs[k].append(t.numpy())
    return {k: np.concatenate(v) for k, v in outs.items()}


def torch_logits(model: Any, config: ModelConfig, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """Eager torch logits (the first output) for graph feeds, in batches."""
    return torch_outputs(model, config, feeds)[config.outputs[0]]


def ort_outputs(manifest: Manifest, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """ONNX Runtime outputs (every manifest output) through avfuse's `ort` backend."""
    from avfuse.backends import create_backend

    names = [o.name for o in manifest.outputs]
    n = len(next(iter(feeds.values())))
    outs: dict[str, list[np.ndarray]] = {k: [] for k in names}
    with create_backend("ort", threads=2) as be:
        be.load(manifest)
        for s in range(0, n, _BATCH):
            got = be.infer({k: v[s : s + _BATCH] for k, v in feeds.items()})
            for k in names:
                outs[k].append(got[k])
    return {k: np.concatenate(v) for k, v in outs.items()}


def ort_logits(manifest: Manifest, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """ONNX Runtime logits (the first output) through avfuse's own `ort` backend."""
    return ort_outputs(manifest, feeds)[manifest.outputs[0].name]


def check_parity(
    model: Any,
    config: ModelConfig,
    manifest: Manifest,
    feeds: dict[str, np.ndarray],
    *,
    atol: float = ATOL,
    min_samples: int = MIN_SAMPLES,
) -> ParityReport:
    """Compare ONNX Runtime with torch on `feeds`; raise ParityError past tolerance.

    Raises:
        ExportError: fewer than `min_samples` rows were given.
        ParityError: max abs error of any output > atol or any top-1 disagreement.
    """
    n = len(next(iter(feeds.values())))
    if n < min_samples:
        raise ExportError(
            f"the parity gate needs >= {min_samples} held-out samples, got {n}; "
            "pass more samples or lower min_samples"
        )
    ref = torch_outputs(model, config, feeds)
    got = ort_outputs(manifest, feeds)
    err = max(
        float(np.max(np.abs(ref[k].astype(np.float64) - got[k].astype(np.float64))))
        for k in config.outputs
    )
    first = config.outputs[0]
    agree = float(np.mean(ref[first].argmax(1) == got[first].argmax(1)))
    report = ParityReport(samples=n, max_abs_error=err, top1_agreement=agree, atol=atol)
    if not err <= atol or agree < 1.0:
        raise ParityError(
            f"ONNX Runtime disagrees with torch on {n} samples: max abs output error "
            f"{err:.3g} (limit {atol:g}), top-1 agreement {agree:.4f} (need 1.0); "
            "re-export with --no-slim or check the exporter",
            max_abs_error=err,
            top1_agreement=agree,
        )
    return report
