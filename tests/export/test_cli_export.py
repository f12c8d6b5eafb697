"""`avfuse export` explains itself and exports a checkpoint from the command line."""

from __future__ import annotations

import pytest

from avfuse.cli import main


def test_help_explains_the_chain(capsys):
    with pytest.raises(SystemExit) as info:
        main(["export", "--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for phrase in ("CHECKPOINT", "--out", "--no-slim", "parity", "manifest.json", "onnx.checker"):
        assert phrase.lower() in text.lower()


def test_missing_checkpoint_exits_2_with_the_fix(tmp_path, capsys):
    code = main(["export", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "avfuse train" in err
    assert not (tmp_path / "out" / "manifest.json").exists()


@pytest.mark.slow
def test_export_from_the_command_line_uses_the_checkpoints_data(tmp_path, capsys):
    from dataclasses import asdict

    import torch

    from avfuse.data import DataConfig
    from avfuse.kernels.reference import AudioParams, VideoParams
    from avfuse.manifest import load_manifest
    from avfuse.models.checkpoint import save_checkpoint
    from avfuse.models.zoo import ModelConfig, build_model

    torch.manual_seed(0)
    config = ModelConfig(name="hybrid", dim=16)
    ckpt = save_checkpoint(
        tmp_path / "checkpoint.pt",
        model=build_model(config).eval(),
        config=config,
        audio=AudioParams(mean=-20.0, std=20.0),
        video=VideoParams(height=48, width=64, colour="gray", mean=(0.5,), std=(0.2,)),
        labels=tuple(str(d) for d in range(10)) + ("none",),
        data_config=asdict(DataConfig.tiny()),
    )
    assert main(["export", str(ckpt), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "parity:" in out and "max abs logit error" in out
    m = load_manifest(tmp_path / "out")
    assert m.metrics["parity"]["samples"] >= 500  # tiny test split x 3 conditions
    assert m.provenance["data_config"]["n_test"] == DataConfig.tiny().n_test
