"""StreamingLogMel: incremental windows equal a full recompute; invalidate and gaps work."""

from __future__ import annotations

import numpy as np
import pytest

from avfuse.errors import UsageError
from avfuse.kernels import AudioParams, log_mel_kernel
from avfuse.kernels import reference as ref
from avfuse.kernels.streaming import StreamingLogMel

P = AudioParams()
IMPLS = ["reference", "numba"]


def _stream(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * P.sample_rate)
    t = np.arange(n) / P.sample_rate
    tone = 0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t)
    return (tone + 0.05 * rng.standard_normal(n)).astype(np.float32)


def _kernel(impl: str):
    return log_mel_kernel(P, impl)


@pytest.mark.parametrize("impl", IMPLS)
def test_streaming_equals_full_recompute(impl: str) -> None:
    kernel = _kernel(impl)
    stream = StreamingLogMel(kernel)
    audio = _stream(3.0)
    out = np.empty((P.n_mels, P.frames), np.float32)
    w = P.window_samples
    # steps of 1..7 hops (~10-70 ms), as video frames at varying rates would ask
    ends = [w]
    rng = np.random.default_rng(1)
    while ends[-1] + 7 * P.hop_length <= audio.size:
        ends.append(ends[-1] + int(rng.integers(1, 8)) * P.hop_length)
    for end in ends:
        stream.window(audio[end - w : end], end, out)
        want = ref.log_mel(audio[end - w : end], P)
        np.testing.assert_allclose(out, want, atol=1e-3, rtol=0)
    # after the first window only the new hops were transformed
    assert stream.computed_frames == P.frames + (ends[-1] - ends[0]) // P.hop_length
    assert stream.reused_frames > 0.9 * P.frames * (len(ends) - 1)


@pytest.mark.parametrize("impl", IMPLS)
def test_gap_jump_back_and_invalidate(impl: str) -> None:
    stream = StreamingLogMel(_kernel(impl), history_frames=150)
    audio = _stream(4.0, seed=3)
    w, hop = P.window_samples, P.hop_length
    out = np.empty((P.n_mels, P.frames), np.float32)
    for end in (w, w + 3 * hop, 2 * w + 50 * hop, w + 10 * hop, w + 10 * hop, 3 * w):
        stream.window(audio[end - w : end], end, out)
        np.testing.assert_allclose(out, ref.log_mel(audio[end - w : end], P), atol=1e-3)
    # same indices, different audio (a source restarted): stale until invalidated
    other = _stream(4.0, seed=4)
    end = 3 * w
    stream.window(other[end - w : end], end, out)
    assert not np.allclose(out, ref.log_mel(other[end - w : end], P), atol=1e-3)
    stream.invalidate()
    stream.window(other[end - w : end], end, out)
    np.testing.assert_allclose(out, ref.log_mel(other[end - w : end], P), atol=1e-3)


def test_bad_calls_raise_usage_errors() -> None:
    stream = StreamingLogMel(_kernel("reference"))
    out = np.empty((P.n_mels, P.frames), np.float32)
    x = np.zeros(P.window_samples, np.float32)
    with pytest.raises(UsageError, match="multiple of hop_length"):
        stream.window(x, P.window_samples + 1, out)
    with pytest.raises(UsageError, match="shape"):
        stream.window(x[:-1], P.window_samples, out)
    with pytest.raises(UsageError, match="out must have shape"):
        stream.window(x, P.window_samples, out[:, :-1])
    with pytest.raises(UsageError, match="history_frames"):
        StreamingLogMel(_kernel("reference"), history_frames=10)
