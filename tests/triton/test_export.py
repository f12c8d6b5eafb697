"""`avfuse export --triton`: every config.pbtxt parses as Triton's ModelConfig (the protobuf
definitions tritonclient ships) and says what the ONNX graph and the manifest say."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from avfuse.assets import default_model_path
from avfuse.errors import UsageError
from avfuse.export.triton import export_triton
from avfuse.manifest import file_sha256, load_manifest
from tests.fixtures.models import write_tiny_model
from tests.triton.kit import env, need_tritonclient

MODEL = default_model_path().parent

#: ONNX element type -> the config's data_type name
ONNX_TO_CONFIG = {1: "TYPE_FP32", 7: "TYPE_INT64", 10: "TYPE_FP16", 11: "TYPE_FP64"}


def parse_config(path: Path):  # noqa: ANN201 - model_config_pb2.ModelConfig
    need_tritonclient()
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def graph_tensors(model: Path) -> dict[str, tuple[str, list[int | str]]]:
    """name -> (config data_type, dims with names for dynamic ones), inputs and outputs."""
    g = onnx.load(str(model)).graph
    out = {}
    for v in [*g.input, *g.output]:
        t = v.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in t.shape.dim]
        out[v.name] = (ONNX_TO_CONFIG[t.elem_type], dims)
    return out


@pytest.mark.timeout(120)
def test_every_config_parses_and_matches_the_graph_and_the_manifest(tmp_path: Path) -> None:
    r = export_triton(MODEL, tmp_path / "repo")
    assert sorted(r.models) == ["onnx", "python"]
    graph = graph_tensors(MODEL / "model.onnx")
    source = load_manifest(MODEL)
    expect_backend = {"onnx": ("onnxruntime", "model.onnx"), "python": ("python", "model.py")}
    for variant, folder in r.models.items():
        cfg = parse_config(folder / "config.pbtxt")
        assert cfg.name == folder.name
        assert (cfg.backend, expect_backend[variant][1]) == expect_backend[variant]
        assert (folder / "1" / expect_backend[variant][1]).is_file()
        assert cfg.max_batch_size == 8
        declared = {t.name: (t.data_type, list(t.dims)) for t in [*cfg.input, *cfg.output]}
        from tritonclient.grpc import model_config_pb2 as pb

        for name, (dtype, dims) in graph.items():
            assert dims[0] == "batch"  # the bundled model's dynamic batch axis
            got_type, got_dims = declared.pop(name)
            assert pb.DataType.Name(got_type) == dtype
            assert got_dims == dims[1:], name
        assert declared == {}
        assert [t.name for t in cfg.input] == [s.name for s in source.inputs]
        assert list(cfg.dynamic_batching.preferred_batch_size) == [4, 8]
        assert cfg.dynamic_batching.max_queue_delay_microseconds == 500
        assert [(g.count, pb.ModelInstanceGroup.Kind.Name(g.kind)) for g in cfg.instance_group] \
            == [(1, "KIND_CPU")]  # fmt: skip
        assert cfg.parameters["avfuse_model_sha256"].string_value == file_sha256(
            MODEL / "model.onnx"
        )
        # the manifest kept beside the config loads and names the version folder's model
        kept = load_manifest(folder)
        assert kept.model_path == (folder / "1" / "model.onnx").resolve()
        assert kept.labels == source.labels and kept.sha256 == source.sha256


@pytest.mark.timeout(60)
def test_a_stateful_model_exposes_state_as_plain_tensors(tmp_path: Path) -> None:
    write_tiny_model(tmp_path / "m", stateful=True)
    r = export_triton(tmp_path / "m", tmp_path / "repo", variants=("python",), max_batch=4)
    text = (r.models["python"] / "config.pbtxt").read_text()
    cfg = parse_config(r.models["python"] / "config.pbtxt")
    assert "state_in" in [t.name for t in cfg.input]
    assert "state_out" in [t.name for t in cfg.output]
    assert not cfg.HasField("sequence_batching")  # the client carries the state per stream
    assert "carried by the client per stream" in text
    assert cfg.max_batch_size == 4 and list(cfg.dynamic_batching.preferred_batch_size) == [2, 4]


@pytest.mark.timeout(60)
def test_a_state_batched_on_axis_1_is_not_batched_and_a_scalar_const_is_folded_in(
    tmp_path: Path,
) -> None:
    """silero-vad: state [2, batch, 128] (Triton can only batch axis 0) and a 0-d int64
    `sr`, which Triton refuses as an input of a model it cannot batch: it goes into the
    served graph as an initializer, and out of the manifest beside it."""
    try:
        import silero_vad
    except ImportError:
        pytest.skip("silero-vad is not installed: bash scripts/install.sh --all")
    folder = tmp_path / "silero"
    folder.mkdir()
    data = json.loads(
        (Path(__file__).parents[1] / "thirdparty/manifests/silero_vad.json").read_text()
    )
    (folder / "manifest.json").write_text(json.dumps(data))
    (folder / "silero_vad.onnx").symlink_to(
        Path(silero_vad.__file__).parent / "data/silero_vad.onnx"
    )
    r = export_triton(folder, tmp_path / "repo", variants=("onnx",))
    cfg = parse_config(r.models["onnx"] / "config.pbtxt")
    assert r.max_batch_size == 0 and cfg.max_batch_size == 0
    assert not cfg.HasField("dynamic_batching")
    by = {t.name: t for t in cfg.input}
    assert list(by["state"].dims) == [2, -1, 128]
    assert "sr" not in by
    assert list(by["input"].dims) == [-1, 576]
    from onnx import numpy_helper

    graph = onnx.load(str(r.models["onnx"] / "1" / "model.onnx")).graph
    assert "sr" not in [i.name for i in graph.input]
    sr = next(t for t in graph.initializer if t.name == "sr")
    assert numpy_helper.to_array(sr).shape == () and int(numpy_helper.to_array(sr)) == 16000
    written = json.loads((r.models["onnx"] / "manifest.json").read_text())
    assert [i["name"] for i in written["inputs"]] == ["input", "state"]
    assert written["model"]["sha256"] == file_sha256(r.models["onnx"] / "1" / "model.onnx")
    assert any("sr folded" in n for n in r.notes)


@pytest.mark.timeout(60)
def test_the_plan_variant_is_written_only_with_a_plan(tmp_path: Path) -> None:
    r = export_triton(MODEL, tmp_path / "a")
    assert "plan" not in r.models and any("plan variant skipped" in n for n in r.notes)
    assert not (tmp_path / "a" / "avfuse-late_plan").exists()
    plan = tmp_path / "model.plan"
    plan.write_bytes(b"not a real engine: only the repository layout is checked here")
    r = export_triton(MODEL, tmp_path / "b", plan=plan, gpu=True)
    cfg = parse_config(r.models["plan"] / "config.pbtxt")
    assert cfg.platform == "tensorrt_plan"
    assert (r.models["plan"] / "1" / "model.plan").read_bytes() == plan.read_bytes()
    from tritonclient.grpc import model_config_pb2 as pb

    assert pb.ModelInstanceGroup.Kind.Name(cfg.instance_group[0].kind) == "KIND_GPU"
    with pytest.raises(UsageError, match="does not exist"):
        export_triton(MODEL, tmp_path / "c", plan=tmp_path / "missing.plan")


@pytest.mark.timeout(120)
def test_export_cli_writes_the_repository_and_refuses_out_with_triton(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "avfuse.cli", "export", "--triton", str(tmp_path / "repo")]
    ok = subprocess.run([*cmd, str(MODEL)], capture_output=True, text=True,
                        timeout=100, env=env())  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "avfuse-late_python" in ok.stdout and "serve it: avfuse serve" in ok.stdout
    assert (tmp_path / "repo" / "avfuse-late_python" / "config.pbtxt").is_file()
    bad = subprocess.run([*cmd, "--out", str(tmp_path / "o"), str(MODEL)],
                         capture_output=True, text=True, timeout=100, env=env())  # fmt: skip
    assert bad.returncode == 2
    assert len(bad.stderr.strip().splitlines()) == 1 and "give one" in bad.stderr
