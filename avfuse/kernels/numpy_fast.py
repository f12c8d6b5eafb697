"""Vectorised numpy kernels: the default log-mel and the exact-area image path, no JIT.

What a lean install (no numba) runs: `pip install avfuse` gets these, `avfuse[fast]` adds
numba for throughput. Both follow the reference's definitions (kernels/reference_*.py) and
write into caller-owned outputs through buffers kept per instance, so a steady stream
allocates no arrays: each call is a fixed chain of ufuncs with `out=`.

Two rules shape the code, both measured on the project's machines:

- No BLAS. numpy's OpenBLAS runs a product as small as (97, 257) @ (257, 64) on every core
  and its threads then spin: one such product every 33 ms cost 94 % of a core. The mel
  stage and the area resize are sparse, so they are gathers (`np.take`, mode "clip": the
  default mode copies `out`) followed by a segmented sum: `np.add.reduceat` for the mel
  filters, `np.einsum` (its own C loops, no BLAS without `optimize`) for the resize.
- The FFT runs in float64: numpy's float32 rfft took 3.7x as long (454 vs 124 us for a
  second of audio) and allocated a complex128 copy per call; float64 with `out=` allocates
  nothing. Results are rounded to float32 once, at the end.
"""

from __future__ import annotations

import numpy as np

from avfuse.errors import StreamFormatError, UsageError
from avfuse.kernels import ImageKernel, LogMelKernel
from avfuse.kernels import reference as ref
from avfuse.kernels.reference import AudioParams, VideoParams

__all__ = ["Image", "LogMel", "mel_segments", "picture_size", "sparse_rows"]


def mel_segments(fb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bin index, weight, first entry of each filter) of a filterbank's nonzeros.

    Filter i is entries starts[i]:starts[i + 1], so the mel stage is a gather, a multiply
    and one `np.add.reduceat`; a filter with no bin above zero (narrower than a bin) gets
    one weight-0 entry, because reduceat over an empty segment would copy its neighbour.
    """
    idx, w, starts = [], [], []
    for row in fb:
        nz = np.flatnonzero(row)
        if nz.size == 0:
            nz = np.zeros(1, np.intp)
        starts.append(sum(len(i) for i in idx))
        idx.append(nz)
        w.append(row[nz])
    return np.concatenate(idx).astype(np.intp), np.concatenate(w), np.array(starts, np.intp)


def sparse_rows(dense: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(column index (rows, span), weight (rows, span), span) of a banded matrix.

    Each row's nonzeros are contiguous (mel filters, area weights); rows are padded to the
    widest with weight-0 neighbours (a band at the right edge starts earlier), so every
    row is one segment of `span` entries and an empty row sums to exactly 0.
    """
    nz = [np.flatnonzero(row) for row in dense]
    cols = dense.shape[1]
    span = max(1, max((z[-1] - z[0] + 1) if z.size else 0 for z in nz))
    first = np.array([min(z[0], cols - span) if z.size else 0 for z in nz], np.intp)
    idx = first[:, None] + np.arange(span, dtype=np.intp)[None, :]
    weights = np.take_along_axis(dense, idx, axis=1)
    return idx, weights, span


class LogMel(LogMelKernel):
    """numpy log-mel: float64 rfft into a kept buffer, sparse mel, float32 out.

    An instance owns its buffers: use one instance per thread (streams served by one
    thread may share it). Buffers grow to the most frames one call has needed.
    """

    name = "numpy"

    @classmethod
    def unsupported(cls, params: AudioParams) -> str | None:
        """The sizes numba's kernel takes too (power-of-two n_fft >= 8), so that "auto"
        chooses between the same kinds of kernel with and without the `fast` extra."""
        reason = super().unsupported(params)
        n = params.n_fft
        if reason is None and (n < 8 or n & (n - 1)):
            reason = f"n_fft={n} (it needs a power of two >= 8)"
        return reason

    def __init__(self, params: AudioParams) -> None:
        super().__init__(params)
        p = params
        fb = ref.mel_filterbank(p.sample_rate, p.n_fft, p.n_mels, p.fmin, p.fmax)
        self._bins = p.n_fft // 2 + 1
        self._mel_idx, self._mel_w, self._starts = mel_segments(fb)
        self._win = ref.hann_window(p.win_length, p.n_fft)
        self._win16 = self._win / 32768.0  # int16 PCM scaled as the reference does
        self._scale = 10.0 / p.std  # 10 log10 of a power spectrum, then (y - mean) / std
        self._offset = p.mean / p.std
        self._cap = 0
        self._grow(p.frames)

    def _grow(self, frames: int) -> None:
        """(Re)allocate the per-frame buffers for `frames` frames (only ever grows)."""
        if frames <= self._cap:
            return
        n, b, m = self.params.n_fft, self._bins, self.params.n_mels
        self._frames = np.empty((frames, n), np.float64)
        self._spec = np.empty((frames, b), np.complex128)
        self._sq = self._spec.view(np.float64)  # (frames, 2 b): re, im interleaved, in place
        self._power = np.empty((frames, b), np.float64)
        self._gathered = np.empty((frames, self._mel_idx.size), np.float64)
        self._mel = np.empty((frames, m), np.float64)
        self._cap = frames

    def _check(self, audio: np.ndarray, out: np.ndarray | None) -> np.ndarray:
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
            return np.empty(shape, np.float32)
        if out.shape != shape or out.dtype != np.float32:
            raise UsageError(
                f"out must be a float32 array of shape {shape}, got {out.dtype} {out.shape}"
            )
        return out

    def _compute(self, audio: np.ndarray, k: int) -> np.ndarray:
        """Log-mel of the first k frames of every row of `audio`: (rows * k, n_mels) buffer,
        already scaled and offset (only the float32 rounding is left)."""
        p = self.params
        rows = 1 if audio.ndim == 1 else audio.shape[0]
        total = rows * k
        self._grow(total)
        step = audio.strides[-1]
        shape = (k, p.n_fft) if audio.ndim == 1 else (rows, k, p.n_fft)
        strides = (p.hop_length * step, step)
        if audio.ndim == 2:
            strides = (audio.strides[0], *strides)
        if audio.flags.c_contiguous:  # a tenth of as_strided's cost, which counts per hop
            view = np.ndarray(shape, audio.dtype, audio, 0, strides)
        else:
            view = np.lib.stride_tricks.as_strided(audio, shape, strides, writeable=False)
        frames = self._frames[:total].reshape(shape)
        np.copyto(frames, view)  # any dtype to float64, no temporary
        np.multiply(frames, self._win16 if audio.dtype == np.int16 else self._win, out=frames)
        spec = self._spec[:total]
        np.fft.rfft(self._frames[:total], axis=-1, out=spec)
        sq = self._sq[:total]
        np.square(sq, out=sq)
        power = self._power[:total]
        np.add(sq[:, 0::2], sq[:, 1::2], out=power)
        gathered = self._gathered[:total]
        np.take(power, self._mel_idx, axis=1, out=gathered, mode="clip")  # "raise" buffers
        np.multiply(gathered, self._mel_w, out=gathered)
        mel = self._mel[:total]
        np.add.reduceat(gathered, self._starts, axis=1, out=mel)
        np.maximum(mel, p.log_floor, out=mel)
        np.log10(mel, out=mel)
        np.multiply(mel, self._scale, out=mel)
        np.subtract(mel, self._offset, out=mel)
        return mel

    def __call__(self, audio: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        out = self._check(audio, out)
        k = out.shape[-1]
        mel = self._compute(audio, k)
        if audio.ndim == 1:
            np.copyto(out, mel.T)
        else:  # (B * k, n_mels) -> (B, n_mels, k)
            np.copyto(out, mel.reshape(audio.shape[0], k, -1).transpose(0, 2, 1))
        return out

    def frames_at(self, audio: np.ndarray, ring: np.ndarray, col: int) -> None:
        """Every whole frame of 1-D `audio` into ring[:, col:col + k] without allocating."""
        n = audio.shape[-1]
        k = 1 + (n - self.params.n_fft) // self.params.hop_length
        if audio.ndim != 1 or n < self.params.n_fft or col + k > ring.shape[1]:
            raise UsageError(
                f"frames_at needs 1-D audio of >= n_fft samples and room in the ring; "
                f"got audio {audio.shape}, ring {ring.shape}, column {col}"
            )
        np.copyto(ring[:, col : col + k], self._compute(audio, k).T)


#: model colour -> rows of (C, 3) weights on R, G, B in [0, 1]
_MIX = {
    "gray": np.array([[0.299, 0.587, 0.114]]),
    "rgb": np.eye(3),
    "bgr": np.eye(3)[::-1],
}
#: pixel format -> (order of the channels in the buffer as R, G, B indices, scale)
_PACKED = {"bgr24": ((2, 1, 0), 1 / 255), "rgb24": ((0, 1, 2), 1 / 255), "gray": (None, 1 / 255)}
_YUV = {"nv12", "i420"}
_MAX_PLANS = 8  # frame sizes and formats one kernel keeps buffers for
_KY = np.float32(1.0 / 219.0)  # BT.601 limited range, already divided by 255
_KC = np.float32(1.0 / 224.0)


def picture_size(shape: tuple[int, ...], pixel_format: str) -> tuple[int, int]:
    """(height, width) of the picture in a frame buffer of `shape`; raises on a bad shape."""
    if pixel_format not in ref.PIXEL_FORMATS:
        raise UsageError(
            f"unknown pixel format {pixel_format!r}; use one of {sorted(ref.PIXEL_FORMATS)}"
        )
    if pixel_format in ("bgr24", "rgb24"):
        if len(shape) != 3 or shape[2] != 3:
            raise StreamFormatError(f"{pixel_format} frame must be (H, W, 3), got {shape}")
        return shape[0], shape[1]
    if len(shape) != 2:
        raise StreamFormatError(f"{pixel_format} frame must be 2-D, got {shape}")
    if pixel_format == "gray":
        return shape[0], shape[1]
    rows, width = shape
    height = rows * 2 // 3
    if rows != height * 3 // 2 or height % 2 or width % 2 or height == 0:
        raise StreamFormatError(
            f"{pixel_format} buffer must be (H*3/2, W) with even H and W, got {shape}"
        )
    return height, width


class _Plan:
    """Tables and buffers for one frame size and pixel format.

    The picture is a 2-D array (height, width * n_in) of `n_in` interleaved channels: the
    frame itself for packed formats, an RGB float32 buffer for YUV. The vertical pass
    gathers the rows each output row averages, weights them and sums each segment; the
    horizontal pass does the same on columns with the colour mix folded into the weights,
    so that it writes the model's channels directly.
    """

    def __init__(self, params: VideoParams, height: int, width: int, fmt: str) -> None:
        ho, wo, c = params.height, params.width, params.channels
        mix = _MIX[params.colour]
        planar = fmt in _YUV  # converted to rows of [R row, G row, B row], float32
        if planar:
            order, scale, src_dtype = (0, 1, 2), 1.0, np.float32
            self.rgb = np.empty((height, 3, width), np.float32)
            self.uf, self.vf, self.t1, self.t2 = (
                np.empty((height // 2, width // 2), np.float32) for _ in range(4)
            )
            self.t_up = np.empty((height // 2, width), np.float32)
            self.up_idx = np.arange(width, dtype=np.intp) // 2
        else:
            order, scale = _PACKED[fmt]
            src_dtype = np.uint8
        if order is None:  # one gray channel stands for R = G = B
            terms = [[(0, mix[k].sum())] for k in range(c)]
        else:
            terms = [[(j, mix[k, o]) for j, o in enumerate(order) if mix[k, o]] for k in range(c)]
        n_in = 1 if order is None else 3
        yi, yw, sy = sparse_rows(ref.area_weights(height, ho))
        xi, xw, sx = sparse_rows(ref.area_weights(width, wo))
        # vertical: rows (ho, sy) in output-row order, summed over the middle axis
        self.y_idx = yi.ravel()
        self.y_w = (yw * scale).astype(np.float32)
        # horizontal: columns (sx * nt, c * wo), term-major, summed over the first axis
        nt = len(terms[0])
        h_idx = np.empty((sx, nt, c, wo), np.intp)
        h_w = np.empty((sx, nt, c, wo), np.float64)
        for k in range(c):
            for t, (j, m) in enumerate(terms[k]):
                h_idx[:, t, k, :] = (j * width + xi if planar else xi * n_in + j).T
                h_w[:, t, k, :] = (xw * m).T
        self.x_idx = h_idx.ravel()
        self.x_w = h_w.reshape(sx * nt, c * wo).astype(np.float32)
        self.rows = np.empty((self.y_idx.size, width * n_in), src_dtype)
        self.rows_3d = self.rows.reshape(ho, sy, width * n_in)
        self.acc = np.empty((ho, width * n_in), np.float32)
        self.cols = np.empty((ho, self.x_idx.size), np.float32)
        self.cols_3d = self.cols.reshape(ho, sx * nt, c * wo)
        self.res = np.empty((ho, c * wo), np.float32)
        self.res_chw = self.res.reshape(ho, c, wo).transpose(1, 0, 2)
        self.fmt, self.height, self.width = fmt, height, width

    def yuv_to_rgb(self, frame: np.ndarray) -> np.ndarray:
        """BT.601 limited-range NV12/I420 -> planar RGB float32 in [0, 1], nearest 2x2 chroma.

        Chroma terms are computed at half resolution, widened with one gather and added to
        both luma rows of their pair, so no loop runs over a 2-wide axis.
        """
        h, w = self.height, self.width
        if self.fmt == "nv12":
            uv = frame[h:].reshape(h // 2, w // 2, 2)
            u, v = uv[..., 0], uv[..., 1]
        else:
            flat = frame[h:].reshape(-1)
            q = (h // 2) * (w // 2)
            u = flat[:q].reshape(h // 2, w // 2)
            v = flat[q : 2 * q].reshape(h // 2, w // 2)
        uf, vf, t1, t2, up = self.uf, self.vf, self.t1, self.t2, self.t_up
        for src, dst in ((u, uf), (v, vf)):
            np.subtract(src, np.float32(128.0), out=dst)
            np.multiply(dst, _KC, out=dst)
        luma = self.rgb[:, 1]  # G is written last, so its plane holds Y meanwhile
        np.subtract(frame[:h], np.float32(16.0), out=luma)
        np.multiply(luma, _KY, out=luma)
        y_pairs = luma.reshape(h // 2, 2, w)
        for ch, (cu, cv) in ((0, (0.0, 1.402)), (2, (1.772, 0.0)), (1, (-0.344136, -0.714136))):
            np.multiply(vf if cv else uf, np.float32(cv or cu), out=t1)
            if cu and cv:
                np.multiply(uf, np.float32(cu), out=t2)
                np.add(t1, t2, out=t1)
            np.take(t1, self.up_idx, axis=1, out=up, mode="clip")
            plane = self.rgb[:, ch].reshape(h // 2, 2, w)
            np.add(y_pairs, up[:, None, :], out=plane)
        np.clip(self.rgb, np.float32(0.0), np.float32(1.0), out=self.rgb)
        return self.rgb.reshape(h, 3 * w)

    def run(self, picture: np.ndarray, mean: np.ndarray, inv_std: np.ndarray,
            out: np.ndarray) -> None:  # fmt: skip
        """picture (height, width * n_in) -> out (C, H, W) float32."""
        np.take(picture, self.y_idx, axis=0, out=self.rows, mode="clip")  # "raise" buffers
        np.einsum("jtl,jt->jl", self.rows_3d, self.y_w, out=self.acc)
        np.take(self.acc, self.x_idx, axis=1, out=self.cols, mode="clip")
        np.einsum("jtk,tk->jk", self.cols_3d, self.x_w, out=self.res)
        np.subtract(self.res_chw, mean, out=out)
        np.multiply(out, inv_std, out=out)


class Image(ImageKernel):
    """numpy exact-area image pre-processing: colour, area resize, normalise, CHW.

    Tables and buffers are built on the first frame of each size and pixel format (up to
    eight kept), so later frames allocate no arrays. One instance per thread.
    """

    name = "numpy"

    def __init__(self, params: VideoParams) -> None:
        super().__init__(params)
        self._mean = np.asarray(params.mean, np.float32)[:, None, None]
        self._inv_std = (1.0 / np.asarray(params.std, np.float64)).astype(np.float32)[:, None, None]
        self._plans: dict[tuple[int, int, str], _Plan] = {}

    def _plan(self, height: int, width: int, fmt: str) -> _Plan:
        key = (height, width, fmt)
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) >= _MAX_PLANS:
                self._plans.pop(next(iter(self._plans)))
            plan = self._plans[key] = _Plan(self.params, height, width, fmt)
        return plan

    def __call__(
        self, frame: np.ndarray, pixel_format: str = "bgr24", out: np.ndarray | None = None
    ) -> np.ndarray:
        height, width = picture_size(frame.shape, pixel_format)
        if frame.dtype != np.uint8:
            raise StreamFormatError(f"frames must be uint8, got {frame.dtype}")
        shape = self.out_shape
        if out is None:
            out = np.empty(shape, np.float32)
        elif out.shape != shape or out.dtype != np.float32:
            raise UsageError(
                f"out must be a float32 array of shape {shape}, got {out.dtype} {out.shape}"
            )
        plan = self._plan(height, width, pixel_format)
        if pixel_format in _YUV:
            picture = plan.yuv_to_rgb(frame)
        else:
            picture = frame.reshape(height, -1)  # a view of a C-contiguous frame
        plan.run(picture, self._mean, self._inv_std, out)
        return out
