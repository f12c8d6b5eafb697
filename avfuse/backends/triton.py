"""`triton` backend: the model runs in a Triton Inference Server, reached over gRPC or HTTP.

An edge node keeps capture, alignment, pre-processing, state and decisions, and sends
each batch to the server (`avfuse export --triton` makes the repository, `avfuse serve`
runs a local server). The manifest stays the contract: at load the backend reads the
server's config of the model and refuses one that contradicts the manifest (tensor
names, dtypes, dims, batch limit, the ONNX file's SHA-256), so a client never feeds a
server model it does not describe. Recurrent state is carried here, per stream, by the
Backend base; the server keeps nothing between requests.

At load an unreachable server is a `UsageError` (exit 2 from `avfuse run`), a missing
model or a contradicting config a `ModelError`. While running, a request that fails
transiently is retried with back-off; when the retries are spent it is a
`BackendError`, which the pipeline reports as a fault and survives (the batch is
dropped; three in a row end the run). The number of requests at the server at once is
bounded (`in_flight`); `last_request_ms` is the round trip of the last request and
`request_ms` keeps the recent ones. Settings: `avfuse.backends.triton_client`.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from typing import Any

import numpy as np

from avfuse.backends.base import Backend, np_dtype
from avfuse.backends.triton_client import (
    Transport,
    TritonSettings,
    is_transient,
    one_line,
    shm_lost,
)
from avfuse.backends.triton_shm import ShmSlot
from avfuse.errors import AvfuseError, BackendError, ManifestError, ModelError, UsageError
from avfuse.export.triton_config import CONFIG_TYPES, WireLayout, WireTensor, wire_layout
from avfuse.manifest import Manifest, file_sha256, resolve

#: the longest pause between retries
MAX_BACKOFF_S = 1.0
#: round trips kept for `request_ms`
KEEP_LATENCIES = 4096
_MANIFEST_TYPES = {v: k for k, v in CONFIG_TYPES.items()}
_VARIANT_SUFFIXES = ("", "_python", "_plan")


class TritonBackend(Backend):
    """`triton`: inference in a Triton Inference Server (options: `TritonSettings`)."""

    name = "triton"

    # ------------------------------------------------------------------ load
    def _load(self, manifest: Manifest) -> None:
        if self.options.device != "cpu" or self.options.threads:
            raise UsageError(
                "the Triton server decides devices and threads (instance_group, set by "
                "`avfuse export --triton --gpu/--instances`): drop --device and --threads"
            )
        s = TritonSettings.from_options(self.options.extra)
        self.settings = s
        self.transport = Transport(s)
        self.request_ms: deque[float] = deque(maxlen=KEEP_LATENCIES)
        self.last_request_ms = 0.0
        self.retried = 0
        try:
            self._connect(s)
            self.model_name = self._pick_model(s, manifest)
            config = self.transport.config(self.model_name)
            self._check_hash(manifest, config)
            self.manifest = self._resolve(manifest, config)
            self.layout = self._check_layout(self.manifest, config)
        except AvfuseError:
            self.transport.close()
            raise
        except Exception as e:  # the server went away between the calls above
            self.transport.close()
            raise BackendError(f"triton: loading from {s.url} failed: {one_line(e)}") from e
        self._outputs = [o.name for o in self.manifest.outputs]
        self._wire = {t.name: t for t in (*self.layout.inputs, *self.layout.outputs)}
        self._np_types = {o.name: np_dtype(o.dtype) for o in self.manifest.outputs}
        self._stats_lock = threading.Lock()
        self._slots: queue.Queue[ShmSlot | None] = queue.Queue()
        for i in range(s.in_flight):
            self._slots.put(ShmSlot(f"avfuse_{id(self):x}_{i}") if s.shm == "system" else None)
        # a gRPC client is thread-safe and shared; an HTTP client (gevent) works only on
        # the thread that made it, so each calling thread gets its own
        self._local = threading.local()
        self._local.transport = self.transport
        self._transports = [self.transport]

    def _connect(self, s: TritonSettings) -> None:
        why = ""
        delay = s.backoff_ms / 1000
        for attempt in range(s.retries + 1):
            try:
                if self.transport.live():
                    return
                why = "the server is not live"
            except Exception as e:
                why = one_line(e)
            if attempt < s.retries:
                time.sleep(delay)
                delay = min(2 * delay, MAX_BACKOFF_S)
        raise UsageError(
            f"cannot reach the Triton server at {s.url} ({why}): start one with "
            "`avfuse serve REPO`, or point --triton-url at a running server"
        )

    def _pick_model(self, s: TritonSettings, m: Manifest) -> str:
        index = self.transport.index()
        ready = [x["name"] for x in index if str(x.get("state", "")).upper() == "READY"]
        listed = sorted({x["name"] for x in index})
        if s.model is not None:
            if s.model not in ready:
                state = "not ready" if s.model in listed else "not in its repository"
                raise ModelError(
                    f"the Triton server at {s.url} has model {s.model!r} {state} (ready: "
                    f"{sorted(ready)}): load it, or name another with model=NAME"
                )
            return s.model
        for suffix in _VARIANT_SUFFIXES:
            if m.name + suffix in ready:
                return m.name + suffix
        raise ModelError(
            f"the Triton server at {s.url} serves no ready model for {m.name!r} (ready: "
            f"{sorted(ready)}; in its repository: {listed}): export it with `avfuse export "
            f"--triton REPO MODEL` and serve REPO, or name the model with model=NAME"
        )

    def _check_hash(self, m: Manifest, config: dict[str, Any]) -> None:
        served = config.get("parameters", {}).get("avfuse_model_sha256", {}).get("string_value")
        if not served:
            return  # a repository not written by avfuse: the layout check still applies
        ours = m.sha256 or file_sha256(m.model_path)
        if served != ours:
            raise ModelError(
                f"the server's {self.model_name!r} runs a different ONNX file (SHA-256 "
                f"{served[:12]}...) than the manifest's {m.model_path.name} ({ours[:12]}...): "
                "re-export the repository from this model, or use the manifest beside the "
                "served model's config.pbtxt"
            )

    def _resolve(self, m: Manifest, config: dict[str, Any]) -> Manifest:
        """The manifest completed from the server's tensors (as ORT does from the graph)."""
        batch = int(config.get("max_batch_size", 0)) > 0

        def graph(tensors: list[dict[str, Any]]) -> dict[str, tuple[list[int], str | None]]:
            out = {}
            for t in tensors:
                dims = [int(d) for d in t.get("dims", [])]
                if "reshape" in t:
                    dims = [int(d) for d in t["reshape"].get("shape", [])]
                out[t["name"]] = (([-1] if batch else []) + dims,
                                  _MANIFEST_TYPES.get(t.get("data_type", "")))  # fmt: skip
            return out

        try:
            return resolve(m, graph(config.get("input", [])), graph(config.get("output", [])))
        except ManifestError as e:
            raise ModelError(
                f"the server's config of {self.model_name!r} contradicts the manifest: "
                f"{str(e).replace('the graph', 'the server')}"
            ) from None

    def _check_layout(self, m: Manifest, config: dict[str, Any]) -> WireLayout:
        limit = int(config.get("max_batch_size", 0))
        want = wire_layout(m, max_batch=max(limit, 1))
        where = f"the server's config of {self.model_name!r}"
        if (limit > 0) != want.batched or (want.batched and want.max_batch_size != limit):
            raise ModelError(
                f"{where} has max_batch_size {limit}, but the manifest's tensors "
                f"{'batch on axis 0' if want.batched else 'cannot be batched by Triton'}: "
                "re-export the repository with `avfuse export --triton`"
            )
        served = {t["name"]: t for t in [*config.get("input", []), *config.get("output", [])]}
        for t in (*want.inputs, *want.outputs):
            got = served.get(t.name)
            dims = tuple(int(d) for d in got.get("dims", [])) if got else ()
            if got is None or got.get("data_type") != t.data_type or dims != t.dims:
                have = "nothing" if got is None else f"{got.get('data_type')} {list(dims)}"
                raise ModelError(
                    f"{where} declares {t.name!r} as {have}, the manifest as {t.data_type} "
                    f"{list(t.dims)}: re-export the repository with `avfuse export --triton`"
                )
        return want

    # ------------------------------------------------------------------ infer
    def _infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = self._rows(feeds)
        limit = self.layout.max_batch_size
        if not self.layout.batched or n <= limit:
            return self._request(feeds, n)
        parts = [
            self._request({k: v[i : i + limit] for k, v in feeds.items()}, min(limit, n - i))
            for i in range(0, n, limit)
        ]  # the server takes at most max_batch_size rows per request
        return {k: np.concatenate([p[k] for p in parts]) for k in self._outputs}

    def _rows(self, feeds: dict[str, np.ndarray]) -> int:
        if not self.layout.batched:
            return 0
        return int(next(iter(feeds.values())).shape[0])

    def _wire_shape(self, t: WireTensor, a: np.ndarray, n: int) -> list[int]:
        if t.reshape is not None:  # a 0-d tensor (or a [batch] one) travels with dims [1]
            return [n, 1] if self.layout.batched else [1]
        return list(a.shape)

    def _request(self, feeds: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
        s = self.settings
        try:
            slot = self._slots.get(timeout=s.timeout_s)
        except queue.Empty:
            raise BackendError(
                f"triton: {s.in_flight} requests already at {s.url} for {s.timeout_s:g} s; "
                "raise in_flight or timeout_s"
            ) from None
        try:
            return self._with_retries(feeds, n, slot)
        finally:
            self._slots.put(slot)

    def _client(self) -> Transport:
        """The calling thread's client (the shared one for gRPC)."""
        if self.settings.protocol == "grpc":
            return self.transport
        tr = getattr(self._local, "transport", None)
        if tr is None:
            tr = self._local.transport = Transport(self.settings)
            with self._stats_lock:
                self._transports.append(tr)
        return tr

    def _with_retries(
        self, feeds: dict[str, np.ndarray], n: int, slot: ShmSlot | None
    ) -> dict[str, np.ndarray]:
        s = self.settings
        delay = s.backoff_ms / 1000
        for attempt in range(s.retries + 1):
            t0 = time.perf_counter_ns()
            try:
                out = self._send(feeds, n, slot)
            except Exception as e:
                if slot is not None and shm_lost(e):
                    slot.forget()  # the server restarted: register the regions again
                if not is_transient(e) or attempt == s.retries:
                    tries = f" after {attempt + 1} tries" if attempt else ""
                    raise BackendError(
                        f"triton request to {self.model_name!r} at {s.url} failed{tries}: "
                        f"{one_line(e)}"
                    ) from e
                with self._stats_lock:
                    self.retried += 1
                time.sleep(delay)
                delay = min(2 * delay, MAX_BACKOFF_S)
                continue
            ms = (time.perf_counter_ns() - t0) / 1e6
            with self._stats_lock:
                self.last_request_ms = ms
                self.request_ms.append(ms)
            return out
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(
        self, feeds: dict[str, np.ndarray], n: int, slot: ShmSlot | None
    ) -> dict[str, np.ndarray]:
        tr = self._client()
        inputs = []
        for name, a in feeds.items():
            t = self._wire[name]
            shape = self._wire_shape(t, a, n)
            dtype = np_dtype(_MANIFEST_TYPES[t.data_type])
            inputs.append((tr.make_input(name, shape, t.wire_type),
                           np.ascontiguousarray(a.reshape(shape), dtype=dtype)))  # fmt: skip
        outputs = [tr.make_output(o) for o in self._outputs]
        if slot is None:
            for i, arr in inputs:
                i.set_data_from_numpy(arr)
            result = tr.infer(self.model_name, [i for i, _ in inputs], outputs)
            return {o: np.array(result.as_numpy(o)) for o in self._outputs}
        sizes = self._output_bytes(n)
        slot.bind(
            tr, inputs, [(r, o, sizes[o]) for r, o in zip(outputs, self._outputs, strict=True)]
        )
        result = tr.infer(self.model_name, [i for i, _ in inputs], outputs)
        return slot.read(result, {o: self._np_types[o] for o in self._outputs})

    def _output_bytes(self, n: int) -> dict[str, int]:
        assert self.manifest is not None
        sizes = {}
        for o in self.manifest.outputs:
            dims = [n if d == "batch" else d for d in (o.shape or ())]
            if not all(isinstance(d, int) and d >= 0 for d in dims):
                raise UsageError(
                    f"triton shm=system needs outputs of known size; {o.name!r} is {list(dims)}"
                )
            item = np.dtype(np_dtype(o.dtype)).itemsize
            sizes[o.name] = int(np.prod(dims, dtype=np.int64)) * item
        return sizes

    # ------------------------------------------------------------------ close, figures
    def _close(self) -> None:
        while True:
            try:
                slot = self._slots.get_nowait()
            except queue.Empty:
                break
            if slot is not None:
                slot.close(self._client())
        for tr in self._transports:
            tr.close()

    def server_statistics(self) -> dict[str, Any]:
        """The server's statistics of the model (Triton's statistics API)."""
        return self.transport.statistics(self.model_name)


__all__ = ["TritonBackend"]
