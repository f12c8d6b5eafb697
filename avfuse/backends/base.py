"""The Backend template: public load/infer/close check state and inputs; runtimes write `_impl`s.

A backend runs one exported model. Subclasses implement `_load`, `_infer` and
`_close` only; this base checks that the model is loaded, that every feed has the
right name, dtype and shape, times each call (`last_infer_ms`), adds the model's
`const` inputs, and carries recurrent state for stateful models per stream, the way
Triton's sequence batcher does: a state output of one call is the state input of the
next call of the same stream, stacked along the state's own batch axis (e.g. axis 1
of [2, batch, 128]), and a stream's state starts again from its initial value after
a gap (`reset_state`). A `_load` that reads the graph replaces `self.manifest` with
the manifest completed from it (`avfuse.manifest.resolve`).

Output buffers: a backend that writes each call's outputs into buffers it keeps (IO
binding) sets `reuses_outputs`; the arrays `infer` returns are then overwritten by the
next call. Callers that keep results across calls get copies by default; the engine,
which copies what it keeps, passes `borrow=True` and reads the buffers themselves.

Device feeds: a backend whose runtime reads CUDA memory (`device_inputs`) also takes
`DeviceTensor`s (or objects with `__cuda_array_interface__`) as feeds, checked like
numpy arrays, so pre-processing that ran on the GPU is not copied back to the host.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from avfuse.backends.device import DeviceTensor, on_device
from avfuse.errors import BackendError, ModelError, UsageError
from avfuse.manifest import Manifest, TensorSpec

_NP_DTYPES = {
    "float32": np.float32,
    "float16": np.float16,
    "float64": np.float64,
    "int64": np.int64,
    "int32": np.int32,
    "int16": np.int16,
    "int8": np.int8,
    "uint8": np.uint8,
    "bool": np.bool_,
}


def np_dtype(name: str | None) -> type:
    """The numpy type of a manifest dtype (float32 when unknown)."""
    return _NP_DTYPES.get(name or "float32", np.float32)


#: ONNX Runtime execution providers by the short names the CLI and the API take
PROVIDERS = ("cpu", "cuda", "tensorrt")


@dataclass(frozen=True, kw_only=True)
class BackendOptions:
    """Options every backend understands; runtime-specific ones go in `extra`.

    Attributes:
        device: "cpu" or "cuda[:N]".
        threads: intra-op threads (0: the backend's default; for ONNX Runtime half the
            usable cores, 1 to 4: `avfuse.backends.ort.auto_threads`).
        optimization: graph optimisation level: "disable", "basic", "extended", "all".
        precision: "fp32", "fp16" or "int8" where the backend supports it.
        provider: ONNX Runtime's execution provider, "cpu", "cuda" or "tensorrt" (None:
            from the device); other backends refuse one.
        extra: backend-specific settings, validated by that backend.
    """

    device: str = "cpu"
    threads: int = 0
    optimization: str = "all"
    precision: str = "fp32"
    provider: str | None = None
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
        if self.provider is not None and self.provider not in PROVIDERS:
            raise UsageError(f"provider must be one of {', '.join(PROVIDERS)}")
        if self.provider == "cpu" and self.device != "cpu":
            raise UsageError(f"--provider cpu contradicts --device {self.device}: drop one of them")

    @property
    def device_index(self) -> int:
        """The CUDA device index of "cuda:N" (0 for "cuda"; 0 on the CPU)."""
        return int(self.device.split(":")[1]) if ":" in self.device else 0


class Backend(ABC):
    """Runs one model. Use as a context manager or call load()/close()."""

    #: registry name ("ort", "torch", ...)
    name: ClassVar[str] = ""

    def __init__(self, *, options: BackendOptions | None = None) -> None:
        self.options = options or BackendOptions()
        if self.options.provider is not None and self.name != "ort":
            raise UsageError(f"--provider applies to --backend ort only, not {self.name}: drop it")
        self.manifest: Manifest | None = None
        self.last_infer_ms: float = 0.0
        #: the arrays `_infer` returns are kept and overwritten by the next call
        self.reuses_outputs = False
        #: `_infer` takes feeds in CUDA memory (DeviceTensor)
        self.device_inputs = False
        self._loaded = False
        self._state: dict[Any, dict[str, np.ndarray]] = {}
        self._specs: dict[str, TensorSpec] = {}
        self._consts: dict[str, np.ndarray] = {}
        self._const_rows: dict[tuple[str, int], np.ndarray] = {}

    # ------------------------------------------------------------------ public
    def load(self, manifest: Manifest) -> Backend:
        """Load the manifest's model; checks the runtime's view of the graph against it."""
        if self._loaded:
            raise BackendError(f"{self.name} backend is already loaded; close() it first")
        path = manifest.model_path
        if not path.exists():
            raise ModelError(f"model file {path} does not exist; re-export or pass --model")
        self.manifest = manifest
        self._load(manifest)  # may replace self.manifest with the graph-completed one
        m = self.manifest
        self._specs = {s.name: s for s in m.inputs}
        self._consts = {
            s.name: np.asarray(s.value, dtype=np_dtype(s.dtype))
            for s in m.inputs
            if s.modality == "const"
        }
        self._loaded = True
        return self

    def infer(
        self,
        feeds: Mapping[str, Any],
        *,
        streams: Sequence[Any] | None = None,
        borrow: bool = False,
    ) -> dict[str, np.ndarray]:
        """Run one batch.

        Args:
            feeds: input name -> array for every non-state input (a numpy array, or a
                device tensor where the backend takes them: `device_inputs`).
            streams: for stateful models, the stream id of each batch row; their carried
                state is fed in and updated from the outputs. Ignored for stateless models.
            borrow: take the backend's own output buffers, which the next call overwrites
                (no copy); by default a backend that reuses them returns copies.

        Returns:
            output name -> array (state outputs included).
        """
        m = self._require_loaded()
        full = {
            k: v if isinstance(v, np.ndarray) else self._device_feed(k, v) for k, v in feeds.items()
        }
        batch = self._check_feeds(m, full)
        for name, value in self._consts.items():
            spec = self._specs[name]
            full[name] = value if spec.batch_axis is None else self._batched(name, spec, batch)
        ids: list[Any] = []
        if m.state:
            ids = list(streams) if streams is not None else [None] * batch
            if len(ids) != batch:
                raise UsageError(f"{len(ids)} stream ids for a batch of {batch}")
            for pair in m.state:
                spec = self._specs[pair.input]
                rows = [self._state_for(sid, spec) for sid in ids]
                full[pair.input] = np.stack(rows, axis=spec.batch_axis or 0)
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
                ax = self._specs[pair.input].batch_axis or 0
                new = out[pair.output]
                for row, sid in enumerate(ids):
                    self._state.setdefault(sid, {})[pair.input] = np.take(new, row, axis=ax).copy()
        if self.reuses_outputs and not borrow:
            return {k: v.copy() for k, v in out.items()}
        return out

    def host_buffer(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """A zeroed host array for feeds refilled every call (the engine's batch buffers).

        Backends that copy feeds to a GPU return page-locked memory here, so that copy
        is one DMA transfer; the default is an ordinary numpy array.
        """
        return np.zeros(shape, dtype)

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
        self._const_rows.clear()

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

    def _device_feed(self, name: str, value: Any) -> DeviceTensor:
        """A feed that is not a numpy array: a device tensor, where this backend takes one."""
        if not on_device(value):
            raise UsageError(
                f"input {name!r} must be a numpy array or a device tensor, "
                f"got {type(value).__name__}"
            )
        if not self.device_inputs:
            raise UsageError(
                f"input {name!r} is in CUDA memory but the {self.name} backend on "
                f"{self.options.device} reads host arrays: pass a numpy array, or run on "
                "--device cuda"
            )
        return DeviceTensor.wrap(value)

    def _check_feeds(self, m: Manifest, feeds: dict[str, Any]) -> int:
        want = [s for s in m.inputs if s.modality not in ("state", "const")]  # fed per call
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
            if a.dtype != np_dtype(s.dtype):
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
            shape = spec.shape or ()
            ax = spec.batch_axis or 0
            one = tuple(d if isinstance(d, int) else 1 for i, d in enumerate(shape) if i != ax)
            st = np.full(one, spec.init, dtype=np_dtype(spec.dtype))
        return st

    def _batched(self, name: str, spec: TensorSpec, batch: int) -> np.ndarray:
        """A const input repeated along its batch axis, made once per batch size (so its
        address stays the same and a bound input need not be rebound)."""
        key = (name, batch)
        rows = self._const_rows.get(key)
        if rows is None:
            ax = spec.batch_axis or 0
            rows = np.repeat(np.expand_dims(self._consts[name], ax), batch, axis=ax)
            self._const_rows[key] = rows
        return rows
