"""The `avfuse` command: help for every sub-command, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from avfuse.cli import COMMANDS, build_parser, main
from tests.fixtures.models import write_tiny_model


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "avfuse.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_every_built_command_has_explaining_help(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    built = list(sub.choices)
    assert "info" in built
    for name in built:
        with pytest.raises(SystemExit) as info:
            main([name, "--help"])
        assert info.value.code == 0
        text = capsys.readouterr().out
        assert f"usage: avfuse {name}" in text
        # a description beyond the usage line, and every option documented
        assert len(text.splitlines()) > 4
    # every command of the contract is built; none may vanish silently
    assert built == list(COMMANDS)
    assert {"demo", "run", "info", "devices", "bench"} <= set(built)


def test_a_command_module_that_fails_to_import_is_an_error_not_a_missing_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "avfuse.commands.devices", None)  # import now fails
    with pytest.raises(ImportError):
        build_parser()


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_info_validates_and_prints_a_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_tiny_model(tmp_path)
    assert main(["info", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "manifest  valid" in out and "64 mels" in out and "64x48 gray" in out
    assert main(["info", str(tmp_path / "model.onnx"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "tiny"


def test_info_on_a_broken_manifest_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = write_tiny_model(tmp_path)
    data = json.loads(path.read_text())
    data["preprocess"]["audio"]["n_mels"] = "64"
    path.write_text(json.dumps(data))
    proc = _run("info", str(tmp_path))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "preprocess.audio.n_mels" in lines[0] and "must be an integer" in lines[0]


def test_info_on_a_missing_model_says_how_to_fix(tmp_path: Path) -> None:
    proc = _run("info", str(tmp_path / "nowhere" / "model.onnx"))
    assert proc.returncode == 2
    assert "avfuse export" in proc.stderr
