"""A stateful third-party model through Triton: silero-vad (LSTM state `[2, batch, 128]`
and a 0-d int64 `sr`), served by the python variant, the client carrying each stream's
state. Two speech files in one run, so a state mixed between streams would show."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.fixtures.ffmpeg import needs_ffmpeg
from tests.thirdparty import kit, media
from tests.triton.kit import need_tritonclient, start_server

pytestmark = [needs_ffmpeg, pytest.mark.slow, pytest.mark.timeout(420)]

MODEL = "silero-vad"


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("speech")
    return [
        media.speech_wav(folder / "a.wav"),
        media.speech_wav(folder / "b.wav", media.OTHER_PHRASES, voice="en+f2", seed=1),
    ]


@pytest.fixture(scope="module")
def silero(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the local model's manifest, the repository with its python variant)."""
    need_tritonclient()
    kit.need("silero_vad")
    from avfuse.export.triton import export_triton

    root = tmp_path_factory.mktemp("silero")
    model = kit.install("silero_vad", root / "model")
    r = export_triton(model, root / "repo", variants=("python",))
    return model, r.models["python"]


def stream_values(records: list[dict[str, Any]], stream: Path) -> np.ndarray:
    _, v = kit.values(records, model=MODEL, output="output", stream=stream)
    return v


def test_silero_vad_through_triton_gives_the_local_events_per_stream(
    silero: tuple[Path, Path],
    speech: list[Path],
    stub_env: Path,
    install,
    tmp_path: Path,  # noqa: ANN001
) -> None:
    model, served = silero
    local = kit.run_values(speech, [model], tmp_path / "ort.jsonl")
    server = start_server(served.parent, (served.name,), stub_env, install)
    try:
        remote = kit.run_values(
            speech, [served], tmp_path / "triton.jsonl",
            "--backend", "triton", "--triton-url", server.grpc_url,
        )  # fmt: skip
    finally:
        server.stop()
    for wav in speech:
        want = [(e["label"], e["start"], e["end"]) for e in kit.events(local, stream=wav)]
        got = [(e["label"], e["start"], e["end"]) for e in kit.events(remote, stream=wav)]
        assert len(want) >= 3, want  # the phrases are found at all
        assert got == want, wav.name
        a, b = stream_values(local, wav), stream_values(remote, wav)
        assert a.shape == b.shape and np.abs(a - b).max() < 1e-4
