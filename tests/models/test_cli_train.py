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
