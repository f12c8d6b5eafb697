"""Backend settings settled once: what is left out is filled, contradictions are refused
with one line naming both settings, `auto` picks the best runtime present here."""

from __future__ import annotations

import pytest

from avfuse.backends import create_backend
from avfuse.backends.base import BackendOptions
from avfuse.backends.select import Choice, choose, gpu_names
from avfuse.errors import BackendUnavailable, UsageError

NO_GPU = not gpu_names()


@pytest.mark.parametrize(
    ("kwargs", "want"),
    [
        ({}, Choice(backend="ort", device="cpu", provider="cpu", precision="fp32")),
        (
            {"provider": "cuda"},
            Choice(backend="ort", device="cuda", provider="cuda", precision="fp32"),
        ),
        (
            {"device": "cuda:1"},
            Choice(backend="ort", device="cuda:1", provider="cuda", precision="fp32"),
        ),
        (
            {"provider": "tensorrt", "precision": "int8"},
            Choice(backend="ort", device="cuda", provider="tensorrt", precision="int8"),
        ),
        (
            {"backend": "tensorrt", "precision": "fp16"},
            Choice(backend="tensorrt", device="cuda", provider=None, precision="fp16"),
        ),
        (
            {"backend": "torch", "device": "cuda"},
            Choice(backend="torch", device="cuda", provider=None, precision="fp32"),
        ),
    ],
)
def test_what_is_left_out_is_filled_from_what_is_given(kwargs: dict, want: Choice) -> None:
    assert choose(**kwargs) == want


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"provider": "cpu", "device": "cuda"}, "--provider cpu contradicts --device cuda"),
        (
            {"provider": "cuda", "device": "cpu"},
            "--provider cuda runs on the GPU but --device is cpu",
        ),
        ({"provider": "tensorrt", "device": "cpu"}, "--provider tensorrt runs on the GPU"),
        ({"backend": "torch", "provider": "cuda"}, "--provider applies to --backend ort only"),
        (
            {"backend": "tensorrt", "provider": "tensorrt"},
            "--provider applies to --backend ort only",
        ),
        ({"backend": "tensorrt", "device": "cpu"}, "--backend tensorrt runs on the GPU only"),
        ({"precision": "int8"}, "avfuse build MODEL --precision int8 --onnx-only"),
        (
            {"provider": "cuda", "precision": "fp16"},
            "the cuda provider runs the model in the precision",
        ),
        ({"backend": "torch", "precision": "fp16"}, "the torch backend runs fp32 only"),
        (
            {"backend": "triton:grpc://127.0.0.1:8001", "provider": "cuda"},
            "--provider applies to --backend ort only, not triton: drop it",
        ),
        ({"backend": "triton", "device": "cuda"}, "the Triton server decides devices"),
        ({"backend": "triton", "precision": "fp16"}, "--backend triton --precision fp16"),
        ({"provider": "rocm"}, "unknown provider 'rocm'"),
        ({"precision": "fp8"}, "unknown precision 'fp8'"),
    ],
)
def test_contradictions_are_one_line_naming_both(kwargs: dict, needle: str) -> None:
    with pytest.raises(UsageError) as info:
        choose(**kwargs)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_a_triton_spec_keeps_its_server_and_runs_on_the_client_cpu() -> None:
    """The URL reaches create_backend as given; the client asks for no device of its own
    (the triton backend refuses one: the server's instance_group decides)."""
    c = choose("triton:http://127.0.0.1:8000?retries=1")
    assert c == Choice(
        backend="triton:http://127.0.0.1:8000?retries=1",
        device="cpu",
        provider=None,
        precision="fp32",
    )


def test_backend_options_refuse_the_same_contradictions() -> None:
    with pytest.raises(UsageError, match="--provider cpu contradicts --device cuda:0"):
        BackendOptions(provider="cpu", device="cuda:0")
    with pytest.raises(UsageError, match="--provider applies to --backend ort only"):
        create_backend("torch", provider="cuda")
    assert BackendOptions(device="cuda:3").device_index == 3


@pytest.mark.skipif(not NO_GPU, reason="checks what auto picks on a machine without a GPU")
def test_auto_picks_the_cpu_here_and_says_so() -> None:
    c = choose("auto")
    assert (c.backend, c.device, c.provider) == ("ort", "cpu", "cpu")
    assert c.reason == "auto: ONNX Runtime on the CPU (no GPU asked for or found)"
    with pytest.raises(BackendUnavailable, match="--backend auto --device cuda: no NVIDIA GPU"):
        choose("auto", device="cuda")
