"""Incremental log-mel for streams: transform only the hops that are new since the last window.

A live stream asks for the log-mel of the last `window_s` of audio every video frame
(every ~33 ms), but consecutive windows share all but a few frames. Frames never
depend on samples outside their own span (no centring, no per-window normalisation;
see kernels/reference.py), so a frame computed once is valid for every later window
that contains it. `StreamingLogMel` keeps those frames in a per-stream mel ring keyed
by absolute frame index and transforms only the missing ones.

The ring is stored twice side by side (a "doubled" ring), so every window is one
contiguous column slice and the hot path is: transform the new hops into the ring,
mirror them, copy one slice into `out`. The numba kernel runs that whole step as one
compiled call (`stream_window`, nothing allocated); any other kernel goes through
`LogMelKernel.frames_at`.

Only features whose frames do not depend on the rest of the window stream this way:
no centring (the padded edge frames change as the window moves), no reference to the
window's maximum (db_ref="max", top_db) and the (n_mels, frames) layout of the ring.
`StreamingLogMel.supports(params)` says whether a kernel's parameters qualify; for the
others the runtime recomputes each window with the kernel.
"""

from __future__ import annotations

import numpy as np

from avfuse.errors import UsageError
from avfuse.kernels import LogMelKernel
from avfuse.kernels.reference import AudioParams

__all__ = ["StreamingLogMel"]


class StreamingLogMel:
    """Per-stream log-mel with a mel ring: only new hops are transformed.

    One instance per stream; streams handled by the same thread may share a kernel.

    Args:
        kernel: any LogMelKernel; its params fix window, hop and mel layout.
        history_frames: mel frames kept in the ring (default and minimum: one window's
            frames). More history lets a window that steps back a little still reuse.

    Example:
        >>> stream = StreamingLogMel(log_mel_kernel(AudioParams()))
        >>> out = np.empty((64, 97), np.float32)
        >>> stream.window(last_second, end_index=sample_index, out=out)
    """

    @staticmethod
    def unsupported(params: AudioParams) -> str | None:
        """The first setting that makes frames depend on their window, or None."""
        if params.center:
            return "center=True"
        if params.layout != "mels_frames":
            return f"layout={params.layout!r}"
        if params.db_ref != "one":
            return f"db_ref={params.db_ref!r}"
        if params.top_db is not None:
            return f"top_db={params.top_db!r}"
        return None

    @classmethod
    def supports(cls, params: AudioParams) -> bool:
        """Whether frames of `params` can be cached and reused between windows."""
        return cls.unsupported(params) is None

    def __init__(self, kernel: LogMelKernel, *, history_frames: int | None = None) -> None:
        p = kernel.params
        reason = self.unsupported(p)
        if reason is not None:
            raise UsageError(
                f"this log-mel cannot stream ({reason}: a frame depends on its whole window); "
                "compute each window with the kernel instead"
            )
        self.kernel = kernel
        self.params = p
        self.frames = p.frames
        self.window_samples = p.window_samples
        cap = self.frames if history_frames is None else int(history_frames)
        if cap < self.frames:
            raise UsageError(
                f"history_frames={history_frames} is shorter than one window "
                f"({self.frames} frames); pass history_frames >= {self.frames} or None"
            )
        self.capacity = cap
        self._hop = p.hop_length
        self._win_shape = (self.window_samples,)
        self._out_shape = (p.n_mels, self.frames)
        self._ring = np.zeros((p.n_mels, 2 * cap), np.float32)
        self._fused = getattr(kernel, "stream_window", None)
        self._lo = 0  # valid absolute frame keys are [lo, hi)
        self._hi = 0
        #: frames transformed / reused since construction (for tests and metrics)
        self.computed_frames = 0
        self.reused_frames = 0

    def _raise_shape(self, samples: np.ndarray, out: np.ndarray) -> None:
        if samples.shape != self._win_shape:
            raise UsageError(
                f"samples must have shape {self._win_shape}, got {samples.shape}; "
                "pass exactly one window of audio"
            )
        raise UsageError(f"out must have shape {self._out_shape}, got {out.shape}")

    def invalidate(self) -> None:
        """Forget every cached frame (call after a gap or a clock jump in the stream)."""
        self._lo = self._hi = 0

    def warmup(self) -> None:
        """Run the hot path once on silence so that its compiled code exists before frame 1.

        Two windows, as a live stream sends them: one transformed whole (the first window
        or the one after a gap) and the next a few hops later (only the new hops), both
        with this instance's own ring and a C-contiguous float32 window and `out`. The
        ring is then forgotten and the counters reset, so the stream starts as if new.
        """
        samples = np.zeros(self._win_shape, np.float32)
        out = np.empty(self._out_shape, np.float32)
        end = 2 * self.frames * self._hop
        self.window(samples, end, out)
        self.window(samples, end + 3 * self._hop, out)
        self.invalidate()
        self.computed_frames = self.reused_frames = 0

    def window(self, samples: np.ndarray, end_index: int, out: np.ndarray) -> np.ndarray:
        """Log-mel of the window of `samples` that ends at absolute sample `end_index`.

        Args:
            samples: float32 (window_samples,), the audio of the window.
            end_index: absolute index one past the window's last sample; a multiple of
                hop_length, so frames of different windows line up.
            out: float32 (n_mels, frames), written in place.

        Returns:
            `out`, equal (to float32 tolerance) to `kernel(samples)`.
        """
        hop = self._hop
        if end_index % hop:
            raise UsageError(
                f"end_index {end_index} is not a multiple of hop_length {hop}; "
                "align windows to the hop grid (the Aligner does)"
            )
        if samples.shape != self._win_shape or out.shape != self._out_shape:
            self._raise_shape(samples, out)
        if out.dtype != np.float32:
            raise UsageError(f"out must be float32, got {out.dtype}")
        n_frames = self.frames
        end = end_index // hop
        first = end - n_frames
        lo, hi = self._lo, self._hi
        if lo <= first <= hi < end and hi > lo:
            start = hi  # keys [first, hi) are cached; transform [hi, end)
        elif lo <= first and end <= hi:
            start = end  # the whole window is cached (a repeated or older window)
        else:
            start = first  # gap, jump back or empty ring: transform everything
            self._lo = first
        count = end - start
        if count:
            self._hi = end
            if end - self._lo > self.capacity:
                self._lo = end - self.capacity
        self.computed_frames += count
        self.reused_frames += n_frames - count
        if self._fused is not None:  # one compiled call: transform, mirror, copy out
            cap = self.capacity
            self._fused(samples, start - first, count, start % cap, self._ring, out, first % cap)
            return out
        if count:
            self._transform(samples, start - first, start, count)
        col = first % self.capacity
        out[...] = self._ring[:, col : col + n_frames]
        return out

    def _transform(self, samples: np.ndarray, j0: int, key0: int, count: int) -> None:
        """Transform window frames j0..j0+count-1 (absolute keys from key0) into the ring."""
        hop, n_fft, cap = self.params.hop_length, self.params.n_fft, self.capacity
        chunk = samples[j0 * hop : (j0 + count - 1) * hop + n_fft]
        col = key0 % cap
        self.kernel.frames_at(chunk, self._ring, col)
        ring = self._ring
        hi = col + count
        if col < cap:  # mirror the first copy into the second half
            m = min(hi, cap)
            ring[:, col + cap : m + cap] = ring[:, col:m]
        if hi > cap:  # mirror what landed in the second half back into the first
            m = max(col, cap)
            ring[:, m - cap : hi - cap] = ring[:, m:hi]
