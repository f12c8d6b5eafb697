"""Chained models: a ring of one model's recent outputs, read by another model's input.

Wake-word and keyword-spotting models are built as chains: a feature extractor runs at
one cadence and a classifier looks at its last N outputs at another. In avfuse the
classifier's manifest has an input with role "history":

    {"name": "x", "role": "history", "from": "embed.conv2d_19", "frames": 16}

`from` names a model of the same run and one of its outputs. Per stream, each output
of that model is appended to a `HistoryRing` (one row per output, or several when an
output holds a sequence of rows), and the consumer runs on every new output (or every
`cadence.every_frames`-th), its input filled with the last `frames` rows, oldest first,
rows before the stream's start reading as the input's `init` value. The ring is
preallocated; a row is copied in once and out once.
"""

from __future__ import annotations

import numpy as np

from avfuse.errors import UsageError


class HistoryRing:
    """The recent outputs of one model on one stream, as rows of a fixed shape.

    Args:
        row_shape: shape of one row (the consumer input's shape after [batch, frames]).
        capacity: rows held (the longest history read plus slack for items in flight).
        name: "MODEL.OUTPUT", for messages.
    """

    def __init__(self, *, row_shape: tuple[int, ...], capacity: int, name: str) -> None:
        self.name = name
        self.row_shape = tuple(row_shape)
        self.row_size = int(np.prod(self.row_shape)) if self.row_shape else 1
        self.capacity = int(capacity)
        self._rows = np.zeros((self.capacity, self.row_size), np.float32)
        #: rows appended so far (the index of the next row)
        self.count = 0

    def push(self, output: np.ndarray) -> int:
        """Append one output (one row, or a sequence of rows); returns the new count."""
        flat = np.asarray(output).reshape(-1)
        if flat.size % self.row_size:
            raise UsageError(
                f"{self.name} gives {flat.size} values per output, which is not a whole "
                f"number of history rows of shape {list(self.row_shape)}: check the "
                "consumer's history input shape"
            )
        for k in range(flat.size // self.row_size):
            self._rows[self.count % self.capacity] = flat[
                k * self.row_size : (k + 1) * self.row_size
            ]
            self.count += 1
        return self.count

    def read(self, end: int, out: np.ndarray, *, init: float) -> None:
        """Copy the `len(out)` rows ending before row `end` into `out`, oldest first."""
        n = out.shape[0]
        rows = out.reshape(n, -1)
        if end - n < self.count - self.capacity:
            raise UsageError(
                f"{self.name}: the consumer fell more than {self.capacity} outputs behind"
            )
        for k in range(n):
            i = end - n + k
            if i < 0:
                rows[k] = init
            else:
                rows[k] = self._rows[i % self.capacity]


__all__ = ["HistoryRing"]
