"""Export the content sync model: torch -> ONNX -> check -> parity -> manifest.

The model has two inputs with their own batch sizes (`vbatch` frame stacks, `abatch`
audio windows) and two outputs of kind `embedding`, so it does not fit the engine's
classifier manifests; its manifest (format "avfuse-content-sync") records the feature
constants the run-time monitor must compute inputs with, the file's sha256 and the parity
figures. Nothing is written as the manifest unless ONNX Runtime reproduces torch on real
inputs within `ATOL`.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from avfuse.engine import content_features as cf
from avfuse.errors import ExportError
from avfuse.manifest import file_sha256

FORMAT = "avfuse-content-sync"
ATOL = 1e-4


def feature_constants() -> dict[str, Any]:
    """The feature settings a model was trained with (the monitor checks them at load)."""
    return {
        "frame_size": cf.FRAME_SIZE,
        "stack": cf.STACK,
        "n_mels": cf.N_MELS,
        "audio_cols": cf.AUDIO_COLS,
        "hop_s": cf.HOP_S,
        "win_s": cf.WIN_S,
    }


def to_onnx(model: Any, path: Path) -> Path:
    """Write `model` (eval mode) as one ONNX file with dynamic `vbatch` and `abatch`."""
    import torch

    video = torch.zeros(2, cf.STACK, cf.FRAME_SIZE, cf.FRAME_SIZE)
    audio = torch.zeros(3, cf.N_MELS, cf.AUDIO_COLS)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model.eval(),
            (video, audio),
            str(path),
            dynamo=False,
            input_names=["video", "audio"],
            output_names=["video_embedding", "audio_embedding"],
            dynamic_axes={
                "video": {0: "vbatch"},
                "audio": {0: "abatch"},
                "video_embedding": {0: "vbatch"},
                "audio_embedding": {0: "abatch"},
            },
            opset_version=17,
        )
    return path


def parity(model: Any, path: Path, video: np.ndarray, audio: np.ndarray) -> float:
    """Largest |torch - ONNX Runtime| over both embeddings of the given inputs."""
    import onnxruntime as ort
    import torch

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"video": video, "audio": audio})
    with torch.no_grad():
        ref = model(torch.from_numpy(video), torch.from_numpy(audio))
    return max(float(np.abs(g - r.numpy()).max()) for g, r in zip(got, ref, strict=True))


def export_content_sync(
    model: Any,
    out_dir: str | Path,
    *,
    video: np.ndarray,
    audio: np.ndarray,
    info: dict[str, Any] | None = None,
) -> Path:
    """Export, check and gate; returns the manifest path (beside model.onnx).

    Args:
        model: the trained torch module.
        out_dir: folder for model.onnx and manifest.json.
        video, audio: real inputs for the parity gate (frame stacks, audio windows).
        info: training figures and settings recorded in the manifest.

    Raises:
        ExportError: when ONNX Runtime differs from torch by more than `ATOL`.
    """
    import onnx

    out = Path(out_dir)
    path = to_onnx(model, out / "model.onnx")
    onnx.checker.check_model(onnx.load(str(path)))
    err = parity(model, path, video.astype(np.float32), audio.astype(np.float32))
    if not err <= ATOL:
        raise ExportError(
            f"content sync export: ONNX Runtime differs from torch by {err:.2e} (> {ATOL}): "
            "check the torch and onnx versions"
        )
    manifest = {
        "format": FORMAT,
        "version": 1,
        "model": {"file": path.name, "sha256": file_sha256(path), "opset": 17},
        "inputs": [
            {
                "name": "video",
                "shape": ["vbatch", cf.STACK, cf.FRAME_SIZE, cf.FRAME_SIZE],
                "dtype": "float32",
                "role": "video",
            },
            {
                "name": "audio",
                "shape": ["abatch", cf.N_MELS, cf.AUDIO_COLS],
                "dtype": "float32",
                "role": "audio",
            },
        ],
        "outputs": [
            {"name": "video_embedding", "shape": ["vbatch", 32], "kind": "embedding"},
            {"name": "audio_embedding", "shape": ["abatch", 32], "kind": "embedding"},
        ],
        "features": feature_constants(),
        "parity": {"max_abs_error": err, "atol": ATOL, "samples": int(video.shape[0])},
        "training": info or {},
    }
    mpath = out / "manifest.json"
    mpath.write_text(json.dumps(manifest, indent=2) + "\n")
    return mpath


__all__ = ["ATOL", "FORMAT", "export_content_sync", "feature_constants", "parity", "to_onnx"]
