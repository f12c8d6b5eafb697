"""Ring sizes a user sets are used as given or refused, never enlarged behind their back."""

from __future__ import annotations

import pytest

from avfuse.assets import default_model_path
from avfuse.engine.pipeline import PipelineConfig
from avfuse.engine.sources.synthetic import SceneScript, SyntheticSource
from avfuse.engine.stream_build import build_stream
from avfuse.errors import UsageError
from avfuse.manifest import load_manifest

pytestmark = pytest.mark.timeout(120)


def _build(**config: object):
    src = SyntheticSource(script=SceneScript.default(seed=0, digits="1"), realtime=True)
    return build_stream(
        index=0,
        sources=[src],
        manifests=[load_manifest(default_model_path())],
        config=PipelineConfig(realtime=True, **config),  # type: ignore[arg-type]
    )


def test_a_frame_ring_set_too_small_is_refused_with_the_size_it_needs() -> None:
    """A live 30 fps stream whose frames wait for their audio (deadline + offset) needs
    more than 4 slots: the error names the value, the need and the fix."""
    with pytest.raises(UsageError, match=r"video_slots=4 is too small .* video_slots >= \d+"):
        _build(video_slots=4)


def test_an_audio_ring_set_too_small_is_refused_with_the_size_it_needs() -> None:
    """Two 1 s model windows and a second of slack need at least 3 s of audio."""
    with pytest.raises(UsageError, match=r"audio_ring_s=1 is too small .* audio_ring_s >= 3"):
        _build(audio_ring_s=1.0)


def test_sizes_set_large_enough_are_used_as_given_and_unset_ones_are_sized() -> None:
    st = _build(video_slots=57, audio_ring_s=12.5)
    assert st.ingest.frame_ring.slots == 57
    assert st.ingest.config.audio_ring_s == 12.5
    sized = _build()
    assert sized.ingest.config.video_slots >= 8
    assert sized.ingest.config.audio_ring_s == 10.0  # max(10 s, what the model needs)
