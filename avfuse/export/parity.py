"""Step 4 of export: the parity gate, ONNX Runtime against torch on held-out inputs.

Both runtimes get the same float32 feeds; the gate passes when the largest
absolute logit difference is within `atol` AND every sample's top-1 label
agrees. Otherwise it raises `ParityError` carrying the measured numbers. Fused
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


def torch_logits(model: Any, config: ModelConfig, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """Eager torch logits for graph feeds, in batches."""
    import torch

    model = model.cpu().eval()
    n = len(next(iter(feeds.values())))
    outs = []
    with torch.inference_mode():
        for s in range(0, n, _BATCH):
            args = [torch.from_numpy(feeds[k][s : s + _BATCH]) for k in config.inputs]
            outs.append(model(*args).numpy())
    return np.concatenate(outs)


def ort_logits(manifest: Manifest, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """ONNX Runtime logits through avfuse's own `ort` backend, in batches."""
    from avfuse.backends import create_backend

    out_name = manifest.outputs[0].name
    n = len(next(iter(feeds.values())))
    outs = []
    with create_backend("ort", threads=2) as be:
        be.load(manifest)
        for s in range(0, n, _BATCH):
            outs.append(be.infer({k: v[s : s + _BATCH] for k, v in feeds.items()})[out_name])
    return np.concatenate(outs)


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
        ParityError: max abs logit error > atol or any top-1 disagreement.
    """
    n = len(next(iter(feeds.values())))
    if n < min_samples:
        raise ExportError(
            f"the parity gate needs >= {min_samples} held-out samples, got {n}; "
            "pass more samples or lower min_samples"
        )
    ref = torch_logits(model, config, feeds)
    got = ort_logits(manifest, feeds)
    err = float(np.max(np.abs(ref.astype(np.float64) - got.astype(np.float64))))
    agree = float(np.mean(ref.argmax(1) == got.argmax(1)))
    report = ParityReport(samples=n, max_abs_error=err, top1_agreement=agree, atol=atol)
    if not err <= atol or agree < 1.0:
        raise ParityError(
            f"ONNX Runtime disagrees with torch on {n} samples: max abs logit error "
            f"{err:.3g} (limit {atol:g}), top-1 agreement {agree:.4f} (need 1.0); "
            "re-export with --no-slim or check the exporter",
            max_abs_error=err,
            top1_agreement=agree,
        )
    return report
