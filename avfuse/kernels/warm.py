"""Compile (or load from numba's cache) every kernel specialisation a run calls, before it runs.

numba compiles one machine-code specialisation per combination of argument types
(dtype, ndim, layout, read-only flag) the first time a jitted function sees it, and
with an empty cache that costs seconds. Inside a live run those seconds are spent
while the clock runs: frames queue up, late items are dropped, events are missed. So
the pipeline calls `warm_kernels` before any source starts, with the kernels and the
stream formats it will use, and every later call finds its code ready.

The specialisations do not depend on the model's parameters (sizes travel as integer
arguments and tables as arrays), only on the argument types, so warming once with any
parameters fills numba's on-disk cache for every model. `python -m avfuse.kernels.warm`
does that at install time (scripts/install.sh), so the first run after installing
loads from the cache instead of compiling. Without numba (it is the `fast` extra) it
says so and exits 0: the numpy kernels have nothing to compile.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Sequence

import numpy as np

from avfuse.errors import AvfuseError
from avfuse.kernels import (
    AudioParams,
    ImageKernel,
    LogMelKernel,
    VideoParams,
    image_kernel,
    log_mel_kernel,
)
from avfuse.kernels.streaming import StreamingLogMel

__all__ = ["FrameSpec", "all_formats", "main", "warm_kernels"]

#: (shape of one frame buffer, pixel format): what a stream's frame ring holds
FrameSpec = tuple[tuple[int, ...], str]

#: frame buffer shape of each pixel format for a picture of height x width
_BUFFER_SHAPES = {
    "bgr24": lambda h, w: (h, w, 3),
    "rgb24": lambda h, w: (h, w, 3),
    "gray": lambda h, w: (h, w),
    "nv12": lambda h, w: (h * 3 // 2, w),
    "i420": lambda h, w: (h * 3 // 2, w),
}


def warm_kernels(
    *,
    mel: LogMelKernel | None = None,
    image: ImageKernel | None = None,
    frames: Iterable[FrameSpec] = (),
    streaming_mel: bool = True,
    batch: int = 0,
) -> None:
    """Call every kernel entry point a run will call, once, on zeros of the same types.

    Contract: after this returns, the calls below run without compiling (numba) or
    loading code, as long as the arrays are writable and have the dtype and layout
    given here (what the pipeline passes: its own zeroed buffers and frame ring slots).

    - `mel(audio, out)`: audio float32 (window_samples,), out float32 C-contiguous
      (n_mels, frames); the pipeline's path for windows with missing samples.
    - `StreamingLogMel(mel).window(samples, end_index, out)` with the same arrays, both
      for a whole window and for a few new hops (when `streaming_mel` and the kernel's
      parameters can stream at all: `StreamingLogMel.supports`).
    - `image(frame, pixel_format, out)` for each `frames` entry: frame uint8 of that
      shape (C-contiguous, as a frame ring slot is), out C-contiguous of the kernel's
      `out_shape` and `out_dtype`. Without `frames` the kernel's own `warmup()` runs (a
      240x320 bgr24 frame). For the OpenCV kernel this allocates the buffers of each
      frame size, so that the run's frames allocate nothing.

    Any kernel is accepted: the reference and OpenCV ones have nothing to compile, so
    warming them only runs each path once.
    - with `batch` > 0, also `mel(audio (batch, window_samples))` and
      `image.batch(frames (batch, *shape), pixel_format)`: the batched paths used for
      offline features (benchmarks); the pipeline does not call them. The numba log-mel
      runs a batch on several threads (its own specialisation) only from about 12
      one-second windows up, so pass 16 to warm both of its batch paths.

    Args:
        mel: the run's log-mel kernel (one instance serves every stream), or None.
        image: the run's image kernel, or None.
        frames: (frame buffer shape, pixel format) of every video stream; repeats are
            warmed once.
        streaming_mel: the run reuses mel frames between windows (PipelineConfig's
            `streaming_mel`).
        batch: also warm the batched paths with batches of this size (0: do not).

    Raises:
        UsageError, StreamFormatError: a frame shape does not fit its pixel format.
    """
    if mel is not None:
        mel.warmup()
        n = mel.params.window_samples
        mel(np.zeros(n, np.float32), np.empty(mel.out_shape(n), np.float32))
        if streaming_mel and StreamingLogMel.supports(mel.params):
            StreamingLogMel(mel).warmup()
        if batch > 0:
            mel(np.zeros((batch, n), np.float32), np.empty(mel.out_shape(n, batch), np.float32))
    if image is None:
        return
    specs = list(dict.fromkeys((tuple(shape), fmt) for shape, fmt in frames))
    if not specs:
        image.warmup()
        specs = [((240, 320, 3), "bgr24")] if batch > 0 else []
    out = np.empty(image.out_shape, image.out_dtype)
    for shape, fmt in specs:
        image(np.zeros(shape, np.uint8), fmt, out)
        if batch > 0:
            outs = np.empty((batch, *image.out_shape), image.out_dtype)
            image.batch(np.zeros((batch, *shape), np.uint8), fmt, outs)


def _numba_does(params: object, kind: str) -> bool:
    """Whether the numba kernel of `kind` ("LogMel", "Image") implements `params`."""
    if not isinstance(params, AudioParams if kind == "LogMel" else VideoParams):
        return False  # absent, or a raw waveform input
    from avfuse.kernels import numba_cpu

    return getattr(numba_cpu, kind).supports(params)


def _numba_installed() -> bool:
    """Whether numba imports (it is the `fast` extra; the numpy kernels compile nothing)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def all_formats(height: int = 240, width: int = 320) -> list[FrameSpec]:
    """A frame spec of every supported pixel format for a height x width picture."""
    return [(shape(height, width), fmt) for fmt, shape in _BUFFER_SHAPES.items()]


def main(argv: Sequence[str] | None = None) -> int:
    """Fill numba's on-disk cache for the bundled model (run once after installing)."""
    parser = argparse.ArgumentParser(
        prog="python -m avfuse.kernels.warm",
        description="Compile the numba pre-processing kernels into numba's cache "
        "($NUMBA_CACHE_DIR, or __pycache__ next to the kernels), so that the first run "
        "loads them instead of compiling.",
    )
    parser.add_argument("--model", default=None, help="manifest whose pre-processing to use")
    parser.add_argument(
        "--batch", type=int, default=16, help="also warm the batched paths with this batch size"
    )
    args = parser.parse_args(argv)
    if not _numba_installed():
        print(
            "avfuse.kernels.warm: numba is not installed, so there is nothing to compile: "
            "the numpy kernels run as they are (pip install 'avfuse[fast]' for numba's)",
            file=sys.stderr,
        )
        return 0

    from avfuse.assets import default_model_path
    from avfuse.manifest import load_manifest

    t0 = time.perf_counter()
    try:
        m = load_manifest(args.model or default_model_path())
        audio, video = m.audio, m.video
        warm_kernels(  # only numba has anything to compile
            mel=log_mel_kernel(audio, "numba") if _numba_does(audio, "LogMel") else None,
            image=image_kernel(video, "numba") if _numba_does(video, "Image") else None,
            frames=all_formats(),
            batch=args.batch,
        )
    except AvfuseError as e:
        print(f"avfuse.kernels.warm: {e}", file=sys.stderr)
        return 1
    print(f"numba kernels ready in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
