"""System shared memory for the `triton` backend: tensors cross by memory, not by socket.

When client and server share a host (``shm=system``), each in-flight slot owns one POSIX
shared-memory region registered with the server: a request's inputs are copied into it
and the server writes the outputs after them, so only the request's metadata travels
over gRPC/HTTP. A region grows (re-created and re-registered) when a batch needs more
room, and is registered again after the server restarted and forgot it.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from avfuse.errors import BackendError

#: smallest region made (a small model's batch fits without regrowing)
MIN_REGION = 1 << 16
_ALIGN = 64


def _aligned(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


class ShmSlot:
    """One registered region, used by one request at a time."""

    def __init__(self, name: str) -> None:
        from tritonclient.utils import shared_memory

        self._shm = shared_memory
        self.name = f"{name}_{os.getpid()}"
        self.key = "/" + self.name
        self.handle: Any = None
        self.size = 0
        self.registered = False
        self._out: dict[str, tuple[int, int]] = {}

    def _ensure(self, transport: Any, size: int) -> None:
        if self.handle is None or size > self.size:
            self._release(transport)
            new = max(size, 2 * self.size, MIN_REGION)
            try:
                self.handle = self._shm.create_shared_memory_region(
                    self.name, self.key, new, create_only=True
                )
            except Exception as e:
                raise BackendError(f"triton shm: cannot create region {self.key}: {e}") from e
            self.size = new
        if not self.registered:
            transport.unregister_shm(self.name)  # a stale one from before a restart
            transport.register_shm(self.name, self.key, self.size)
            self.registered = True

    def bind(
        self,
        transport: Any,
        inputs: list[tuple[Any, np.ndarray]],
        outputs: list[tuple[Any, str, int]],
    ) -> None:
        """Copy inputs into the region and point inputs and outputs at their offsets.

        Args:
            transport: the calling thread's client (registers the region when needed).
            inputs: (InferInput, its contiguous array).
            outputs: (InferRequestedOutput, its name, its byte size).
        """
        need = sum(_aligned(a.nbytes) for _, a in inputs) + sum(_aligned(n) for *_, n in outputs)
        self._ensure(transport, need)
        offset = 0
        for inp, a in inputs:
            self._shm.set_shared_memory_region(self.handle, [a], offset=offset)
            inp.set_shared_memory(self.name, a.nbytes, offset=offset)
            offset += _aligned(a.nbytes)
        self._out = {}
        for out, name, n in outputs:
            out.set_shared_memory(self.name, n, offset=offset)
            self._out[name] = (offset, n)
            offset += _aligned(n)

    def read(self, result: Any, types: dict[str, Any]) -> dict[str, np.ndarray]:
        """The outputs the server wrote, copied out of the region."""
        got = {}
        for name, (offset, _) in self._out.items():
            meta = result.get_output(name)
            shape = list(meta["shape"] if isinstance(meta, dict) else meta.shape)
            view = self._shm.get_contents_as_numpy(self.handle, types[name], shape, offset=offset)
            got[name] = np.array(view)
        return got

    def forget(self) -> None:
        """The server lost the registration (it restarted): register again on next use."""
        self.registered = False

    def _release(self, transport: Any) -> None:
        if self.handle is not None:
            if self.registered:
                transport.unregister_shm(self.name)
                self.registered = False
            self._shm.destroy_shared_memory_region(self.handle)
            self.handle = None
            self.size = 0

    def close(self, transport: Any) -> None:
        """Unregister and destroy the region."""
        self._release(transport)


__all__ = ["ShmSlot"]
