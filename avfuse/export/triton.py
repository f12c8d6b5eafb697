"""Export step: a model avfuse can run -> a Triton Inference Server model repository.

`export_triton(MODEL, REPO)` writes one folder per variant, each with `config.pbtxt`
derived from the manifest (`avfuse.export.triton_config`), a version folder `1/` and the
manifest kept beside the config (its `model.file` pointing into `1/`, so
``avfuse run --backend triton --model REPO/NAME_python`` has the contract locally):

    REPO/NAME/              backend "onnxruntime"     1/model.onnx
    REPO/NAME_python/       backend "python"          1/model.py + 1/model.onnx
    REPO/NAME_plan/         platform "tensorrt_plan"  1/model.plan (only with a plan)

The python variant runs ONNX Runtime inside the server (`triton_python_model`), for
servers whose only backend is python. A TensorRT plan is specific to one GPU and
TensorRT version, so it is never built here: it is exported when given (or when
``model.plan`` sits beside the ONNX file), else skipped with a note.

Each config carries the SHA-256 of the ONNX file as a parameter; the `triton` backend
compares it with its own manifest's model when it connects.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from avfuse.errors import ExportError, UsageError
from avfuse.export.triton_config import (
    DEFAULT_MAX_BATCH,
    config_text,
    default_preferred,
    wire_layout,
)
from avfuse.export.triton_fold import fold_consts, scalar_consts
from avfuse.manifest import MANIFEST_NAME, Manifest, file_sha256, load_manifest

VARIANTS = ("onnx", "python", "plan")
#: variant -> folder suffix, config backend, config platform, file in 1/
_VARIANT = {
    "onnx": ("", "onnxruntime", None, "model.onnx"),
    "python": ("_python", "python", None, "model.py"),
    "plan": ("_plan", None, "tensorrt_plan", "model.plan"),
}
PARAM_MODEL_SHA = "avfuse_model_sha256"


@dataclass(frozen=True, kw_only=True)
class TritonExport:
    """What `export_triton` wrote.

    Attributes:
        repository: the model repository folder.
        models: variant -> the model's folder in the repository.
        max_batch_size: the configs' batch limit (0: the server does not batch).
        notes: what was skipped and why.
    """

    repository: Path
    models: dict[str, Path]
    max_batch_size: int
    notes: tuple[str, ...] = field(default_factory=tuple)


def variant_name(base: str, variant: str) -> str:
    """The model's name in the repository for one variant (`NAME`, `NAME_python`...)."""
    return base + _VARIANT[variant][0]


def resolved_manifest(model: str | Path) -> Manifest:
    """The model's manifest completed from its ONNX graph (what the configs describe)."""
    from avfuse.backends.ort import OnnxRuntimeBackend

    m = load_manifest(model)
    with OnnxRuntimeBackend().load(m) as be:
        assert be.manifest is not None
        return be.manifest


def _write_variant(
    folder: Path,
    *,
    variant: str,
    graph: Path,
    source_manifest: Path,
    folded: tuple[str, ...],
    text: str,
    payload: Path,
) -> None:
    version = folder / "1"
    version.mkdir(parents=True, exist_ok=True)
    if variant == "python":
        shutil.copyfile(Path(__file__).with_name("triton_python_model.py"), version / "model.py")
        shutil.copyfile(graph, version / "model.onnx")
        model_file = "1/model.onnx"
    elif variant == "plan":
        shutil.copyfile(payload, version / "model.plan")
        # the client reads the contract from the ONNX graph's manifest; keep the graph beside
        shutil.copyfile(graph, folder / "model.onnx")
        model_file = "model.onnx"
    else:
        shutil.copyfile(graph, version / "model.onnx")
        model_file = "1/model.onnx"
    data = json.loads(source_manifest.read_text(encoding="utf-8"))
    block = data.setdefault("model", {})
    block["file"] = model_file
    if "sha256" in block:
        block["sha256"] = file_sha256(graph)
    if folded:  # the consts are in the graph now: the client sends nothing for them
        data["inputs"] = [i for i in data.get("inputs", []) if i.get("name") not in folded]
    (folder / MANIFEST_NAME).write_text(json.dumps(data, indent=2) + "\n")
    (folder / "config.pbtxt").write_text(text)


def export_triton(
    model: str | Path,
    repository: str | Path,
    *,
    name: str | None = None,
    variants: tuple[str, ...] = VARIANTS,
    plan: str | Path | None = None,
    max_batch: int = DEFAULT_MAX_BATCH,
    preferred_batch: tuple[int, ...] | None = None,
    queue_delay_us: int = 500,
    instances: int = 1,
    gpu: bool = False,
    threads: int = 1,
) -> TritonExport:
    """Write a Triton model repository for a model folder, its model.onnx or manifest.

    Args:
        model: anything `load_manifest` accepts.
        repository: the repository folder (created; existing variant folders are replaced).
        name: the base model name (default: the manifest's name).
        variants: which of "onnx", "python", "plan" to write.
        plan: a TensorRT plan built for the target GPU (default: ``model.plan`` beside
            the ONNX file, if there is one).
        max_batch: the batch limit when the graph's batch dim is dynamic.
        preferred_batch: the dynamic batcher's preferred sizes (default: half and all).
        queue_delay_us: the dynamic batcher's max_queue_delay_microseconds.
        instances: model instances per variant (instance_group count).
        gpu: instance_group KIND_GPU for the onnx and plan variants (the python one
            runs ONNX Runtime on the CPU).
        threads: ONNX Runtime intra-op threads inside the python variant.

    Raises:
        ManifestError / ModelError: the model cannot be loaded or declared.
        UsageError: an unknown variant, or a plan file that does not exist.
    """
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise UsageError(f"unknown Triton variants {unknown}; choose from {list(VARIANTS)}")
    m = resolved_manifest(model)
    assert m.path is not None
    base = name or m.name
    if not base or "/" in base or base.startswith("."):
        raise UsageError(f"model name {base!r} cannot be a repository folder: give --name")
    plan_path = Path(plan) if plan is not None else m.model_path.with_suffix(".plan")
    if plan is not None and not plan_path.is_file():
        raise UsageError(f"--plan {plan_path} does not exist: give a TensorRT plan file")
    repo = Path(repository)
    try:
        repo.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ExportError(f"cannot create the repository {repo}: {e.strerror or e}") from e
    notes: list[str] = []
    consts = scalar_consts(m)
    with tempfile.TemporaryDirectory(dir=repo, prefix=".export-") as tmp:
        graph = m.model_path
        if consts:
            graph = Path(tmp) / "model.onnx"
            fold_consts(m.model_path, graph, consts)
            m = replace(m, inputs=tuple(i for i in m.inputs if i not in consts))
            names = ", ".join(c.name for c in consts)
            notes.append(
                f"scalar const {names} folded into the served graph (Triton carries no scalar "
                "input in a model it cannot batch); build a plan from the model.onnx written "
                "beside it"
            )
        return _write_variants(
            m, repo, graph=graph, folded=tuple(c.name for c in consts), base=base,
            variants=variants, plan_path=plan_path, max_batch=max_batch,
            preferred_batch=preferred_batch, queue_delay_us=queue_delay_us,
            instances=instances, gpu=gpu, threads=threads, notes=notes,
        )  # fmt: skip


def _write_variants(
    m: Manifest,
    repo: Path,
    *,
    graph: Path,
    folded: tuple[str, ...],
    base: str,
    variants: tuple[str, ...],
    plan_path: Path,
    max_batch: int,
    preferred_batch: tuple[int, ...] | None,
    queue_delay_us: int,
    instances: int,
    gpu: bool,
    threads: int,
    notes: list[str],
) -> TritonExport:
    layout = wire_layout(m, max_batch=max_batch)
    preferred = preferred_batch or default_preferred(layout.max_batch_size)
    assert m.path is not None
    params = {PARAM_MODEL_SHA: file_sha256(graph)}
    written: dict[str, Path] = {}
    for variant in variants:
        suffix, backend, platform, _ = _VARIANT[variant]
        if variant == "plan" and not plan_path.is_file():
            notes.append(
                f"plan variant skipped: no TensorRT plan (looked for {plan_path}); build one on "
                "the target GPU (trtexec --onnx=model.onnx --saveEngine=model.plan) and pass --plan"
            )
            continue
        folder = repo / (base + suffix)
        if folder.exists():
            shutil.rmtree(folder)
        extra = {}
        if variant == "python":
            extra = {"intra_op_threads": str(threads), "inter_op_threads": "1"}
        text = config_text(
            name=folder.name,
            layout=layout,
            backend=backend,
            platform=platform,
            preferred_batch=preferred,
            queue_delay_us=queue_delay_us,
            instances=instances,
            kind="KIND_GPU" if gpu and variant != "python" else "KIND_CPU",
            parameters={**params, **extra},
            header=_header(m, variant),
        )
        _write_variant(
            folder, variant=variant, graph=graph, source_manifest=m.path, folded=folded,
            text=text, payload=plan_path,
        )  # fmt: skip
        written[variant] = folder
    return TritonExport(
        repository=repo, models=written, max_batch_size=layout.max_batch_size, notes=tuple(notes)
    )


def _header(m: Manifest, variant: str) -> list[str]:
    lines = [f"written by `avfuse export --triton` from {m.name}'s {MANIFEST_NAME} ({variant})"]
    if m.state:
        pairs = ", ".join(f"{p.output} -> {p.input}" for p in m.state)
        lines += [
            f"state ({pairs}) is carried by the client per stream (avfuse's Backend);",
            "the server keeps nothing between requests (no sequence batcher)",
        ]
    return lines


__all__ = ["VARIANTS", "TritonExport", "export_triton", "resolved_manifest", "variant_name"]
