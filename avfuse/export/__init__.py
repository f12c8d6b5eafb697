"""Export: a chain of small steps from a training checkpoint to a runnable model folder.

    onnx_export.to_onnx      torch -> ONNX (dynamo exporter, legacy fallback), dynamic batch
    check.check_onnx         onnx.checker + a dynamic batch axis
    slim.slim_onnx           optional onnxslim pass
    parity.check_parity      ONNX Runtime vs torch on held-out inputs (ParityError past tol.)
    manifest_step            manifest.json beside model.onnx
    pipeline.export_model    all of the above, plus checkpoint.pt beside the model

Importing this package does not import torch; the steps do, when called.
"""

from __future__ import annotations

from typing import Any

__all__ = ["export_model"]


def export_model(checkpoint: Any, out_dir: Any, **kwargs: Any) -> Any:
    """See `avfuse.export.pipeline.export_model`."""
    from avfuse.export.pipeline import export_model as run

    return run(checkpoint, out_dir, **kwargs)
