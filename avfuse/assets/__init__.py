"""Bundled assets: the default model and pre-rendered demo material.

model/model.onnx + model/manifest.json   the default fused model
demo/                                    digit cards and utterances for the synthetic
                                         scene, so the demo needs no espeak-ng
"""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent


def default_model_path() -> Path:
    """Manifest of the bundled default model."""
    return ASSETS / "model" / "manifest.json"


def embedding_model_path() -> Path:
    """Manifest of the bundled shared-embedding model (zoo member embed: late fusion with
    per-modality heads and embeddings, for the agreement check and retrieval)."""
    return ASSETS / "embed" / "manifest.json"


def demo_assets_dir() -> Path:
    """Folder of pre-rendered demo cards and utterances."""
    return ASSETS / "demo"
