"""Step 5 of export: write manifest.json beside model.onnx.

The manifest records the graph's inputs with their modality roles, the mask
order, the complete pre-processing the model was trained with, the labels, the
fusion type, the test metrics and the provenance (git commit, torch / onnx /
onnxruntime versions, data-set version, exporter, sha256 of model.onnx).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from avfuse.export.onnx_export import OUTPUT_NAME
from avfuse.kernels.reference import AudioParams, VideoParams
from avfuse.manifest import MANIFEST_NAME, Manifest, TensorSpec, file_sha256
from avfuse.models.zoo import EMBEDDING, INPUT_ROLES, MASK_ORDER, ModelConfig
from avfuse.provenance import git_commit, package_versions


def input_specs(
    config: ModelConfig, audio: AudioParams | None = None, video: VideoParams | None = None
) -> tuple[TensorSpec, ...]:
    """The graph's input specs for a zoo model (batch axis named "batch"), with their
    pre-processing attached."""
    shapes = {
        "audio": ("batch", config.n_mels, config.n_frames),
        "image": ("batch", config.channels, config.height, config.width),
        "mask": ("batch", len(MASK_ORDER)),
    }
    extra = {
        "audio": {"audio": audio},
        "image": {"video": video},
        "mask": {"order": MASK_ORDER},
    }
    return tuple(
        TensorSpec(name=n, shape=shapes[n], modality=INPUT_ROLES[n], **extra[n])
        for n in config.inputs
    )


def output_specs(config: ModelConfig, labels: tuple[str, ...]) -> tuple[TensorSpec, ...]:
    """The graph's output specs: the fused logits (driving), and for an embedding member
    each modality's own probabilities and its embedding in the shared space."""
    logits = TensorSpec(
        name=OUTPUT_NAME,
        shape=("batch", config.n_classes),
        kind="logits",
        labels=tuple(labels),
        drives=True,
    )
    if config.name not in EMBEDDING:
        return (logits,)
    heads = tuple(
        TensorSpec(
            name=f"{m}_probs",
            shape=("batch", config.n_classes),
            kind="probabilities",
            labels=tuple(labels),
            modality=m,
        )
        for m in ("audio", "video")
    )
    embeddings = tuple(
        TensorSpec(
            name=f"{m}_embedding", shape=("batch", config.embed_dim), kind="embedding", modality=m
        )
        for m in ("audio", "video")
    )
    specs = (logits, *heads, *embeddings)
    if tuple(s.name for s in specs) != config.outputs:  # the graph's outputs, in its order
        raise ValueError(f"output specs {[s.name for s in specs]} != graph {config.outputs}")
    return specs


def versions() -> dict[str, str | None]:
    """Versions of the tools that made and checked the graph."""
    return package_versions(("torch", "onnx", "onnxruntime", "onnxscript", "onnxslim", "numpy"))


def build_manifest(
    *,
    onnx_path: Path,
    config: ModelConfig,
    audio: AudioParams,
    video: VideoParams,
    labels: tuple[str, ...],
    opset: int,
    metrics: dict[str, Any],
    provenance: dict[str, Any],
    name: str | None = None,
) -> Manifest:
    """A validated Manifest for `onnx_path` (sha256 computed from the file)."""
    data = Manifest(
        model_file=onnx_path.name,
        fusion=config.fusion,
        labels=tuple(labels),
        inputs=input_specs(config, audio, video),
        outputs=output_specs(config, labels),
        name=name or f"avfuse-{config.name}",
        sha256=file_sha256(onnx_path),
        opset=opset,
        metrics=metrics,
        provenance={
            "git_commit": git_commit(),
            "exported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **versions(),
            **provenance,
        },
    ).to_dict()
    # round trip through the parser: the same validation the runtime applies
    return Manifest.from_dict(data, path=(onnx_path.parent / MANIFEST_NAME).resolve())


def write_manifest(manifest: Manifest, out_dir: str | Path) -> Path:
    """Save beside the model as manifest.json."""
    return manifest.save(Path(out_dir) / MANIFEST_NAME)
