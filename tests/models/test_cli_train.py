"""`avfuse train` explains itself and refuses contradictory options."""

from __future__ import annotations

import pytest

from avfuse.cli import main


def test_help_lists_models_and_options(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for phrase in ("--model", "--zoo", "--epochs", "--seed", "--out", "--tiny", "hybrid",
                   "attention", "modality dropout", "accuracy"):  # fmt: skip
        assert phrase in text


def test_model_and_zoo_are_exclusive(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--model", "early", "--zoo"])
    assert info.value.code == 2


def test_bad_epochs_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--model", "early", "--epochs", "0"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--epochs" in err and len(err.strip().splitlines()) == 1


def _safe(tmp_path) -> list[str]:
    """Options that keep a run that should have been refused small and out of the tree."""
    out = ["--tiny", "--quiet", "--no-bundle", "--out", str(tmp_path / "out")]
    return [*out, "--results", str(tmp_path / "acc.json"), "--readme", str(tmp_path / "README")]


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--model", "late", "--pretrain-epochs", "5"], "--pretrain-epochs applies to"),
        (["--model", "early", "--contrastive-weight", "1"], "--contrastive-weight applies to"),
        (["--zoo", "--label-fraction", "0.1"], "--label-fraction applies to --model"),
        (["--model", "embed", "--label-fraction", "0"], "--label-fraction"),
    ],
)
def test_contrastive_options_out_of_place_are_usage_errors(capsys, tmp_path, argv, words):
    try:  # argparse exits; a contradiction found after parsing is a returned 2
        code = main(["train", *argv, *_safe(tmp_path)])
    except SystemExit as e:
        code = e.code
    assert code == 2
    assert not (tmp_path / "out").exists()  # refused before anything was made
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1


def test_help_names_the_pretraining_study_and_the_embed_member(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for phrase in ("--pretraining", "--label-fraction", "--pretrain-epochs", "embed"):
        assert phrase in text
