"""Tests for avfuse/data/valscenes.py: validation scenes from held-out, allowed sources only."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from avfuse.data.speech import voices_for

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")


@needs_espeak
@pytest.mark.timeout(180)
def test_scenes_use_val_voices_and_no_test_only_source() -> None:
    """Audit what building two hard scenes runs and imports: espeak-ng, never flite/festival/
    mlxtend; every voice is a val voice (held out from training)."""
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
        from avfuse.data.valscenes import validation_scenes
        scenes = validation_scenes(n_scenes=2, digits_per_scene=3, hard=True)
        print(json.dumps({"ran": sorted(set(ran)),
                          "mlxtend": any(m.startswith("mlxtend") for m in imported),
                          "voices": [s.material.voice.name for s in scenes],
                          "engines": [s.material.voice.engine for s in scenes]}))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=170)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.splitlines()[-1])
    assert "flite" not in out["ran"] and "festival" not in out["ran"]
    assert "espeak-ng" in out["ran"] and not out["mlxtend"]
    val = {f"{b}+{v}" if v else b for b, v in voices_for("val")}
    train = {f"{b}+{v}" if v else b for b, v in voices_for("train")}
    assert out["engines"] == ["espeak-ng", "espeak-ng"]
    assert all(v.removeprefix("espeak-ng:") in val for v in out["voices"])
    assert not val & train
    assert len(set(out["voices"])) == 2  # scenes cycle through the voices


@needs_espeak
@pytest.mark.timeout(180)
def test_hard_material_shifts_the_voice_and_degrades_the_cards() -> None:
    """Same voice and seed: the hard words differ in length by the shift factor (0.85-0.91 or
    1.1-1.15), and the hard cards are blurred (less high-frequency energy)."""
    from avfuse.data.valscenes import validation_material

    base, variant = voices_for("val")[0]
    plain = validation_material(base, variant, seed=3, cards_per_digit=4)
    hard = validation_material(base, variant, seed=3, cards_per_digit=4, hard=True)
    for d in (0, 7):
        for a, b in zip(plain.utterances[d], hard.utterances[d], strict=True):
            ratio = len(a) / len(b)
            assert 0.85 <= ratio <= 0.92 or 1.09 <= ratio <= 1.16, ratio

    def sharpness(img: np.ndarray) -> float:
        g = img.astype(np.float64).mean(axis=2)
        return float(np.abs(np.diff(g, axis=1)).mean())

    for d in range(10):
        assert sharpness(hard.cards[d][0]) < sharpness(plain.cards[d][0])
