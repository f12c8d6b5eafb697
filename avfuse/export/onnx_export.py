"""Step 1 of export: torch module -> ONNX file with a dynamic batch axis.

The dynamo exporter (`torch.onnx.export(..., dynamo=True)`) is tried first,
with one shared ``Dim("batch")`` across inputs; if it fails, the legacy
TorchScript exporter is used instead. Which one ran and the opset are returned
(and recorded in the manifest's provenance), never hidden.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avfuse.errors import ExportError
from avfuse.models.zoo import ModelConfig

OUTPUT_NAME = "logits"
DEFAULT_OPSET = 20


@dataclass(frozen=True, kw_only=True)
class OnnxExport:
    """Result of `to_onnx`.

    Attributes:
        path: the written ONNX file.
        opset: the default-domain opset of the graph.
        exporter: "dynamo" or "legacy".
        fallback_reason: why the dynamo exporter was not used (None when it was).
    """

    path: Path
    opset: int
    exporter: str
    fallback_reason: str | None = None


def example_inputs(config: ModelConfig, batch: int = 2) -> tuple[Any, ...]:
    """Random example inputs in `config.inputs` order (batch > 1 so it stays dynamic)."""
    import torch

    g = torch.Generator().manual_seed(0)
    shapes = {
        "audio": (batch, config.n_mels, config.n_frames),
        "image": (batch, config.channels, config.height, config.width),
    }
    out = []
    for name in config.inputs:
        out.append(
            torch.ones(batch, 2) if name == "mask" else torch.randn(shapes[name], generator=g)
        )
    return tuple(out)


def export_module(model: Any, config: ModelConfig) -> Any:
    """The module to trace: `model`, or for a member with several outputs a wrapper whose
    forward returns them all (`config.outputs`, in order).

    The wrapper's forward names its arguments as the graph inputs are named, because the
    dynamo exporter matches its dynamic shapes by argument name.
    """
    if len(config.outputs) == 1:
        return model
    if config.inputs != ("audio", "image", "mask"):
        raise ExportError(
            f"a model with several outputs takes audio, image and mask, not {config.inputs}"
        )
    import torch

    class _AllOutputs(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, audio: Any, image: Any, mask: Any) -> Any:
            return self.inner.outputs(audio, image, mask)

    return _AllOutputs(model).eval()


def opset_of(path: str | Path) -> int:
    """The default-domain opset version of an ONNX file."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def to_onnx(
    model: Any,
    config: ModelConfig,
    path: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    prefer_dynamo: bool = True,
) -> OnnxExport:
    """Export `model` (eval mode, CPU) to a single self-contained ONNX file.

    Raises:
        ExportError: when both exporters fail (the message has both causes).
    """
    import logging

    import torch

    # the dynamo exporter warns about every torchvision op it cannot register; not ours
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = export_module(model.cpu().eval(), config)
    args = example_inputs(config)
    names = list(config.inputs)
    out_names = list(config.outputs)
    reason = None
    if prefer_dynamo:
        try:
            batch = torch.export.Dim("batch", min=1, max=4096)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                program = torch.onnx.export(
                    model,
                    args,
                    dynamo=True,
                    input_names=names,
                    output_names=out_names,
                    dynamic_shapes={n: {0: batch} for n in names},
                    opset_version=opset,
                    external_data=False,
                    verbose=False,
                )
            program.save(str(path), external_data=False)
            return OnnxExport(path=path, opset=opset_of(path), exporter="dynamo")
        except Exception as e:  # any dynamo failure: fall back, and say why
            reason = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                args,
                str(path),
                dynamo=False,
                input_names=names,
                output_names=out_names,
                dynamic_axes={n: {0: "batch"} for n in [*names, *out_names]},
                opset_version=min(opset, 20),
            )
    except Exception as e:
        raise ExportError(
            f"ONNX export failed with both exporters (dynamo: {reason}; legacy: {e}); "
            "check the torch and onnxscript versions (pip install 'avfuse[export]')"
        ) from e
    return OnnxExport(path=path, opset=opset_of(path), exporter="legacy", fallback_reason=reason)
