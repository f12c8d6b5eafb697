"""Every GPU flag is reachable from the CLI, the config file and the API, and on a machine
without a GPU, onnxruntime-gpu or TensorRT fails with one line naming the right reason
(exit 2), before any work."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from avfuse.backends.select import gpu_names
from avfuse.cli import main
from avfuse.errors import BackendUnavailable, UsageError

HAVE_ORT_GPU = "CUDAExecutionProvider" in __import__("onnxruntime").get_available_providers()
HAVE_TRT = importlib.util.find_spec("tensorrt") is not None
BARE = not gpu_names() and not HAVE_ORT_GPU and not HAVE_TRT
bare_only = pytest.mark.skipif(not BARE, reason="checks the messages of a machine without a GPU")


def _line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the CLI in-process expecting exit 2; its single stderr line."""
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip("\n").splitlines()
    assert len(lines) == 1, lines
    return lines[0]


SRC = ["--source", "synthetic", "--quiet", "--duration", "1"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (
            ["run", *SRC, "--provider", "cpu", "--device", "cuda"],
            "--provider cpu contradicts --device cuda",
        ),
        (
            ["run", *SRC, "--provider", "tensorrt", "--device", "cpu"],
            "--provider tensorrt runs on the GPU",
        ),
        (
            ["run", *SRC, "--backend", "torch", "--provider", "cuda"],
            "--provider applies to --backend ort only",
        ),
        (["run", *SRC, "--precision", "int8"], "avfuse build MODEL --precision int8 --onnx-only"),
        (
            ["run", *SRC, "--backend", "tensorrt", "--device", "cpu"],
            "--backend tensorrt runs on the GPU only",
        ),
        (
            ["demo", "--fast", "--provider", "cpu", "--device", "cuda:1"],
            "--provider cpu contradicts --device cuda:1",
        ),
        (
            ["bench", "--backends", "torch", "--provider", "cuda"],
            "--provider applies to --backend ort only",
        ),
        (
            ["build", "--precision", "fp16", "--onnx-only"],
            "--onnx-only writes a quantised ONNX model",
        ),
        (
            ["build", "--precision", "int8", "--device", "cpu"],
            "built on the GPU: use --device cuda",
        ),
    ],
)
def test_contradicting_flags_are_refused_before_any_work(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _line(argv, capsys)
    assert line.startswith(f"avfuse {argv[0]}: error: ") and needle in line, line


@bare_only
@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["run", *SRC, "--provider", "cuda"], "cuda provider is not in onnxruntime"),
        (["demo", "--fast", "--quiet", "--device", "cuda"], "pip install onnxruntime-gpu"),
        (["run", *SRC, "--device", "cuda"], "pip install onnxruntime-gpu"),
        (
            ["run", *SRC, "--provider", "tensorrt", "--precision", "fp16"],
            "tensorrt provider is not in onnxruntime",
        ),
        (
            ["run", *SRC, "--backend", "tensorrt"],
            "TensorRT is not installed: pip install 'avfuse[gpu]'",
        ),
        (["run", *SRC, "--backend", "auto", "--device", "cuda"], "no NVIDIA GPU here"),
        (
            ["build", "--precision", "fp16"],
            "pip install 'avfuse[gpu]' (needs an NVIDIA GPU and driver); and no NVIDIA GPU",
        ),
        (["build", "--precision", "int8", "--data", "demo"], "TensorRT is not installed"),
    ],
)
def test_what_is_missing_here_is_named(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _line(argv, capsys)
    assert needle in line, line


@pytest.mark.timeout(60)
def test_bad_flag_values_are_argparse_one_liners(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, needle in (
        (["run", "--provider", "rocm"], "invalid choice: 'rocm'"),
        (["run", "--precision", "fp8"], "invalid choice: 'fp8'"),
        (["bench", "--provider", "gpu"], "invalid choice: 'gpu'"),
        (["build", "--precision", "int4"], "invalid choice: 'int4'"),
        (["build"], "--precision"),
    ):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
        lines = capsys.readouterr().err.strip("\n").splitlines()
        assert len(lines) == 1 and needle in lines[0], lines


@pytest.mark.timeout(60)
def test_the_config_file_carries_provider_and_precision(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "--example"]) == 0
    example = capsys.readouterr().out
    assert "# provider = " in example and "# precision = " in example
    bad = tmp_path / "bad.toml"
    bad.write_text('source = ["synthetic"]\ndevice = "cpu"\nprovider = "cuda"\nquiet = true\n')
    line = _line(["run", "--config", str(bad)], capsys)
    assert "--provider cuda runs on the GPU but --device is cpu" in line
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('source = ["synthetic"]\nprecision = "fp64"\n')
    line = _line(["run", "--config", str(wrong)], capsys)
    assert "precision" in line and "fp64" in line and "fp16" in line


@pytest.mark.timeout(120)
def test_backend_auto_says_which_on_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", *SRC, "--backend", "auto", "--sink", "jsonl:-"]) == 0
    err = capsys.readouterr().err.splitlines()
    said = [ln for ln in err if "auto: " in ln]
    assert len(said) == 1, err
    if not gpu_names():
        assert said[0] == "avfuse: auto: ONNX Runtime on the CPU (no GPU asked for or found)"


@pytest.mark.timeout(60)
def test_the_api_takes_the_same_settings() -> None:
    from avfuse.api import load_backend, run

    with pytest.raises(UsageError, match="--provider cpu contradicts --device cuda"):
        load_backend(provider="cpu", device="cuda")
    with pytest.raises(UsageError, match="--provider applies to --backend ort only"):
        run(sources=["synthetic"], backend="torch", provider="cuda", sinks=[])
    with load_backend(provider="cpu", precision="fp32") as be:
        assert be.options.provider == "cpu" and be.providers == ["CPUExecutionProvider"]
    if BARE:
        with pytest.raises(BackendUnavailable, match="onnxruntime-gpu"):
            load_backend(provider="cuda")
