"""Fixtures of the third-party model tests: the media, made once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.thirdparty import media


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """14.5 s of espeak-ng speech in four phrases with pauses, 22.05 kHz WAV."""
    return media.speech_wav(tmp_path_factory.mktemp("speech") / "speech.wav")


@pytest.fixture(scope="session")
def other_speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second, different speech file (another voice and text), for two-stream runs."""
    path = tmp_path_factory.mktemp("speech2") / "other.wav"
    return media.speech_wav(path, media.OTHER_PHRASES, voice="en+f2", seed=1)


@pytest.fixture(scope="session")
def orientation_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The colourful scene in its four orientations, an H.264 mp4."""
    return media.orientation_video(tmp_path_factory.mktemp("video") / "orientation.mp4")
