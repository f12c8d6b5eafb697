"""ONNX Runtime provider options: every name we pass is one ONNX Runtime documents, the
TensorRT profile covers the run's batches, and a missing provider names what it lacks.

The documented names are copied here from ONNX Runtime's provider sources (the parsers
that reject unknown keys) and its documentation pages, so the code under test cannot
change the table it is checked against:
    onnxruntime/core/providers/cuda/cuda_execution_provider_info.cc,
    onnxruntime/core/providers/tensorrt/tensorrt_execution_provider_info.cc
    https://onnxruntime.ai/docs/execution-providers/CUDA-ExecutionProvider.html
    https://onnxruntime.ai/docs/execution-providers/TensorRT-ExecutionProvider.html
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import pytest

from avfuse.assets import default_model_path
from avfuse.backends import providers
from avfuse.backends.providers import cuda_options, session_providers, tensorrt_options
from avfuse.errors import BackendUnavailable, UsageError
from avfuse.manifest import TensorSpec, load_manifest

CUDA_DOCUMENTED = {
    "device_id", "gpu_mem_limit", "arena_extend_strategy", "cudnn_conv_algo_search",
    "do_copy_in_default_stream", "has_user_compute_stream", "user_compute_stream",
    "gpu_external_alloc", "gpu_external_free", "gpu_external_empty_cache",
    "cudnn_conv_use_max_workspace", "enable_cuda_graph", "cudnn_conv1d_pad_to_nc1d",
    "tunable_op_enable", "tunable_op_tuning_enable", "tunable_op_max_tuning_duration_ms",
    "enable_skip_layer_norm_strict_mode", "prefer_nhwc", "use_ep_level_unified_stream",
    "use_tf32",
}  # fmt: skip
CUDNN_CONV_ALGO_SEARCH = {"EXHAUSTIVE", "HEURISTIC", "DEFAULT"}
TENSORRT_DOCUMENTED = {
    "device_id", "has_user_compute_stream", "user_compute_stream",
    "trt_max_partition_iterations", "trt_min_subgraph_size", "trt_max_workspace_size",
    "trt_fp16_enable", "trt_bf16_enable", "trt_int8_enable",
    "trt_int8_calibration_table_name", "trt_int8_use_native_calibration_table",
    "trt_dla_enable", "trt_dla_core", "trt_dump_subgraphs", "trt_engine_cache_enable",
    "trt_engine_cache_path", "trt_engine_cache_prefix", "trt_engine_decryption_enable",
    "trt_engine_decryption_lib_path", "trt_force_sequential_engine_build",
    "trt_context_memory_sharing_enable", "trt_layer_norm_fp32_fallback",
    "trt_timing_cache_enable", "trt_timing_cache_path", "trt_force_timing_cache",
    "trt_detailed_build_log", "trt_build_heuristics_enable", "trt_sparsity_enable",
    "trt_builder_optimization_level", "trt_auxiliary_streams", "trt_tactic_sources",
    "trt_extra_plugin_lib_paths", "trt_profile_min_shapes", "trt_profile_max_shapes",
    "trt_profile_opt_shapes", "trt_cuda_graph_enable", "trt_dump_ep_context_model",
    "trt_ep_context_file_path", "trt_ep_context_embed_mode",
}  # fmt: skip
HAVE_TRT = importlib.util.find_spec("tensorrt") is not None


def _bundled():
    return load_manifest(default_model_path())


def test_cuda_option_names_and_values_are_documented() -> None:
    opts = cuda_options(1)
    assert set(opts) <= CUDA_DOCUMENTED, set(opts) - CUDA_DOCUMENTED
    assert opts["device_id"] == "1"
    assert opts["cudnn_conv_algo_search"] in CUDNN_CONV_ALGO_SEARCH
    assert all(isinstance(v, str) for v in opts.values())


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_tensorrt_option_names_are_documented(precision: str, tmp_path: Path) -> None:
    opts = tensorrt_options(0, _bundled(), precision=precision, max_batch=16, cache=tmp_path)
    assert set(opts) <= TENSORRT_DOCUMENTED, set(opts) - TENSORRT_DOCUMENTED
    assert opts["trt_fp16_enable"] == ("1" if precision == "fp16" else "0")
    assert opts["trt_int8_enable"] == ("1" if precision == "int8" else "0")
    assert opts["trt_engine_cache_enable"] == opts["trt_timing_cache_enable"] == "1"
    assert Path(opts["trt_engine_cache_path"]).parent == tmp_path


def test_tensorrt_profile_spans_one_to_the_largest_batch(tmp_path: Path) -> None:
    opts = tensorrt_options(0, _bundled(), precision="fp16", max_batch=16, cache=tmp_path)
    assert opts["trt_profile_min_shapes"] == "audio:1x64x97,image:1x1x48x64,mask:1x2"
    assert opts["trt_profile_opt_shapes"] == "audio:8x64x97,image:8x1x48x64,mask:8x2"
    assert opts["trt_profile_max_shapes"] == "audio:16x64x97,image:16x1x48x64,mask:16x2"


def test_tensorrt_profile_refuses_a_dynamic_non_batch_dim(tmp_path: Path) -> None:
    seq = TensorSpec(name="x", shape=("batch", "time"), modality="audio")
    m = dataclasses.replace(_bundled(), inputs=(seq,))
    with pytest.raises(UsageError, match=r"'x' has a dynamic dim 1 \('time'\)"):
        tensorrt_options(0, m, precision="fp16", max_batch=8, cache=tmp_path)


def test_a_provider_missing_from_onnxruntime_names_the_package() -> None:
    cpu_only = ["CPUExecutionProvider"]
    with pytest.raises(
        BackendUnavailable, match=r"cuda provider is not in onnxruntime .*onnxruntime-gpu"
    ):
        session_providers("cuda", device_id=0, manifest=_bundled(), available=cpu_only)
    chain = session_providers("cpu", device_id=0, manifest=_bundled(), available=cpu_only)
    assert chain == [("CPUExecutionProvider", {})]


def test_a_gpu_provider_without_a_gpu_names_the_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    """onnxruntime-gpu installed on a machine whose driver lists no GPU."""
    monkeypatch.setattr(providers, "gpu_names", lambda: ())
    eps = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    with pytest.raises(BackendUnavailable, match="needs an NVIDIA GPU and driver.*nvidia-smi"):
        session_providers("cuda", device_id=0, manifest=_bundled(), available=eps)


@pytest.mark.skipif(HAVE_TRT, reason="checks the message where TensorRT is absent")
def test_the_tensorrt_provider_without_tensorrt_names_the_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A GPU and onnxruntime-gpu, but not TensorRT's libraries."""
    monkeypatch.setattr(providers, "gpu_names", lambda: ("GPU 0: NVIDIA H100",))
    monkeypatch.setenv("AVFUSE_CACHE_DIR", str(tmp_path))
    eps = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    with pytest.raises(
        BackendUnavailable, match=r"TensorRT's libraries: pip install 'avfuse\[gpu\]'"
    ):
        session_providers("tensorrt", device_id=0, manifest=_bundled(), available=eps)
    chain = session_providers("cuda", device_id=0, manifest=_bundled(), available=eps)
    assert [name for name, _ in chain] == ["CUDAExecutionProvider", "CPUExecutionProvider"]
