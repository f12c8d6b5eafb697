"""silero-vad 6.2.3 through `avfuse run`: a stateful raw-waveform model with a rank-0
int64 const input, its state's batch on axis 1 and a score output.

The reference is the package itself: `load_silero_vad(onnx=True)` (its OnnxWrapper,
on torch tensors) on the same 16 kHz samples avfuse decoded. `audio_forward` gives one
probability per 512-sample chunk, each call seeing the previous call's last 64 samples
(zeros at the start) and the carried LSTM state; `get_speech_timestamps` turns them into
speech segments.

avfuse's decision rule covers the package's threshold (0.5), neg_threshold (0.35) and
min_speech_duration_ms (250). Three things of the package's rule it has no counterpart
for, so the segments differ by exactly these:
    * min_silence_duration_ms (100): the package ends a segment only after 100 ms below
      neg_threshold; avfuse ends it at the first chunk below `off`, so a short dip
      inside a phrase splits it in two;
    * speech_pad_ms (30): the package widens every segment by 30 ms each side;
    * time stamps: the package dates a chunk by its first sample, avfuse by the stream
      time its audio was complete (its last sample), one chunk (32 ms) later.
With min_silence_duration_ms=0 and speech_pad_ms=0 the two agree exactly, one chunk
apart.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.thirdparty import kit
from tests.thirdparty.media import PHRASES

RATE = 16000
CHUNK = 512
CHUNK_S = CHUNK / RATE
MODEL = "silero-vad"

# silero_vad.model uses importlib.resources.path, which Python 3.11 deprecates
pytestmark = pytest.mark.filterwarnings("ignore:path is deprecated:DeprecationWarning")


def _package_model() -> Any:
    kit.need("torch")
    silero = kit.need("silero_vad")
    return silero.load_silero_vad(onnx=True)


def package_probs(samples: np.ndarray) -> np.ndarray:
    """The package's per-chunk speech probabilities (its last chunk zero-padded)."""
    import torch

    model = _package_model()
    with torch.no_grad():
        return model.audio_forward(torch.from_numpy(samples[None].copy()), sr=RATE).numpy()[0]


def package_segments(samples: np.ndarray, **kw: Any) -> list[tuple[float, float]]:
    """get_speech_timestamps on the samples, in seconds (its defaults unless given)."""
    import torch
    from silero_vad import get_speech_timestamps

    ts = get_speech_timestamps(torch.from_numpy(samples.copy()), _package_model(), **kw)
    return [(t["start"] / RATE, t["end"] / RATE) for t in ts]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, speech_wav: Path) -> list[dict[str, Any]]:
    """Records of one `avfuse run --values` of the silero manifest on the speech."""
    folder = tmp_path_factory.mktemp("silero")
    model = kit.install("silero_vad", folder / "model")
    return kit.run_values([speech_wav], [model], folder / "out.jsonl")


def _check_stream(records: list[dict[str, Any]], wav: Path, stream: Path | None) -> float:
    """Assert avfuse's probabilities of one stream equal the package's; the worst error."""
    samples = kit.decode_audio(wav, RATE)
    ref = package_probs(samples)
    times, got = kit.values(records, model=MODEL, output="output", stream=stream)
    whole = len(samples) // CHUNK
    # one decision per whole chunk, stamped at its end; the package also scores the
    # zero-padded partial chunk at the end, which avfuse does not run
    np.testing.assert_allclose(times, CHUNK_S * np.arange(1, whole + 1), atol=5e-4)
    errors = kit.frame_errors(got, ref[:whole, None])
    worst = int(errors.argmax())
    assert errors.max() <= kit.TOLERANCE, (
        f"chunk {worst} ({times[worst]:.3f} s): avfuse {got[worst, 0]:.6f}, "
        f"package {ref[worst]:.6f}"
    )
    return float(errors.max())


def test_the_decision_block_is_the_packages_default_rule() -> None:
    silero = kit.need("silero_vad")
    defaults = {
        k: p.default for k, p in inspect.signature(silero.get_speech_timestamps).parameters.items()
    }
    d = kit.manifest("silero_vad")["decision"]
    assert d["on"] == defaults["threshold"]
    # neg_threshold=None means max(threshold - 0.15, 0.01) in the package
    assert defaults["neg_threshold"] is None
    assert d["off"] == pytest.approx(max(defaults["threshold"] - 0.15, 0.01))
    assert d["min_duration_ms"] == defaults["min_speech_duration_ms"]
    assert d["smoothing"] == "none"


@pytest.mark.timeout(180)
def test_speech_probabilities_match_the_package_chunk_by_chunk(
    run: list[dict[str, Any]], speech_wav: Path
) -> None:
    _check_stream(run, speech_wav, None)


@pytest.mark.timeout(180)
def test_two_streams_batched_together_keep_their_own_state(
    tmp_path: Path, speech_wav: Path, other_speech_wav: Path
) -> None:
    """Two files in one run share micro-batches, so the state tensor [2, batch, 128]
    holds both streams on axis 1; rows mixed up move the probabilities by ~0.9."""
    model = kit.install("silero_vad", tmp_path / "model")
    records = kit.run_values([speech_wav, other_speech_wav], [model], tmp_path / "out.jsonl")
    for wav in (speech_wav, other_speech_wav):
        _check_stream(records, wav, wav)


@pytest.mark.timeout(180)
def test_segments_are_get_speech_timestamps_without_hangover_and_padding(
    run: list[dict[str, Any]], speech_wav: Path
) -> None:
    samples = kit.decode_audio(speech_wav, RATE)
    ref = package_segments(samples, min_silence_duration_ms=0, speech_pad_ms=0)
    got = [(e["start"], e["end"]) for e in kit.events(run)]
    assert {e["label"] for e in kit.events(run)} == {"speech"}
    # avfuse stamps each chunk at its end, the package at its start: one chunk apart
    shifted = [(round(a + CHUNK_S, 3), round(b + CHUNK_S, 3)) for a, b in ref]
    assert got == shifted


@pytest.mark.timeout(180)
def test_segments_cover_the_same_speech_as_get_speech_timestamps_defaults(
    run: list[dict[str, Any]], speech_wav: Path
) -> None:
    """With the package's defaults (100 ms hangover, 30 ms padding) each phrase is one
    segment; avfuse finds the same phrases, some split at a short dip, none elsewhere."""
    samples = kit.decode_audio(speech_wav, RATE)
    ref = package_segments(samples)
    assert len(ref) == len(PHRASES)  # the media: one segment per phrase
    got = [(e["start"] - CHUNK_S, e["end"] - CHUNK_S) for e in kit.events(run)]
    inside = [
        [i for i, (a, b) in enumerate(ref) if a - 1e-3 <= start and end <= b + 1e-3]
        for start, end in got
    ]
    assert all(len(i) == 1 for i in inside), f"avfuse {got} against the package's {ref}"
    assert sorted({i[0] for i in inside}) == list(range(len(ref)))
