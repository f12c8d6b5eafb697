"""Service mode: config files (keys = run's flags), SIGHUP reload, systemd notifications.

The reload tests drive a real `avfuse run --config` process on the synthetic scene in
real time and send it real signals; the systemd test listens on a real Unix datagram
socket as systemd would.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from avfuse.cli import build_parser, main
from avfuse.config import merge_argv, read_config, reload_problem
from avfuse.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "avfuse" / "assets" / "model"


def _run_parser():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sub.choices["run"]


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "deploy.toml"
    p.write_text(text)
    return p


# ---------------------------------------------------------------------- config files


def test_config_keys_are_runs_flags_and_values_obey_their_rules(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        'source = ["synthetic", "synthetic:3"]\nav_offset_ms = 120\nrealtime = true\n'
        '[models.digits]\npath = "m"\nthreshold = 0.7\nvalues = true\n',
    )
    cfg = read_config(p, _run_parser())
    assert cfg.argv() == [
        "--source=synthetic", "--source=synthetic:3", "--av-offset-ms=120", "--realtime",
        "--model=digits=m", "--threshold=digits=0.7", "--values=digits",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "wanted"),
    [
        ("av_offset_ms = 120\nav_ofset_ms = 3\n", "line 2: av_ofset_ms: unknown key"),
        ("av_offset_ms = nan\n", "line 1: av_offset_ms: expected a finite number"),
        ("threads = 1000\n", "line 1: threads: expected an integer in [0,"),
        ("realtime = 1\n", "line 1: realtime: must be true or false"),
        ("threshold = 0.6\n", "line 1: threshold: unknown key (it belongs in a [models.NAME]"),
        ("[models.a]\npath = 3\n", "line 2: [models.a] path: must be a string"),
        ('[models.a]\npath = "m"\nthreshold = 2\n', "line 3: [models.a] threshold: expected"),
        ("source = [\n", "not valid TOML"),
    ],
)
def test_a_bad_config_names_the_key_and_its_line(tmp_path: Path, text: str, wanted: str) -> None:
    with pytest.raises(UsageError) as e:
        read_config(_write(tmp_path, text), _run_parser())
    assert wanted in str(e.value) and "\n" not in str(e.value)


def test_a_model_table_without_a_path_is_the_bundled_model(tmp_path: Path) -> None:
    cfg = read_config(_write(tmp_path, "[models.digits]\nevery_frames = 2\n"), _run_parser())
    bundled = Path(__file__).resolve().parents[1] / "avfuse" / "assets" / "model" / "manifest.json"
    argv = cfg.argv()
    assert "--every-frames=digits=2" in argv, argv
    (model,) = [a for a in argv if a.startswith("--model=")]
    assert Path(model.split("=", 2)[2]).resolve() == bundled.resolve()


def test_flags_override_the_file_and_a_repeated_flag_replaces_its_list(tmp_path: Path) -> None:
    p = _write(tmp_path, 'av_offset_ms = 120\nsink = ["console", "jsonl:a.jsonl"]\n')
    parser = _run_parser()
    cfg = read_config(p, parser)
    args = parser.parse_args(merge_argv(cfg, ["--av-offset-ms", "40", "--sink", "jsonl:b"], parser))
    assert args.av_offset_ms == 40.0 and args.sink == ["jsonl:b"]
    args = parser.parse_args(merge_argv(cfg, [], parser))
    assert args.av_offset_ms == 120.0 and args.sink == ["console", "jsonl:a.jsonl"]


def test_only_reloadable_keys_may_change(tmp_path: Path) -> None:
    parser = _run_parser()
    old = read_config(_write(tmp_path, 'source = ["synthetic"]\n'), parser)
    same = read_config(_write(tmp_path, 'source = ["synthetic"]\nsink = ["console"]\n'), parser)
    moved = read_config(_write(tmp_path, 'source = ["synthetic:2"]\n'), parser)
    assert reload_problem(old, same) is None
    assert "source changed" in (reload_problem(old, moved) or "")


def test_the_example_config_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["config", "--example"]) == 0
    example = capsys.readouterr().out
    path = _write(tmp_path, example)
    assert main(["config", "--check", str(path)]) == 0
    assert "valid" in capsys.readouterr().out


# ---------------------------------------------------------------------- a running service


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _default_signals() -> None:
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_DFL)


def _service(tmp_path: Path, *, model: str) -> tuple[Path, Path]:
    out = tmp_path / "out.jsonl"
    cfg = _write(
        tmp_path,
        f'source = ["synthetic"]\nrealtime = true\nduration = 14\nquiet = true\n'
        f'sink = ["jsonl:{out}"]\n'
        f'[models.digits]\npath = "{MODEL}"\nvalues = true\n{model}',
    )
    return cfg, out


def _records(out: Path) -> list[dict]:
    if not out.exists():
        return []
    return [json.loads(x) for x in out.read_text().splitlines() if x.endswith("}")]


def _wait_for(out: Path, proc: subprocess.Popen, pred, timeout: float = 40.0) -> list[dict]:
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        recs = _records(out)
        if pred(recs):
            return recs
        time.sleep(0.05)
    raise AssertionError("timed out")


def _start(cfg: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "avfuse.cli", "run", "--config", str(cfg)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        env=_env(), preexec_fn=_default_signals,
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_sighup_with_a_new_decision_rule_changes_decisions_without_a_gap(
    tmp_path: Path,
) -> None:
    # first no decision can be made (a digit is never on screen for a minute) ...
    cfg, out = _service(tmp_path, model="min_duration_ms = 60000\n")
    proc = _start(cfg)
    try:
        _wait_for(out, proc, lambda r: sum(x["type"] == "value" for x in r) >= 30)
        # ... then the usual rule is reloaded
        cfg.write_text(cfg.read_text().replace("min_duration_ms = 60000", "min_duration_ms = 400"))
        proc.send_signal(signal.SIGHUP)
        recs = _wait_for(out, proc, lambda r: any(x.get("kind") == "reloaded" for x in r))
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    recs = _records(out)
    i = next(k for k, x in enumerate(recs) if x.get("kind") == "reloaded")
    assert "model digits options" in recs[i]["message"]
    # the model still ran at its cadence (every 3rd frame) across the reload: the value
    # records' stream times step by three frames, with no hole where the reload happened
    times = [x["stream_time"] for x in recs if x["type"] == "value"]
    steps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert len(times) > 100 and max(steps) < 4.5 / 30
    # nothing was decided before the reload, digits were after it
    assert not [x for x in recs[:i] if x["type"] in ("onset", "event")]
    assert len([x for x in recs[i + 1 :] if x["type"] == "event"]) >= 3
    assert recs[-1]["type"] == "summary" and sum(recs[-1]["drops"].values()) == 0


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_sighup_with_a_broken_config_is_refused_and_the_run_goes_on(tmp_path: Path) -> None:
    cfg, out = _service(tmp_path, model="threshold = 0.6\n")
    proc = _start(cfg)
    try:
        _wait_for(out, proc, lambda r: sum(x["type"] == "event" for x in r) >= 1)
        good = cfg.read_text()
        cfg.write_text(good.replace("threshold = 0.6", "threshold = 7"))  # out of range
        proc.send_signal(signal.SIGHUP)
        _wait_for(out, proc, lambda r: any(x.get("kind") == "reload_refused" for x in r))
        cfg.write_text(good.replace('source = ["synthetic"]', 'source = ["synthetic:9"]'))
        proc.send_signal(signal.SIGHUP)  # a key that cannot change while running
        _wait_for(out, proc, lambda r: sum(x.get("kind") == "reload_refused" for x in r) >= 2)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    recs = _records(out)
    refused = [x for x in recs if x.get("kind") == "reload_refused"]
    assert "threshold" in refused[0]["message"] and "line" in refused[0]["message"]
    assert "source changed" in refused[1]["message"]
    # the old config kept running: events after the refusals, all frames processed
    last = max(k for k, x in enumerate(recs) if x.get("kind") == "reload_refused")
    assert [x for x in recs[last:] if x["type"] == "event"]
    summary = recs[-1]
    assert summary["type"] == "summary" and summary["streams"][0]["video_frames"] > 380
    assert summary["frames"] > 125  # the model on every 3rd of them


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_systemd_is_told_ready_fed_the_watchdog_and_told_stopping(tmp_path: Path) -> None:
    sock_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(sock_path))
        sock.settimeout(30)
        env = _env()
        env.update(NOTIFY_SOCKET=str(sock_path), WATCHDOG_USEC="5000000")
        proc = subprocess.Popen(
            [sys.executable, "-m", "avfuse.cli", "run", "--source", "synthetic", "--realtime",
             "--duration", "4", "--sink", f"jsonl:{tmp_path / 'o.jsonl'}", "--quiet"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
            env=env, preexec_fn=_default_signals,
        )  # fmt: skip
        messages = []
        try:
            while True:
                try:
                    messages.append(sock.recv(4096).decode())
                except TimeoutError:
                    break
                if messages[-1] == "STOPPING=1":  # the last message a run sends
                    break
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert messages[0] == "READY=1"
    assert messages.count("WATCHDOG=1") >= 2  # one per stats tick of the pipeline's loop
    assert messages[-1] == "STOPPING=1"
