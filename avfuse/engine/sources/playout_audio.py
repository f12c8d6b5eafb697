"""The audio of one playout wake-up, gathered into one block for the sink.

At a video frame's wake-up the playout hands over the audio captured by then: the rest
of a block split at the last frame, whole blocks, the start of a block split at this
frame. `AudioGather` joins those pieces into one block where they are continuous (one
call into the sink, which copies it, instead of 2.5 a frame) and sends a block as soon as
a piece does not continue it (a gap), so the sink still sees the gap.
"""

from __future__ import annotations

import numpy as np

from avfuse.engine.sources.base import FrameSink

#: (due_ns, kind, payload, device_time_s, host_ns) of one item of the playout's queue
QueuedItem = tuple[int | None, str, object, float | None, int]


class AudioGather:
    """The gathered block (`add`), sent by `flush`; `split` cuts a block at a moment.

    The buffer is made once (0.25 s) and grows only for a wake-up longer than any before.
    """

    def __init__(self, sink: FrameSink, sample_rate: int) -> None:
        self.sink = sink
        self.sample_rate = sample_rate
        # the samples gathered, their stamps, and the stamps the next piece must have to
        # continue them
        self._scratch = np.empty(round(0.25 * sample_rate), np.float32)
        self._acc_n = 0
        self._acc_dev: float | None = None
        self._acc_host = 0
        self._acc_next_dev: float | None = None
        self._acc_next_host = 0

    def add(self, data: np.ndarray, dev: float | None, host: int) -> None:
        """Add audio to the block that goes out at the end of this wake-up: one call into
        the sink (which copies it) instead of one per piece (2.5 a frame: the rest of a
        split block, a whole one, the start of the next). Audio that does not continue
        the gathered block (a gap) sends that block first, so the sink still sees it."""
        rate = self.sample_rate
        n = self._acc_n
        if data.ndim != 1 or data.dtype != np.float32:
            self.flush()
            self.sink.audio(data, device_time_s=dev, host_ns=host)
            return
        if n:
            nd = self._acc_next_dev
            if (
                abs(dev - nd) * rate >= 0.5
                if dev is not None and nd is not None
                else abs(host - self._acc_next_host) * rate >= 500_000_000
            ):
                self.flush()
                n = 0
        if n == 0:
            self._acc_dev, self._acc_host = dev, host
        end = n + data.shape[0]
        if end > self._scratch.shape[0]:  # grows only for blocks longer than any before
            grown = np.empty(max(end, 2 * self._scratch.shape[0]), np.float32)
            grown[:n] = self._scratch[:n]
            self._scratch = grown
        self._scratch[n:end] = data
        self._acc_n = end
        self._acc_next_dev = None if dev is None else dev + data.shape[0] / rate
        self._acc_next_host = host + data.shape[0] * 1_000_000_000 // rate

    def flush(self) -> None:
        """Deliver the gathered audio block, if any."""
        n = self._acc_n
        if n:
            self._acc_n = 0
            self.sink.audio(self._scratch[:n], device_time_s=self._acc_dev, host_ns=self._acc_host)

    def split(self, item: QueuedItem, now: int) -> QueuedItem:
        """Deliver the samples of an audio block captured by `now`; return the rest."""
        due, _, samples, dev, host = item
        rate = self.sample_rate
        n = (now - host) * rate // 1_000_000_000  # samples whose capture ended by `now`
        if n <= 0:
            return item
        data: np.ndarray = samples  # type: ignore[assignment]
        self.add(data[:n], dev, host)
        return (
            due,
            "audio",
            data[n:],
            None if dev is None else dev + n / rate,
            host + n * 1_000_000_000 // rate,
        )


__all__ = ["AudioGather", "QueuedItem"]
