"""deploy/: the systemd unit passes `systemd-analyze`, every Dockerfile parses and keeps the
image's invariants, and every `avfuse` flag the files use is one the CLI lists.

Nothing here builds an image or starts the service (see deploy/README.md for what was and
was not run); these checks catch a unit or Dockerfile that no longer matches the CLI.
"""

from __future__ import annotations

import functools
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "systemd" / "avfuse.service"
JETSON_DROPIN = DEPLOY / "systemd" / "jetson.conf"
CONFIG = DEPLOY / "deploy.example.toml"
DOCKERFILES = sorted(
    p for p in (DEPLOY / "docker").glob("Dockerfile.*") if p.suffix != ".dockerignore"
)
UNIT_BINARY = "/opt/avfuse/venv/bin/avfuse"

INSTRUCTIONS = {
    "FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
    "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
}  # fmt: skip


# --- the CLI's own word on its flags -------------------------------------------------


@functools.cache
def _help(command: str) -> str | None:
    """`python -m avfuse.cli COMMAND --help` of this checkout, or None if no such command."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    argv = [sys.executable, "-m", "avfuse.cli", *([command] if command else []), "--help"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    return proc.stdout if proc.returncode == 0 else None


def _listed_flags(command: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", _help(command) or ""))


# --- where the deploy files call avfuse ------------------------------------------------


def _joined(lines: list[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    """(number of the first line, the line with its backslash continuations joined)."""
    start, parts = 0, []
    for n, line in lines:
        start = start or n
        if line.rstrip().endswith("\\"):
            parts.append(line.rstrip()[:-1])
            continue
        yield start, " ".join([*parts, line])
        start, parts = 0, []


def _shell_lines(path: Path) -> Iterator[tuple[int, str]]:
    """The shell command lines of a file: a script's lines, a Dockerfile's indented example
    commands in its comments, a Markdown file's fenced blocks and `inline code`."""
    numbered = list(enumerate(path.read_text().splitlines(), 1))
    if path.suffix == ".sh":
        yield from _joined(numbered)
    elif path.suffix == ".md":
        fenced, block = False, []
        for n, line in numbered:
            if line.startswith("```"):
                fenced = not fenced
                continue
            if fenced:
                block.append((n, line))
            else:
                yield from ((n, code) for code in re.findall(r"`([^`\n]+)`", line))
        yield from _joined(block)
    else:
        yield from _joined([(n, ln[1:]) for n, ln in numbered if ln.startswith("#  ")])


def _is_wrapper(token: str) -> bool:
    """A word before the command proper: sudo, env, an option, VAR=value, "${array[@]}"."""
    return (
        token in ("sudo", "env", "exec", "nohup")
        or token.startswith(("$", "-"))
        or re.fullmatch(r"[A-Za-z_]\w*=.*", token) is not None
    )


def _argvs(line: str) -> Iterator[list[str]]:
    """The arguments of each `avfuse ...` or `docker run ... avfuse:TAG ...` in a shell line."""
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError:
        return
    segment: list[str] = []
    for tok in [*tokens, ";"]:
        if tok not in ("|", "||", "&&", ";"):
            segment.append(tok)
            continue
        i = 0
        while i < len(segment):  # sudo -u USER env VAR=... "${wrapper[@]}" avfuse ...
            t = segment[i]
            if t in ("-u", "-g"):
                i += 2
            elif _is_wrapper(t):
                i += 1
            else:
                break
        if i < len(segment) and Path(segment[i]).name == "avfuse":
            yield segment[i + 1 :]
        elif segment[:2] == ["docker", "run"]:
            image = next(
                (j for j, t in enumerate(segment) if re.fullmatch(r"avfuse:[\w.-]+", t)), None
            )
            if image is not None and image + 1 < len(segment):
                yield segment[image + 1 :]
        segment = []


def _dockerfile(path: Path) -> list[dict]:
    parser = pytest.importorskip("dockerfile_parse", reason="pip install dockerfile-parse")
    return parser.DockerfileParser(fileobj=io.BytesIO(path.read_bytes())).structure


def _unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A unit file as {section: {key: [values in order]}} (keys may repeat)."""
    out: dict[str, dict[str, list[str]]] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            out.setdefault(section, {})
            continue
        key, _, value = line.partition("=")
        out[section].setdefault(key.strip(), []).append(value.strip())
    return out


@functools.cache
def _uses() -> tuple[tuple[str, str, str], ...]:
    """Every (where, command, flag) the deploy files pass to avfuse; flag "" for none."""
    found: list[tuple[str, list[str]]] = []
    for value in _unit(UNIT)["Service"]["ExecStart"]:
        argv = shlex.split(value.lstrip("-@:+!"))
        if Path(argv[0]).name == "avfuse":
            found.append((f"{UNIT.name} ExecStart", argv[1:]))
    for path in DOCKERFILES:
        items = {s["instruction"]: s["value"] for s in _dockerfile(path)}
        if json.loads(items["ENTRYPOINT"]) == ["avfuse"]:
            found.append((f"{path.name} ENTRYPOINT+CMD", json.loads(items["CMD"])))
    shell = [*DOCKERFILES, DEPLOY / "README.md", *(DEPLOY / "docker").glob("*.sh")]
    for path in shell:
        for n, line in _shell_lines(path):
            found += [(f"{path.name}:{n}", argv) for argv in _argvs(line)]
    tomllib = pytest.importorskip("tomllib")
    keys = tomllib.loads(CONFIG.read_text())
    found += [(f"{CONFIG.name} key {k}", ["run", "--" + k.replace("_", "-")]) for k in keys]

    uses = []
    for where, argv in found:
        command = argv[0] if argv and not argv[0].startswith("-") else ""
        flags = [t.split("=")[0] for t in argv if t.startswith("--")]
        uses += [(where, command, f) for f in flags] or [(where, command, "")]
    return tuple(uses)


# --- systemd -------------------------------------------------------------------------


def _unit_copy(tmp_path: Path, *, dropin: bool = False) -> Path:
    """The unit with its binary replaced by /usr/bin/true (verify wants ExecStart to exist)."""
    text = UNIT.read_text()
    assert f"ExecStart={UNIT_BINARY} " in text
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace(f"ExecStart={UNIT_BINARY} ", "ExecStart=/usr/bin/true "))
    if dropin:
        (tmp_path / f"{UNIT.name}.d").mkdir()
        shutil.copy(JETSON_DROPIN, tmp_path / f"{UNIT.name}.d" / JETSON_DROPIN.name)
    return copy


def _systemd_analyze() -> str:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    return exe


@pytest.mark.timeout(60)
@pytest.mark.parametrize("dropin", [False, True], ids=["unit", "unit+jetson.conf"])
def test_unit_passes_systemd_analyze_verify_without_a_word(tmp_path: Path, dropin: bool) -> None:
    # verify exits 0 on an unknown key or an unparsable value and only prints it
    copy = _unit_copy(tmp_path, dropin=dropin)
    proc = subprocess.run(
        [_systemd_analyze(), "verify", str(copy)], capture_output=True, text=True, timeout=50
    )
    assert proc.returncode == 0 and not (proc.stdout + proc.stderr).strip(), (
        proc.stdout + proc.stderr
    )


@pytest.mark.timeout(60)
def test_unit_sandbox_exposure_stays_at_most_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [_systemd_analyze(), "security", "--offline=true", "--no-pager", str(_unit_copy(tmp_path))],
        capture_output=True, text=True, timeout=50,
    )  # fmt: skip
    if "--offline" in proc.stderr:
        pytest.skip(f"systemd-analyze has no --offline (systemd < 250): {proc.stderr.strip()}")
    score = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", proc.stdout)
    assert score, proc.stdout[-2000:] + proc.stderr
    assert float(score.group(1)) <= 2.0, f"exposure {score.group(1)} > 2.0\n{proc.stdout}"


@pytest.mark.timeout(120)
def test_unit_restarts_on_failure_but_not_on_bad_input_and_stops_clean_on_sigterm() -> None:
    codes = " ".join((_help("") or "").split())
    bad_input = re.search(r"(\d+) bad input", codes)
    sigterm = re.search(r"(\d+) SIGTERM", codes)
    assert bad_input and sigterm, codes
    service = _unit(UNIT)["Service"]

    def last(key: str) -> str:  # the value systemd uses: the last assignment wins
        return service.get(key, [""])[-1]

    assert last("Type") == "notify" and last("NotifyAccess") == "main"
    assert last("Restart") == "on-failure"
    assert bad_input.group(1) in last("RestartPreventExitStatus").split(), "exit 2 is restarted"
    assert sigterm.group(1) in last("SuccessExitStatus").split(), "a drained stop reads as failed"
    assert last("KillSignal") == "SIGTERM" and last("KillMode") == "mixed"
    assert last("ExecReload").split()[-2:] == ["-HUP", "$MAINPID"]
    assert last("WatchdogSec") and last("TimeoutStopSec")
    assert last("User") not in ("", "root", "0")
    assert {"audio", "video"} <= set(last("SupplementaryGroups").split())
    assert last("ProtectSystem") == "strict" and last("NoNewPrivileges") == "yes"
    for directory in ("RuntimeDirectory", "StateDirectory", "CacheDirectory"):
        assert last(directory) == "avfuse", directory
    # the kernel and engine caches live where ProtectSystem=strict still lets them be written
    env = dict(v.split("=", 1) for v in service.get("Environment", []))
    assert env.get("NUMBA_CACHE_DIR", "").startswith("/var/cache/avfuse/")
    assert env.get("AVFUSE_CACHE_DIR", "").startswith("/var/cache/avfuse")


# --- Dockerfiles ---------------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_parses_and_keeps_the_image_invariants(path: Path) -> None:
    structure = [s for s in _dockerfile(path) if s["instruction"] != "COMMENT"]
    unknown = [s["instruction"] for s in structure if s["instruction"] not in INSTRUCTIONS]
    assert not unknown, f"{path.name}: not Dockerfile instructions: {unknown}"
    for s in structure:
        if s["instruction"] == "RUN":
            sh = subprocess.run(["sh", "-n", "-c", s["value"]], capture_output=True, text=True)
            assert sh.returncode == 0, f"{path.name}:{s['startline'] + 1}: {sh.stderr}"

    global_args = {}
    for s in structure:
        if s["instruction"] == "FROM":
            break
        assert s["instruction"] == "ARG", f"{path.name}: {s['instruction']} before the first FROM"
        global_args[s["value"].split("=")[0]] = s["value"]
    stages: list[str] = []
    stage_args: set[str] = set()
    for s in structure:
        line = f"{path.name}:{s['startline'] + 1}"
        words = shlex.split(s["value"]) if s["instruction"] in ("FROM", "COPY", "ARG") else []
        if s["instruction"] == "FROM":
            for var in re.findall(r"\$\{?(\w+)", words[0]):
                assert var in global_args, f"{line}: FROM uses undeclared ARG {var}"
            assert len(words) == 3 and words[1].upper() == "AS", f"{line}: unnamed stage"
            assert words[2] not in stages, f"{line}: stage {words[2]} defined twice"
            stages.append(words[2])
            stage_args = set()
            continue
        if s["instruction"] == "ARG":
            stage_args.add(words[0].split("=")[0])
        elif s["instruction"] == "COPY":
            for flag in (w for w in words if w.startswith("--from=")):
                assert flag[7:] in stages[:-1], f"{line}: COPY {flag} names no earlier stage"
        for var in re.findall(r"\$\{?(\w+)", s["value"]):  # global ARGs are not seen in stages
            assert var not in global_args or var in stage_args, f"{line}: ARG {var} not re-declared"

    final = structure[[i for i, s in enumerate(structure) if s["instruction"] == "FROM"][-1] :]
    last = {s["instruction"]: s["value"] for s in final}
    assert last.get("USER", "root").split(":")[0] not in ("root", "0"), f"{path.name}: runs as root"
    user_at = max(i for i, s in enumerate(final) if s["instruction"] == "USER")
    assert user_at < max(i for i, s in enumerate(final) if s["instruction"] == "ENTRYPOINT")
    healthcheck = last.get("HEALTHCHECK", "NONE")
    assert healthcheck != "NONE" and " CMD " in f" {healthcheck}", f"{path.name}: no HEALTHCHECK"
    probe = json.loads(healthcheck.split(" CMD ", 1)[1])
    assert "/healthz" in " ".join(probe)
    assert json.loads(last["ENTRYPOINT"]) == ["avfuse"]
    assert isinstance(json.loads(last["CMD"]), list)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_copies_files_that_exist_and_its_dockerignore_lets_through(path: Path) -> None:
    ignore = path.with_name(path.name + ".dockerignore")
    allowed = {ln[1:].rstrip("/") for ln in ignore.read_text().splitlines() if ln.startswith("!")}
    for s in _dockerfile(path):
        words = shlex.split(s["value"]) if s["instruction"] in ("COPY", "ADD") else []
        if not words or any(w.startswith("--from=") for w in words):
            continue
        for src in [w for w in words if not w.startswith("--")][:-1]:
            assert (ROOT / src).exists(), f"{path.name}:{s['startline'] + 1}: no {src}"
            assert src in allowed, f"{path.name}: {ignore.name} keeps {src} out of the context"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_healthcheck_port_is_the_port_the_config_serves_metrics_on(path: Path) -> None:
    tomllib = pytest.importorskip("tomllib")
    port = str(tomllib.loads(CONFIG.read_text())["metrics_port"])
    env = {}
    for s in _dockerfile(path):
        if s["instruction"] == "ENV":
            env.update(dict(w.split("=", 1) for w in shlex.split(s["value"])))
        if s["instruction"] == "EXPOSE":
            assert s["value"].split("/")[0] == port, f"{path.name}: EXPOSE {s['value']}"
    assert env["AVFUSE_METRICS_PORT"] == port


# --- flags ---------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_deploy_files_use_only_flags_and_commands_the_cli_lists() -> None:
    uses = _uses()
    places = {re.split(r"[ :]", where)[0] for where, _, _ in uses}
    for name in (UNIT.name, CONFIG.name, "README.md", *(p.name for p in DOCKERFILES)):
        assert name in places, f"found no avfuse command line in {name}: {sorted(places)}"
    wrong = []
    for where, command, flag in uses:
        if _help(command) is None:
            wrong.append(f"{where}: `avfuse {command}` is not a command")
        elif flag and flag not in _listed_flags(command):
            wrong.append(f"{where}: `avfuse {command} --help` does not list {flag}")
    assert not wrong, "\n".join(wrong)


def test_the_example_config_is_one_avfuse_run_accepts(tmp_path: Path) -> None:
    """The shipped example passes the same checks `avfuse run --config` makes."""
    proc = subprocess.run(
        [sys.executable, "-m", "avfuse.cli", "config", "--check",
         str(DEPLOY / "deploy.example.toml")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "valid" in proc.stdout
