"""Giving freed heap memory back to the OS after a large, one-off release.

A reconnected network stream closes its FFmpeg container (demuxer, decoder, frame
pools, the UDP receive FIFO: a few MB) and opens a new one. glibc keeps the freed
chunks, scattered between live ones, in the process; the new container's allocations
only partly reuse them. A box that reconnects a flaky camera every few minutes then
grows in steps: the 30-minute soak at c2f0ec5 grew 5.9, 1.0 and 4.3 MB after three of
its four sender restarts, and failed its 5 MB budget on that alone.

`malloc_trim(0)` returns every free page of every arena to the OS (glibc 2.8 and later
release free pages inside the heap too, not only at its top). It costs about a
millisecond for a heap this size, so it is called only after such releases, on the
thread that made them, never per frame. Elsewhere (musl, macOS) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        fn = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn


def trim_heap() -> bool:
    """Return free heap pages to the OS; True when the C library could (glibc)."""
    fn = _malloc_trim()
    if fn is None:
        return False
    fn(0)
    return True
