"""Saving the offset in a config file: only `av_offset_ms` changes, and avfuse run reads it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from avfuse.calibrate.config_edit import write_offset
from avfuse.config import EXAMPLE
from avfuse.errors import UsageError
from tests.calibrate.kit import cli

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEPLOY = """# edge box 7, hall B
source = [
    "udp://127.0.0.1:5004",
]
av_offset_ms = 40   # set by hand in March
threads = 1

[models.digits]
path = "/opt/avfuse/models/digits"
threshold = 0.6
"""


@pytest.mark.timeout(30)
def test_only_the_offset_line_changes_and_its_comment_stays(tmp_path: Path) -> None:
    cfg = tmp_path / "deploy.toml"
    cfg.write_text(DEPLOY)
    done = write_offset(cfg, 123.44)
    after = cfg.read_text()
    assert len(after.splitlines()) == len(DEPLOY.splitlines())
    pairs = zip(DEPLOY.splitlines(), after.splitlines(), strict=True)
    changed = [(a, b) for a, b in pairs if a != b]
    assert changed == [("av_offset_ms = 40   # set by hand in March",
                        "av_offset_ms = 123.4   # set by hand in March")]  # fmt: skip
    assert "was 40" in done


@pytest.mark.timeout(30)
def test_a_file_without_the_key_gets_one_line_and_keeps_every_other(tmp_path: Path) -> None:
    text = DEPLOY.replace("av_offset_ms = 40   # set by hand in March\n", "")
    cfg = tmp_path / "deploy.toml"
    cfg.write_text(text)
    write_offset(cfg, -87.26, note="measured")
    after = cfg.read_text()
    added = [line for line in after.splitlines() if line not in text.splitlines()]
    assert added == ["av_offset_ms = -87.3  # measured"]
    assert after.replace(added[0] + "\n", "") == text
    data = tomllib.loads(after)
    assert data["av_offset_ms"] == -87.3
    assert data["models"]["digits"]["threshold"] == 0.6


@pytest.mark.timeout(30)
def test_the_example_config_is_updated_in_place(tmp_path: Path) -> None:
    cfg = tmp_path / "deploy.toml"
    cfg.write_text(EXAMPLE)
    write_offset(cfg, 250.0)
    before, after = tomllib.loads(EXAMPLE), tomllib.loads(cfg.read_text())
    assert after == {**before, "av_offset_ms": 250.0}
    assert cfg.read_text().count("#") == EXAMPLE.count("#")


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "text,says",
    [
        ("av_offset_ms = \n", "not valid TOML"),
        ("speed = 3\n", "avfuse run would refuse it"),
        ('sink = ["""jsonl:/tmp/a\nav_offset_ms = 5"""]\n', "cannot be edited alone"),
        ('sink = ["""jsonl:/tmp/a\nav_offset_ms = 5\n"""]\n', "cannot be edited alone"),
    ],
)
def test_a_file_that_cannot_be_edited_safely_is_left_alone(
    tmp_path: Path, text: str, says: str
) -> None:
    cfg = tmp_path / "deploy.toml"
    cfg.write_text(text)
    with pytest.raises(UsageError, match=says):
        write_offset(cfg, 10.0)
    assert cfg.read_text() == text
    assert [p.name for p in tmp_path.iterdir()] == ["deploy.toml"]  # no temporary left


@pytest.mark.timeout(30)
def test_a_key_inside_a_multiline_string_is_not_taken_for_the_setting(tmp_path: Path) -> None:
    """An edit of the text that looked like the key would have changed another value."""
    text = 'av_offset_ms = 1\nsink = ["""jsonl:/tmp/a\nav_offset_ms = 5"""]\n'
    cfg = tmp_path / "deploy.toml"
    cfg.write_text(text)
    write_offset(cfg, 10.0)
    assert tomllib.loads(cfg.read_text()) == {**tomllib.loads(text), "av_offset_ms": 10.0}


@pytest.mark.timeout(120)
def test_a_new_file_loads_in_config_check_and_run(tmp_path: Path) -> None:
    cfg = tmp_path / "new.toml"
    write_offset(cfg, 180.0, note="measured by avfuse calibrate")
    r = cli("config", "--check", str(cfg))
    assert r.returncode == 0, r.stderr
    assert "valid (1 option(s)" in r.stdout
    from avfuse.cli import _with_config, build_parser

    args = _with_config(build_parser(), ["run", "--config", str(cfg)], str(cfg))
    assert args.av_offset_ms == 180.0
