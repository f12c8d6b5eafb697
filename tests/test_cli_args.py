"""Every option of every command is range-checked up front: exit 2, one line, no traceback.

A bad number is refused by argparse while parsing (the line names the option, the
value and the accepted range); files the command needs (--truth) or will write
(--metrics, --summary, --out) are checked before any work starts, and those checks
create and truncate nothing.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from avfuse.cli import build_parser, main
from avfuse.commands import bench as bench_command
from avfuse.commands import run as run_command
from avfuse.errors import UsageError
from tests.fixtures.models import write_tiny_model

CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _parse_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Parse `argv` expecting argparse's exit 2; return its single stderr line."""
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(argv)
    assert info.value.code == 2
    lines = capsys.readouterr().err.strip("\n").splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def _cli_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the CLI in-process expecting exit 2 from a UsageError; return the stderr line."""
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip("\n").splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# ---------------------------------------------------------------------- numbers


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("argv", "value", "accepted"),
    [
        (["run", "--av-offset-ms", "nan"], "nan", "[-10000, 10000] ms"),
        (["run", "--av-offset-ms", "inf"], "inf", "[-10000, 10000] ms"),
        (["run", "--av-offset-ms", "1e12"], "1e12", "[-10000, 10000] ms"),
        (["run", "--audio-deadline-ms", "inf"], "inf", "[0, 10000] ms"),
        (["run", "--audio-deadline-ms", "-1"], "-1", "[0, 10000] ms"),
        (["run", "--duration", "-1"], "-1", "(0, 604800] s"),
        (["run", "--duration", "0"], "0", "(0, 604800] s"),
        (["run", "--duration", "nan"], "nan", "(0, 604800] s"),
        (["run", "--max-batch", "0"], "0", "[1, 1024]"),
        (["run", "--max-batch", "5000"], "5000", "[1, 1024]"),
        (["demo", "--drift-ppm", "nan"], "nan", "[-10000, 10000] ppm"),
        (["demo", "--jitter-ms", "-5"], "-5", "[0, 1000] ms"),
        (["demo", "--av-offset-ms=-inf"], "-inf", "[-10000, 10000] ms"),
        (["demo", "--seed", "-1"], "-1", "[0, 4294967295]"),
        (["bench", "--fps", "0"], "0", "(0, 240]"),
        (["bench", "--latency-bound-ms", "nan"], "nan", "(0, 60000] ms"),
        (["bench", "--e2e-seconds", "inf"], "inf", "(0, 3600] s"),
        (["bench", "--repeats", "0"], "0", "[1, 100]"),
        (["bench", "--warmup", "-1"], "-1", "[0, 100000]"),
        (["bench", "--min-duration-ms", "1.5"], "1.5", "[0, 3600000] ms"),
        (["bench", "--batch-sizes", "0,4"], "0,4", "[1, 1024]"),
        (["bench", "--streams", "4,2"], "4,2", "strictly ascending"),
        (["bench", "--tolerance", "nan"], "nan", "[0, 10]"),
        (["train", "--model", "early", "--lr", "nan"], "nan", "(0, 10]"),
        (["train", "--model", "early", "--p-audio-missing", "nan"], "nan", "[0, 1]"),
        (["train", "--model", "early", "--batch-size", "0"], "0", "[1, 4096]"),
        (["train", "--model", "early", "--epochs", "0"], "0", "[1, 10000]"),
        (["export", "x.pt", "--out", "o", "--atol", "nan"], "nan", "(0, 1]"),
    ],
)
def test_out_of_range_number_exits_2_naming_option_value_and_range(
    argv: list[str], value: str, accepted: str, capsys: pytest.CaptureFixture[str]
) -> None:
    flag = next(
        a.split("=")[0] for a in argv if a.startswith("--") and a not in ("--model", "--out")
    )
    line = _parse_error(argv, capsys)
    assert f"argument {flag}" in line and repr(value) in line and accepted in line, line


@pytest.mark.timeout(60)
def test_threads_are_bounded_by_the_cores_and_the_message_says_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    line = _parse_error(["run", "--threads", "1000"], capsys)
    assert f"[0, {4 * CORES}]" in line and f"{CORES} CPU core" in line and "'1000'" in line
    assert build_parser().parse_args(["run", "--threads", str(4 * CORES)]).threads == 4 * CORES
    line = _parse_error(["bench", "--threads", f"1,{4 * CORES + 1}"], capsys)
    assert f"[1, {4 * CORES}]" in line and f"{CORES} CPU core" in line
    line = _parse_error(["train", "--model", "early", "--threads", "0"], capsys)
    assert f"[1, {4 * CORES}]" in line


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("argv", "dest", "want"),
    [
        (["run", "--av-offset-ms=-10000"], "av_offset_ms", -10000.0),
        (["run", "--av-offset-ms", "10000"], "av_offset_ms", 10000.0),
        (["run", "--audio-deadline-ms", "0"], "audio_deadline_ms", 0.0),
        (["run", "--duration", "604800"], "duration", 604800.0),
        (["run", "--duration", "0.001"], "duration", 0.001),
        (["run", "--max-batch", "1024"], "max_batch", 1024),
        (["demo", "--drift-ppm=-10000"], "drift_ppm", -10000.0),
        (["demo", "--jitter-ms", "1000"], "jitter_ms", 1000.0),
        (["demo", "--seed", "4294967295"], "seed", 4294967295),
        (["bench", "--streams", "1,2,256"], "streams", (1, 2, 256)),
        (["bench", "--tolerance", "0"], "tolerance", 0.0),
        (["train", "--model", "early", "--p-video-missing", "1"], "p_video_missing", 1.0),
        (["export", "x.pt", "--out", "o", "--atol", "1"], "atol", 1.0),
    ],
)
def test_values_at_the_edges_of_the_ranges_are_accepted(
    argv: list[str], dest: str, want: object
) -> None:
    assert getattr(build_parser().parse_args(argv), dest) == want


@pytest.mark.timeout(60)
def test_a_negative_exponent_value_is_explained(capsys: pytest.CaptureFixture[str]) -> None:
    # argparse takes "-1e3" for an option: the line says how to write the value
    line = _parse_error(["run", "--av-offset-ms", "-1e3"], capsys)
    assert "--av-offset-ms=VALUE" in line
    assert build_parser().parse_args(["run", "--av-offset-ms=-1e3"]).av_offset_ms == -1000.0


@pytest.mark.timeout(60)
def test_option_equals_dashes_is_refused_not_stored_as_a_list(
    capsys: pytest.CaptureFixture[str],
) -> None:
    line = _parse_error(["run", "--av-offset-ms=--"], capsys)
    assert "--av-offset-ms" in line and "[-10000, 10000]" in line


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["run", "--bogus"], "unrecognized arguments: --bogus"),
        (["run", "--av-offset-ms"], "expected one argument"),
        (["train"], "one of the arguments --model --zoo --pretraining is required"),
        (["bench", "--scenario", "nope"], "invalid choice: 'nope'"),
        (["run", "--backend", "onnx"], "ort, tensorrt, torch"),
        (["run", "--kernels", "fast"], "'fast'"),
        (["run", "--device", "gpu"], "cuda:N"),
        (["demo", "--digits", "12a"], "'12a'"),
        (["bench", "--precisions", "fp8"], "fp32, fp16, int8"),
        (["devices", "--nope"], "unrecognized arguments"),
        (["info", "a", "b"], "unrecognized arguments: b"),
    ],
)
def test_argparse_errors_of_a_command_are_one_line(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _parse_error(argv, capsys)
    assert line.startswith(f"avfuse {argv[0]}: error: ") and needle in line, line


@pytest.mark.timeout(60)
def test_bench_option_names_are_the_benchmark_configs() -> None:
    from avfuse.bench import config

    assert set(bench_command.OPT_LEVELS) == set(config.OPT_LEVELS)
    assert set(bench_command.PRECISIONS) == set(config.PRECISIONS)
    assert config.BenchConfig().backends == bench_command.BACKENDS


# ---------------------------------------------------------------------- sources


@pytest.mark.timeout(60)
def test_negative_synthetic_seed_exits_2_before_the_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    line = _cli_line(["run", "--source", "synthetic:-1", "--quiet"], capsys)
    assert "'synthetic:-1'" in line and "[0, 4294967295]" in line


@pytest.mark.timeout(60)
@pytest.mark.parametrize("arg", ["-1", "1.5", "x", "4294967296", "9" * 5000])
def test_open_source_refuses_a_bad_synthetic_seed(arg: str) -> None:
    from avfuse.engine.sources import open_source

    with pytest.raises(UsageError, match=r"seed must be an integer in \[0, 4294967295\]"):
        open_source(f"synthetic:{arg}", sample_rate=16000)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("kw", "name"),
    [
        ({"av_offset_ms": math.nan}, "av_offset_ms"),
        ({"av_offset_ms": 1e12}, "av_offset_ms"),
        ({"drift_ppm": math.nan}, "drift_ppm"),
        ({"drift_ppm": -2e6}, "drift_ppm"),
        ({"jitter_ms": -5.0}, "jitter_ms"),
        ({"jitter_ms": math.inf}, "jitter_ms"),
        ({"fps": math.nan}, "fps"),
        ({"block_ms": math.inf}, "block_ms"),
        ({"sample_rate": 16000.5}, "sample_rate"),
        ({"noise_dbfs": math.nan}, "noise_dbfs"),
        ({"audio_gaps": ((1.0, math.nan),)}, "audio gap"),
    ],
)
def test_synthetic_source_refuses_non_finite_or_out_of_range_settings(kw: dict, name: str) -> None:
    from avfuse.engine.sources.synthetic import SyntheticSource

    with pytest.raises(UsageError, match=name):
        SyntheticSource(**kw)


# ---------------------------------------------------------------------- files the run needs


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (None, "does not exist"),
        ("not json", "is not valid JSON"),
        (b"\xff\xfe\x00", "cannot be read"),
        ("{}", "not a list"),
        ("[1]", "record [0] is not an object"),
        ('[{"label": "1", "start": 0}]', "record [0] has no 'end'"),
        ('[{"label": "1", "start": 0, "end": 1}, {"label": "2"}]', "record [1] has no 'start'"),
        ('[{"label": "1", "start": "a", "end": 1}]', "start must be a finite number"),
        ('[{"label": "1", "start": NaN, "end": 1}]', "start must be a finite number"),
        ('[{"label": null, "start": 0, "end": 1}]', "label must be a string"),
        ('[{"label": "1", "start": 2, "end": 1}]', "start 2 is after end 1"),
    ],
)
def test_bad_truth_is_refused_before_the_run(
    tmp_path: Path, content: str | bytes | None, needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    truth = tmp_path / "truth.json"
    if isinstance(content, bytes):
        truth.write_bytes(content)
    elif content is not None:
        truth.write_text(content)
    # the source does not exist either: the truth is checked first, before any source opens
    argv = ["run", "--source", str(tmp_path / "absent.mp4"), "--truth", str(truth), "--quiet"]
    line = _cli_line(argv, capsys)
    assert "--truth" in line and str(truth) in line and needle in line, line


@pytest.mark.timeout(60)
def test_a_valid_truth_passes_the_preflight(tmp_path: Path) -> None:
    truth = tmp_path / "truth.json"
    truth.write_text(json.dumps([{"label": "3", "start": 0.5, "end": 2.0, "card": [0.5, 2.0]}]))
    args = build_parser().parse_args(["run", "--source", "synthetic", "--truth", str(truth)])
    run_command.preflight(args)


def _unwritable(tmp_path: Path) -> list[tuple[Path, str]]:
    afile = tmp_path / "afile"
    afile.write_text("x")
    return [
        (Path("/proc/version"), "cannot be written"),  # exists, refuses writes even to root
        (Path("/proc/avfuse-nowhere/m.json"), "nothing can be created in /proc"),
        (afile / "m.json", "is a file, not a folder"),
        (afile / "sub" / "m.json", "is a file, not a folder"),
        (tmp_path, "is a folder, not a file"),
    ]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", range(5))
def test_unwritable_metrics_is_refused_before_the_run(
    tmp_path: Path, case: int, capsys: pytest.CaptureFixture[str]
) -> None:
    path, needle = _unwritable(tmp_path)[case]
    argv = ["run", "--source", str(tmp_path / "absent.mp4"), "--metrics", str(path), "--quiet"]
    line = _cli_line(argv, capsys)
    assert "--metrics" in line and str(path) in line and needle in line, line
    line = _cli_line(["demo", "--metrics", str(path), "--quiet"], capsys)
    assert "--metrics" in line and needle in line, line


@pytest.mark.timeout(60)
def test_checking_metrics_keeps_an_existing_file_and_creates_nothing(tmp_path: Path) -> None:
    existing = tmp_path / "old.json"
    existing.write_text('{"keep": true}\n')
    args = build_parser().parse_args(["run", "--source", "synthetic", "--metrics", str(existing)])
    run_command.preflight(args)
    assert existing.read_text() == '{"keep": true}\n'
    missing = tmp_path / "new" / "deeper" / "m.json"
    args = build_parser().parse_args(["run", "--source", "synthetic", "--metrics", str(missing)])
    run_command.preflight(args)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.json"]  # no folder, no probe


@pytest.mark.timeout(60)
def test_bench_outputs_are_checked_before_measuring(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    args = build_parser().parse_args(["bench", "--summary", "/proc/version"])
    with pytest.raises(UsageError, match="--summary /proc/version cannot be written"):
        bench_command.preflight(args)
    args = build_parser().parse_args(["bench", "--out", str(afile)])
    with pytest.raises(UsageError, match="--out .* is a file, not a folder"):
        bench_command.preflight(args)
    args = build_parser().parse_args(["bench", "--compare", str(afile), str(tmp_path / "b.json")])
    with pytest.raises(UsageError, match="--compare .*b.json does not exist"):
        bench_command.preflight(args)


@pytest.mark.timeout(60)
def test_export_out_that_is_a_file_is_refused_before_exporting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = tmp_path / "checkpoint.pt"
    ckpt.write_bytes(b"not a checkpoint")
    out = tmp_path / "out"
    out.write_text("a file")
    line = _cli_line(["export", str(ckpt), "--out", str(out)], capsys)
    assert "--out" in line and "is a file, not a folder" in line, line


@pytest.mark.timeout(60)
def test_train_checks_dropout_shares_and_the_report_path_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--model", "early", "--out", str(tmp_path / "o")]
    line = _cli_line([*argv, "--p-audio-missing", "0.6", "--p-video-missing", "0.6"], capsys)
    assert "sum to 1.2" in line
    argv = ["train", "--zoo", "--out", str(tmp_path / "o"), "--results", "/proc/version"]
    line = _cli_line(argv, capsys)
    assert "--results /proc/version cannot be written" in line


# ---------------------------------------------------------------------- info


def _info_cases(tmp: Path) -> dict[str, tuple[Path, list[str]]]:
    empty = tmp / "empty"
    empty.mkdir()
    only_onnx = tmp / "only_onnx"
    write_tiny_model(only_onnx)
    (only_onnx / "manifest.json").unlink()
    no_model = tmp / "no_model"
    write_tiny_model(no_model)
    (no_model / "model.onnx").unlink()
    return {
        "absent onnx": (Path("/nope.onnx"), ["model file /nope.onnx does not exist", "export"]),
        "absent folder": (tmp / "nowhere", ["does not exist", "avfuse export"]),
        "folder without manifest": (empty, [f"folder {empty} holds no model", "manifest.json"]),
        "folder with only the model": (only_onnx, ["has model.onnx but no manifest.json"]),
        "model without manifest": (
            only_onnx / "model.onnx",
            ["model.onnx has no manifest.json beside it", "avfuse export"],
        ),
        "manifest without model": (
            no_model,
            ["names the model file 'model.onnx'", "does not exist", "beside the manifest"],
        ),
    }


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "case",
    [
        "absent onnx",
        "absent folder",
        "folder without manifest",
        "folder with only the model",
        "model without manifest",
        "manifest without model",
    ],
)
def test_info_names_the_file_that_is_missing(
    tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path, needles = _info_cases(tmp_path)[case]
    line = _cli_line(["info", str(path)], capsys)
    assert "no manifest at" not in line
    for needle in needles:
        assert needle in line, line
