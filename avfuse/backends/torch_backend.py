"""PyTorch eager backend: runs the zoo model from the checkpoint.pt exported beside model.onnx.

On a GPU it takes feeds in CUDA memory as they are (`DeviceTensor`s or CUDA tensors):
pre-processing that ran on the GPU reaches the model without a host round trip.

It answers "what does ONNX Runtime buy us over eager torch" side by side with
the same manifest and feeds. torch is imported inside `_load`, never at module
import, so the runtime stays torch-free unless this backend is asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from avfuse.backends.base import Backend
from avfuse.errors import BackendError, BackendUnavailable, ModelError
from avfuse.manifest import Manifest

CHECKPOINT_NAME = "checkpoint.pt"
_INSTALL = "pip install 'avfuse[train]'"


def _torch() -> Any:
    try:
        import torch
    except ImportError as e:
        raise BackendUnavailable(f"the torch backend needs PyTorch: {_INSTALL}") from e
    return torch


class TorchBackend(Backend):
    """`torch`: the checkpoint's model in eval mode under `torch.inference_mode`, cpu or cuda.

    Extra options (``BackendOptions.extra``):
        checkpoint: path of the checkpoint (default: checkpoint.pt beside the model file).
    """

    name = "torch"

    def _load(self, manifest: Manifest) -> None:
        torch = _torch()
        from avfuse.models.checkpoint import load_model

        default = manifest.model_path.parent / CHECKPOINT_NAME
        ckpt = Path(self.options.extra.get("checkpoint") or default)
        if not ckpt.exists():
            raise ModelError(
                f"the torch backend needs {CHECKPOINT_NAME} beside {manifest.model_path.name} "
                f"(looked for {ckpt}); export with `avfuse export`, which writes it"
            )
        if self.options.device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendUnavailable(
                f"device {self.options.device} needs a CUDA build of torch and a GPU; "
                "use --device cpu or install a CUDA torch"
            )
        if self.options.threads > 0 and self.options.device == "cpu":
            torch.set_num_threads(self.options.threads)
        model, blob = load_model(ckpt, device=self.options.device)
        names = model_inputs(blob)
        graph = [s.name for s in manifest.inputs]  # state inputs too: forward() takes them
        if sorted(names) != sorted(graph):
            raise ModelError(
                f"{ckpt.name} takes inputs {names} but the manifest lists {graph}; "
                "re-export the model so both come from one checkpoint"
            )
        self._torch = torch
        self._model = model
        self._names = names
        self._outputs = [o.name for o in manifest.outputs]
        # on a GPU, feeds already in CUDA memory (DeviceTensor, e.g. written by the CUDA
        # pre-processing kernels) are wrapped where they are, not copied
        self.device_inputs = self.options.device.startswith("cuda")

    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every output of forward() (a tensor, a tuple/list in manifest order, or a dict)."""
        torch = self._torch
        dev = self.options.device
        with torch.inference_mode():
            args = [self._tensor(feeds[n], dev) for n in self._names]
            out = self._model(*args)
            if dev != "cpu":
                torch.cuda.synchronize()
        if isinstance(out, dict):
            missing = [n for n in self._outputs if n not in out]
            if missing:
                raise BackendError(f"the torch model returned no output named {missing}")
            return {n: out[n].cpu().numpy() for n in self._outputs}
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        if len(outs) != len(self._outputs):
            raise BackendError(
                f"the torch model returned {len(outs)} outputs but the manifest lists "
                f"{len(self._outputs)} ({self._outputs}); re-export the model"
            )
        return {n: t.cpu().numpy() for n, t in zip(self._outputs, outs, strict=True)}

    def _tensor(self, value: Any, dev: str) -> Any:
        """A feed as a tensor on `dev`: host arrays are copied there once, device tensors
        are wrapped in place (`__cuda_array_interface__`, no copy)."""
        torch = self._torch
        if isinstance(value, np.ndarray):
            return torch.from_numpy(np.ascontiguousarray(value)).to(dev)
        return torch.as_tensor(value, device=dev)

    def _close(self) -> None:
        self._model = None


def model_inputs(blob: dict[str, Any]) -> list[str]:
    """Forward() input names of a checkpoint's model."""
    from avfuse.models.checkpoint import model_config_of

    return list(model_config_of(blob).inputs)
