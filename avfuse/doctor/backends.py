"""Backend rows of `avfuse doctor`: each backend present loads the model, matches the CPU
reference on the bundled samples, and is timed single-stream.

The reference is ONNX Runtime on CPU with graph optimisations off and one thread: the
plainest execution of the graph. Every backend present (ONNX Runtime CPU with its graph
optimisations on, as `avfuse run` loads it; the CUDA and TensorRT execution providers
where onnxruntime-gpu is installed; native TensorRT; torch on cpu and cuda) runs the
same samples through the public `Backend` API and is compared output by output: top-1
agreement on the model's driving output and the largest absolute error over all
outputs. Latency is the runtime's own time per call (`Backend.last_infer_ms`) over
`calls` batch-1 calls after a warm-up, with one intra-op thread (`THREADS`).

Verdicts: pass when every top-1 agrees and the error is at most `PASS_ATOL`; warn when
at least `WARN_AGREEMENT` agree and the error is at most `WARN_ATOL` (reduced precision:
fp16, TF32); fail otherwise, or when the backend does not load or run. A backend whose
runtime, build or GPU is missing is `absent`, with every reason.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avfuse.backends.select import EP_NAMES
from avfuse.doctor.base import Check, Measure, bounded, call_with_deadline, one_line
from avfuse.doctor.checks import model_fix
from avfuse.doctor.samples import Samples, build_samples

PASS_ATOL = 1e-3
WARN_ATOL = 5e-2
WARN_AGREEMENT = 0.95
WARMUP_CALLS = 5
#: intra-op threads of every backend timed: single-stream figures that do not depend on
#: how busy the other cores are (two threads on a busy 2-core box gave torch a p99 of
#: 250 ms against 9 ms with one)
THREADS = 1
REFERENCE = "ONNX Runtime CPU, graph optimisations off, 1 thread"
_ORT_GPU_FIX = "pip uninstall onnxruntime && pip install onnxruntime-gpu (needs an NVIDIA GPU)"


@dataclass(frozen=True, kw_only=True)
class BackendSpec:
    """One backend configuration the doctor tries.

    Attributes:
        name: its row in the table.
        backend: registry name for `avfuse.backends.create_backend`.
        device: "cpu" or "cuda".
        provider: ONNX Runtime provider short name ("cuda", "tensorrt"; ort only).
        extra: backend-specific options (`BackendOptions.extra`).
        timeout_s: how long loading, the samples and the timing may take together
            (a TensorRT engine is built on first use).
        fix: what to do when it is present but fails.
    """

    name: str
    backend: str
    device: str
    provider: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    timeout_s: float = 60.0
    fix: str = ""


SPECS: tuple[BackendSpec, ...] = (
    BackendSpec(name="ONNX Runtime CPU", backend="ort", device="cpu", timeout_s=30.0,
                fix="pip install --force-reinstall onnxruntime"),
    BackendSpec(name="ONNX Runtime CUDA EP", backend="ort", device="cuda",
                provider="cuda",
                fix="install the CUDA and cuDNN versions this onnxruntime-gpu is built for"),
    BackendSpec(name="ONNX Runtime TensorRT EP", backend="ort", device="cuda",
                provider="tensorrt", timeout_s=300.0,
                fix="install the TensorRT version this onnxruntime-gpu is built for"),
    BackendSpec(name="TensorRT engine", backend="tensorrt", device="cuda", timeout_s=300.0,
                fix="reinstall TensorRT and the CUDA runtime: pip install 'avfuse[gpu]'"),
    BackendSpec(name="torch CPU", backend="torch", device="cpu",
                fix="pip install --force-reinstall torch==2.13.0"),
    BackendSpec(name="torch CUDA", backend="torch", device="cuda",
                fix="install a CUDA build of torch 2.13.0 that matches the driver"),
)  # fmt: skip


def _unusable(row: Check | None, what: str) -> str | None:
    """Why a prerequisite row makes a backend unusable (None when it passed)."""
    if row is None or row.status == "pass":
        return None
    if row.status == "absent":
        return f"{what} is not installed"
    return f"{what} does not work (see the {row.name} row)"


def absent_reasons(
    spec: BackendSpec, *, env: Mapping[str, Check], model_dir: Path | None
) -> list[str]:
    """Why `spec` cannot run here (empty when everything it needs is present).

    `env` holds the rows already checked, by name ("GPU", "CUDA runtime", "TensorRT",
    "torch"), so no runtime is imported here that its own check did not import first.
    """
    why: list[str] = []
    provider = EP_NAMES[spec.provider] if spec.provider else None
    if spec.backend == "ort" and provider:
        import onnxruntime as ort

        if provider not in ort.get_available_providers():
            why.append(f"onnxruntime {ort.__version__} has no {provider}")
    if spec.backend == "tensorrt":
        why.append(_unusable(env.get("TensorRT"), "the tensorrt package") or "")
        why.append(_unusable(env.get("CUDA runtime"), "the CUDA runtime (libcudart)") or "")
    if spec.backend == "torch":
        torch_row = env.get("torch")
        reason = _unusable(torch_row, "PyTorch")
        why.append(reason or "")
        torch = sys.modules.get("torch") if reason is None else None
        if spec.device == "cuda" and torch is not None and torch.version.cuda is None:
            why.append(f"torch {torch.__version__} is a CPU build")
        if model_dir is not None and not (model_dir / "checkpoint.pt").is_file():
            why.append("no checkpoint.pt beside the model (the torch backend runs it)")
    gpu = env.get("GPU")
    if spec.device == "cuda" and (gpu is None or gpu.status != "pass"):
        absent = gpu is not None and gpu.status == "absent"
        why.append("no NVIDIA GPU here" if absent else "no working GPU (see the GPU row)")
    return [w for w in why if w]


def _absent_fix(spec: BackendSpec) -> str:
    if spec.backend == "ort":
        return _ORT_GPU_FIX
    if spec.backend == "tensorrt":
        return "pip install 'avfuse[gpu]' on a machine with an NVIDIA GPU"
    if spec.device == "cuda":
        return "install a CUDA build of torch 2.13.0 on a machine with an NVIDIA GPU"
    return "pip install 'avfuse[train]'"


def _run_all(be: Any, samples: Samples) -> list[dict[str, np.ndarray]]:
    return [be.infer(f) for f in samples.feeds]


def reference_outputs(manifest: Any, samples: Samples) -> list[dict[str, np.ndarray]]:
    """The reference's outputs for every sample (see the module docstring)."""
    from avfuse.backends import create_backend

    with create_backend("ort", threads=1, optimization="disable") as be:
        be.load(manifest)
        return _run_all(be, samples)


def compare(
    outs: list[dict[str, np.ndarray]],
    ref: list[dict[str, np.ndarray]],
    labels: list[int | None],
    driving: str,
) -> tuple[float, float, float | None]:
    """(top-1 agreement, max abs error, label accuracy) of `outs` against `ref`.

    A non-finite output where the reference is finite makes the error infinite.
    """
    agree, hits, known, err = 0, 0, 0, 0.0
    for o, r, lab in zip(outs, ref, labels, strict=True):
        for name, want in r.items():
            got = np.asarray(o[name], dtype=np.float64)
            d = np.abs(got - np.asarray(want, dtype=np.float64))
            err = max(err, float(np.max(np.where(np.isnan(d), np.inf, d), initial=0.0)))
        top, top_ref = int(np.argmax(o[driving][0])), int(np.argmax(r[driving][0]))
        agree += top == top_ref
        if lab is not None:
            known += 1
            hits += top == lab
    n = len(ref)
    return agree / n, err, (hits / known if known else None)


def verdict(agreement: float, err: float) -> str:
    """pass / warn / fail from the parity figures (see the module docstring)."""
    if agreement == 1.0 and err <= PASS_ATOL:
        return "pass"
    if agreement >= WARN_AGREEMENT and err <= WARN_ATOL:
        return "warn"
    return "fail"


def measure_backend(
    spec: BackendSpec,
    manifest: Any,
    samples: Samples,
    ref: list[dict[str, np.ndarray]],
    *,
    calls: int,
    fix_model: str,
) -> Check:
    """Load, compare and time one backend; every failure is a row."""
    from avfuse.backends import create_backend
    from avfuse.errors import AvfuseError, ManifestError, ModelError

    row = {"name": spec.name, "section": "backends"}
    try:
        with create_backend(
            spec.backend, device=spec.device, threads=THREADS, provider=spec.provider,
            extra=dict(spec.extra),
        ) as be:  # fmt: skip
            be.load(manifest)
            provider = EP_NAMES[spec.provider] if spec.provider else None
            if provider and be.providers[:1] != [provider]:
                return Check(
                    **row, status="fail", fix=spec.fix,
                    detail=f"ONNX Runtime did not start {provider} (runs on {be.providers})",
                )  # fmt: skip
            outs = _run_all(be, samples)
            times = []
            for i in range(WARMUP_CALLS + calls):
                be.infer(samples.feeds[i % len(samples)])
                if i >= WARMUP_CALLS:
                    times.append(be.last_infer_ms)
    except (ModelError, ManifestError) as e:
        return Check(**row, status="fail", detail=one_line(str(e)), fix=fix_model)
    except AvfuseError as e:
        return Check(**row, status="fail", detail=one_line(str(e)), fix=spec.fix)
    agreement, err, acc = compare(outs, ref, samples.labels, manifest.driving_output.name)
    med, p99 = float(np.median(times)), float(np.percentile(times, 99))
    n = len(samples)
    m = Measure(
        samples=n, reference=REFERENCE, top1_agreement=agreement, max_abs_error=err,
        label_accuracy=acc, latency_calls=calls, latency_median_ms=med, latency_p99_ms=p99,
    )  # fmt: skip
    labels = f", labels {round(acc * n)}/{n} right" if acc is not None else ""
    detail = (
        f"top-1 agreement {agreement:.3f} ({round(agreement * n)}/{n}), max |err| {err:.2g}"
        f"{labels}; latency median {med:.3f} ms, p99 {p99:.3f} ms ({calls} calls)"
    )
    status = verdict(agreement, err)
    fix = None
    if status == "warn":
        fix = "expected of reduced precision (fp16/TF32); use ONNX Runtime CPU where exact "
        fix += "agreement matters"
    elif status == "fail":
        fix = f"{spec.name} computes different outputs from the CPU reference: {spec.fix}"
    return Check(**row, status=status, detail=detail, fix=fix, measure=m)


def backend_rows(model: str | Path, *, env: Mapping[str, Check], calls: int) -> list[Check]:
    """One row per backend in `SPECS` for `model` (see the module docstring).

    Args:
        model: the model folder, manifest or ONNX file.
        env: the environment rows already checked, by name ("GPU", "CUDA runtime", "TensorRT",
    "torch").
        calls: batch-1 calls to time per backend.
    """
    from avfuse.errors import AvfuseError
    from avfuse.manifest import load_manifest

    fix_model = model_fix(model)
    manifest = samples = ref = None
    why = ""
    try:
        manifest = load_manifest(model, check_hash=False)  # the model row reports the hash
        samples = build_samples(manifest)
    except AvfuseError as e:
        why = one_line(str(e))
    else:
        res = call_with_deadline(
            lambda: reference_outputs(manifest, samples), timeout_s=SPECS[0].timeout_s,
            name="reference",
        )  # fmt: skip
        ref = res.value
        if res.timed_out:
            why = f"the reference did not finish within {SPECS[0].timeout_s:g} s"
        elif res.error is not None:
            why = one_line(str(res.error))
    model_dir = manifest.model_path.parent if manifest is not None else None
    rows = []
    for spec in SPECS:
        reasons = absent_reasons(spec, env=env, model_dir=model_dir)
        row = {"name": spec.name, "section": "backends"}
        if reasons:
            rows.append(Check(**row, status="absent", detail="; ".join(reasons),
                              fix=_absent_fix(spec)))  # fmt: skip
        elif ref is None and spec is SPECS[0]:
            rows.append(Check(**row, status="fail", detail=f"the model does not run: {why}",
                              fix=fix_model))  # fmt: skip
        elif ref is None:
            rows.append(
                Check(
                    **row,
                    status="warn",
                    fix=f"fix the {SPECS[0].name} row first",
                    detail=f"not checked: no CPU reference ({SPECS[0].name} fails)",
                )
            )
        else:
            rows.append(
                bounded(
                    lambda s=spec: measure_backend(
                        s, manifest, samples, ref, calls=calls, fix_model=fix_model
                    ),
                    name=spec.name,
                    section="backends",
                    timeout_s=spec.timeout_s,
                    fix=spec.fix,
                )  # fmt: skip
            )
    return rows


__all__ = [
    "PASS_ATOL",
    "REFERENCE",
    "SPECS",
    "WARN_AGREEMENT",
    "WARN_ATOL",
    "BackendSpec",
    "absent_reasons",
    "backend_rows",
    "compare",
    "measure_backend",
    "reference_outputs",
    "verdict",
]
