"""numba CPU kernels: log-mel (batched FFT, see numba_fft.py) and fused image pre-processing.

Both compile with cache=True, so only the first process on a machine pays the JIT;
`warmup()` pays the rest (loading the cache) before the first frame. Single windows
run serially (a parallel region costs more than one window's ~0.1 ms of work); batches
big enough to pay for it are split over numba's threads, one window per task.
"""

from __future__ import annotations

import numpy as np

from avfuse.errors import UsageError
from avfuse.kernels import ImageKernel, LogMelKernel
from avfuse.kernels import numba_fft as nf
from avfuse.kernels import numba_image as ni
from avfuse.kernels.reference import AudioParams, VideoParams

__all__ = ["Image", "LogMel"]

#: batches with at least this many frame blocks in total run in parallel
PARALLEL_MIN_BLOCKS = 24


def _as_f32(audio: np.ndarray) -> np.ndarray:
    if audio.dtype == np.float32 and audio.flags.c_contiguous:
        return audio
    if audio.dtype == np.int16:
        return np.ascontiguousarray(audio, np.float32) * np.float32(1.0 / 32768.0)
    return np.ascontiguousarray(audio, np.float32)


class LogMel(LogMelKernel):
    """numba log-mel: float32 batched real FFT, sparse mel, vectorised log.

    An instance owns its scratch buffers: use one instance per thread (streams served
    by one thread may share it).
    """

    name = "numba"

    @classmethod
    def unsupported(cls, params: AudioParams) -> str | None:
        """Also needs a power-of-two n_fft (its FFT is radix-2/4)."""
        reason = super().unsupported(params)
        n = params.n_fft
        if reason is None and (n < 8 or n & (n - 1)):
            reason = f"n_fft={n} (it needs a power of two >= 8)"
        return reason

    def __init__(self, params: AudioParams) -> None:
        super().__init__(params)
        try:
            self._plan = nf.make_plan(params)
        except ValueError as e:
            raise UsageError(f"{e}; use impl='reference' for other FFT sizes") from e
        p = self._plan
        self._args = (p.n_fft, p.hop, p.n_mels, p.ftab, p.itab, p.consts, p.small_f, p.small_i)
        self._scratch = np.zeros(nf.scratch_size(p, nf.MAX_LANES), np.float32)
        self._batch_scratch = np.zeros((0, self._scratch.size), np.float32)

    def _check(self, audio: np.ndarray, out: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        if audio.ndim not in (1, 2):
            raise UsageError(f"audio must be (n,) or (batch, n), got shape {audio.shape}")
        n = audio.shape[-1]
        if n < self.params.n_fft:
            raise UsageError(
                f"audio of {n} samples is shorter than one frame ({self.params.n_fft}); "
                "pass at least n_fft samples"
            )
        shape = self.out_shape(n, audio.shape[0] if audio.ndim == 2 else None)
        if out is None:
            out = np.empty(shape, np.float32)
        elif out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
            raise UsageError(
                f"out must be a C-contiguous float32 array of shape {shape}, "
                f"got {out.dtype} {out.shape}"
            )
        return _as_f32(audio), out

    def __call__(self, audio: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        x, out = self._check(audio, out)
        frames = out.shape[-1]
        lanes = nf.lanes_for(frames)
        if x.ndim == 1:
            nf.log_mel_into(x, *self._args, self._scratch, lanes, out, 0)
            return out
        blocks = x.shape[0] * -(-frames // lanes)
        workers = min(nf.nb.get_num_threads(), x.shape[0])
        if blocks < PARALLEL_MIN_BLOCKS or workers < 2:
            for b in range(x.shape[0]):
                nf.log_mel_into(x[b], *self._args, self._scratch, lanes, out[b], 0)
            return out
        if self._batch_scratch.shape[0] != workers:
            self._batch_scratch = np.zeros((workers, self._scratch.size), np.float32)
        nf.log_mel_batch(x, *self._args, self._batch_scratch, lanes, out)
        return out

    def warmup(self) -> None:
        """Load (or compile) the window, batch and few-frames paths before the first frame."""
        super().warmup()
        n = self.params.n_fft + 2 * self.params.hop_length
        ring = np.zeros((self.params.n_mels, 8), np.float32)
        self.frames_at(np.zeros(n, np.float32), ring, 0)

    def frames_at(self, audio: np.ndarray, ring: np.ndarray, col: int) -> None:
        """Every whole frame of 1-D `audio` into ring[:, col:col + k] without allocating."""
        n = audio.shape[-1]
        k = 1 + (n - self.params.n_fft) // self.params.hop_length
        if audio.ndim != 1 or n < self.params.n_fft or col + k > ring.shape[1]:
            raise UsageError(
                f"frames_at needs 1-D audio of >= n_fft samples and room in the ring; "
                f"got audio {audio.shape}, ring {ring.shape}, column {col}"
            )
        nf.log_mel_into(_as_f32(audio), *self._args, self._scratch, nf.lanes_for(k), ring, col)

    def stream_window(self, samples: np.ndarray, j0: int, count: int, col: int, ring: np.ndarray,
                      out: np.ndarray, first: int) -> None:  # fmt: skip
        """StreamingLogMel's whole step in one compiled call (see numba_fft.stream_window)."""
        if samples.dtype != np.float32 or not samples.flags.c_contiguous:
            samples = _as_f32(samples)
        nf.stream_window(samples, j0, count, col, ring.shape[1] // 2, *self._args,
                         self._scratch, ring, out, first)  # fmt: skip


class Image(ImageKernel):
    """numba fused image pre-processing (see numba_image.py)."""

    name = "numba"

    def __init__(self, params: VideoParams) -> None:
        super().__init__(params)
        self._impl = ni.FusedImage(params)

    def __call__(
        self, frame: np.ndarray, pixel_format: str = "bgr24", out: np.ndarray | None = None
    ) -> np.ndarray:
        return self._impl(frame, pixel_format, out)

    def batch(
        self, frames: np.ndarray, pixel_format: str = "bgr24", out: np.ndarray | None = None
    ) -> np.ndarray:
        """frames (B, ...) of one format and size -> (B, C, H, W), frames in parallel."""
        return self._impl.batch(frames, pixel_format, out)
