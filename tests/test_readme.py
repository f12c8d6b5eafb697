"""README's opening commands work in a fresh shell: the install puts `avfuse` in
`.venv/bin`, which is not on PATH, so they call it there; `.ci/run` runs exactly the
test command; the "Use" section, which spells plain `avfuse`, says how to get it."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(30)


def _opening_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block is not None and text.index(block.group(0)) < 200, "README opens with the block"
    return [ln.split("#", 1)[0].strip() for ln in block.group(1).splitlines() if ln.strip()]


def test_the_opening_commands_call_the_venvs_avfuse_and_python() -> None:
    install_demo, install_tests = _opening_commands()
    for cmd, tool in ((install_demo, ".venv/bin/avfuse"), (install_tests, ".venv/bin/python")):
        steps = [shlex.split(part) for part in cmd.split("&&")]
        assert steps[0][:2] == ["bash", "scripts/install.sh"], cmd
        assert steps[1][0] == tool, f"{cmd!r}: a fresh shell has no {tool.split('/')[-1]} on PATH"
    assert shlex.split(install_demo.split("&&")[1])[1:] == ["demo"]
    assert "venv .venv" in (ROOT / "scripts" / "install.sh").read_text()


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci == _opening_commands()[1]


def test_the_use_section_says_how_to_get_avfuse_on_path() -> None:
    text = (ROOT / "README.md").read_text()
    use = text.split("\n## Use\n", 1)[1].split("\n## ", 1)[0]
    assert "\navfuse demo" in use  # it spells plain `avfuse` ...
    assert "source .venv/bin/activate" in use and ".venv/bin/avfuse" in use  # ... and says how
