"""Optional step 3 of export: simplify the graph with onnxslim (constant folding, fusion).

Slimming must not change what the graph computes; the parity gate that runs
afterwards is what proves it. Skipped with a reason when onnxslim is missing.
"""

from __future__ import annotations

from pathlib import Path

from avfuse.errors import ExportError


def slim_onnx(path: str | Path) -> str | None:
    """Slim the ONNX file in place.

    Returns:
        the onnxslim version used, or None when onnxslim is not installed.

    Raises:
        ExportError: onnxslim ran and failed.
    """
    try:
        import onnxslim
    except ImportError:
        return None
    import onnx

    try:
        slim = onnxslim.slim(onnx.load(str(path)))
        onnx.save(slim, str(path))
    except Exception as e:
        raise ExportError(
            f"onnxslim failed on {Path(path).name}: {str(e).splitlines()[0]}; export with --no-slim"
        ) from e
    return str(getattr(onnxslim, "__version__", "unknown"))
