"""The Backend template: public load/infer/close check state and inputs; runtimes write `_impl`s.

A backend runs one exported model. Subclasses implement `_load`, `_infer` and
`_close` only; this base checks that the model is loaded, that every feed has the
right name, dtype and shape, times each call (`last_infer_ms`), and carries
recurrent state for stateful models per stream, the way Triton's sequence batcher
does: a state output of one call is the state input of the next call of the same
stream, and a stream's state is reset to zeros after a gap (`reset_state`).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from avfuse.errors import BackendError, ModelError, UsageError
from avfuse.manifest import Manifest, TensorSpec

_NP_DTYPES = {
    "float32": np.float32,
    "float16": np.float16,
    "int64": np.int64,
    "int32": np.int32,
    "uint8": np.uint8,
    "bool": np.bool_,
}


@dataclass(frozen=True, kw_only=True)
class BackendOptions:
    """Options every backend understands; runtime-specific ones go in `extra`.

    Attributes:
        device: "cpu" or "cuda[:N]".
        threads: intra-op threads (0 lets the runtime decide).
        optimization: graph optimisation level: "disable", "basic", "extended", "all".
        precision: "fp32", "fp16" or "int8" where the backend supports it.
        extra: backend-specific settings, validated by that backend.
    """

    device: str = "cpu"
    threads: int = 0
    optimization: str = "all"
    precision: str = "fp32"
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise UsageError(f"unknown device {self.device!r}; use 'cpu' or 'cuda[:N]'")
        if self.threads < 0:
            raise UsageError("threads must be >= 0 (0: let the runtime decide)")
        if self.optimization not in ("disable", "basic", "extended", "all"):
            raise UsageError("optimization must be disable, basic, extended or all")
        if self.precision not in ("fp32", "fp16", "int8"):
            raise UsageError("precision must be fp32, fp16 or int8")


class Backend(ABC):
    """Runs one model. Use as a context manager or call load()/close()."""

    #: registry name ("ort", "torch", ...)
    name: ClassVar[str] = ""

    def __init__(self, *, options: BackendOptions | None = None) -> None:
        self.options = options or BackendOptions()
        self.manifest: Manifest | None = None
        self.last_infer_ms: float = 0.0
        self._loaded = False
        self._state: dict[Any, dict[str, np.ndarray]] = {}

    # ------------------------------------------------------------------ public
    def load(self, manifest: Manifest) -> Backend:
        """Load the manifest's model; checks the runtime's view of the graph against it."""
        if self._loaded:
            raise BackendError(f"{self.name} backend is already loaded; close() it first")
        path = manifest.model_path
        if not path.exists():
            raise ModelError(f"model file {path} does not exist; re-export or pass --model")
        self.manifest = manifest
        self._load(manifest)
        self._loaded = True
        return self

    def infer(
        self, feeds: Mapping[str, np.ndarray], *, streams: Sequence[Any] | None = None
    ) -> dict[str, np.ndarray]:
        """Run one batch.

        Args:
            feeds: input name -> array for every non-state input.
            streams: for stateful models, the stream id of each batch row; their carried
                state is fed in and updated from the outputs. Ignored for stateless models.

        Returns:
            output name -> array (state outputs included).
        """
        m = self._require_loaded()
        full = dict(feeds)
        batch = self._check_feeds(m, full)
        if m.state:
            ids = list(streams) if streams is not None else [None] * batch
            if len(ids) != batch:
                raise UsageError(f"{len(ids)} stream ids for a batch of {batch}")
            for pair in m.state:
                spec = next(s for s in m.inputs if s.name == pair.input)
                full[pair.input] = np.stack([self._state_for(sid, spec) for sid in ids])
        t0 = time.perf_counter_ns()
        try:
            out = self._infer(full)
        except (BackendError, UsageError):
            raise
        except Exception as e:  # runtime-native errors become one type, with the cause kept
            raise BackendError(f"{self.name} inference failed: {e}") from e
        self.last_infer_ms = (time.perf_counter_ns() - t0) / 1e6
        if m.state:
            for pair in m.state:
                for row, sid in enumerate(ids):
                    self._state.setdefault(sid, {})[pair.input] = out[pair.output][row].copy()
        return out

    def reset_state(self, stream: Any = None) -> None:
        """Forget a stream's recurrent state (after a gap); `None` with no streams: all."""
        if stream is None:
            self._state.clear()
        else:
            self._state.pop(stream, None)

    def close(self) -> None:
        """Release the runtime's resources; safe to call twice."""
        if self._loaded:
            self._close()
        self._loaded = False
        self._state.clear()

    @property
    def input_specs(self) -> tuple[TensorSpec, ...]:
        """The loaded model's input specs (from the manifest)."""
        return self._require_loaded().inputs

    @property
    def output_specs(self) -> tuple[TensorSpec, ...]:
        """The loaded model's output specs (from the manifest)."""
        return self._require_loaded().outputs

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ for subclasses
    @abstractmethod
    def _load(self, manifest: Manifest) -> None: ...

    @abstractmethod
    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def _close(self) -> None:  # noqa: B027 - optional hook
        pass

    # ------------------------------------------------------------------ internals
    def _require_loaded(self) -> Manifest:
        if not self._loaded or self.manifest is None:
            raise BackendError(f"{self.name} backend is not loaded; call load(manifest) first")
        return self.manifest

    def _check_feeds(self, m: Manifest, feeds: dict[str, np.ndarray]) -> int:
        state_inputs = {p.input for p in m.state}
        want = [s for s in m.inputs if s.name not in state_inputs]
        missing = [s.name for s in want if s.name not in feeds]
        extra = [k for k in feeds if k not in {s.name for s in want}]
        if missing or extra:
            raise UsageError(
                f"feeds must be exactly {[s.name for s in want]}; "
                f"missing {missing}, unexpected {extra}"
            )
        batch = None
        for s in want:
            a = feeds[s.name]
            if a.dtype != _NP_DTYPES[s.dtype]:
                raise UsageError(f"input {s.name!r} must be {s.dtype}, got {a.dtype}")
            if a.ndim != len(s.shape):
                raise UsageError(f"input {s.name!r} must have rank {len(s.shape)}, got {a.shape}")
            for d, (want_d, got) in enumerate(zip(s.shape, a.shape, strict=True)):
                if isinstance(want_d, int) and want_d != got:
                    raise UsageError(f"input {s.name!r} dim {d} must be {want_d}, got {got}")
            batch = a.shape[0] if batch is None else batch
            if a.shape[0] != batch:
                raise UsageError("all inputs must have the same batch size")
        return int(batch or 0)

    def _state_for(self, stream: Any, spec: TensorSpec) -> np.ndarray:
        st = self._state.get(stream, {}).get(spec.name)
        if st is None:
            shape = tuple(d if isinstance(d, int) else 1 for d in spec.shape[1:])
            st = np.zeros(shape, dtype=_NP_DTYPES[spec.dtype])
        return st
