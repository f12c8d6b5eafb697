"""Fixtures of the engine tests: the tiny model's manifest and a loaded ONNX Runtime backend."""

from tests.engine.pipeline_kit import backend, manifest_path  # noqa: F401 - pytest fixtures
