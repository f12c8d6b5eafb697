"""`avfuse info`: print a model's manifest summary and validate it against its ONNX graph.

Version-1 and version-2 manifests print alike: each input with its role and what feeds
it, each output with its kind, the pre-processing, when the model runs (cadence) and how
its outputs become events (decision). A draft from `avfuse manifest init` that still
holds "TODO" values is refused in one line naming every such field.
"""

from __future__ import annotations

import argparse
import json

from avfuse.assets import default_model_path
from avfuse.commands import _args
from avfuse.errors import ModelError
from avfuse.kernels.reference import AudioParams
from avfuse.kernels.waveform import WaveformParams
from avfuse.manifest import Manifest, TensorSpec

#: labels printed before the list is cut short
MAX_LABELS = 16


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `info` sub-command."""
    p = _args.add_command(
        sub,
        "info",
        help="show and validate a model's manifest",
        description="Print the manifest summary of a model (inputs and their roles, outputs "
        "and their kinds, pre-processing, cadence, decision, labels, metrics, provenance) and "
        "check it against the ONNX graph. Exits 2 naming the field when the manifest is "
        "missing or inconsistent (every field a draft from `avfuse manifest init` still "
        "leaves TODO), and naming the file when the model, its manifest or the folder is "
        "missing.",
    )
    p.add_argument(
        "model",
        nargs="?",
        default=None,
        help="model.onnx, its manifest.json or its folder (default: the bundled model)",
    )
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")
    p.set_defaults(func=run)


def _labels(labels: tuple[str, ...]) -> str:
    shown = ", ".join(labels[:MAX_LABELS])
    return shown + (f", ... ({len(labels)} in all)" if len(labels) > MAX_LABELS else "")


def _shape(s: TensorSpec) -> str:
    return f"{s.dtype} {list(s.shape) if s.shape is not None else '(from the graph)'}"


def _input_note(s: TensorSpec) -> str:
    if s.modality == "state":
        return f"from output {s.source}, batch axis {s.batch_axis}, init {s.init:g}"
    if s.modality == "history":
        return f"last {s.frames} outputs of {s.source}, init {s.init:g}"
    if s.modality == "const":
        text = json.dumps(s.value)
        return f"value {text if len(text) <= 40 else text[:37] + '...'}"
    if s.modality == "audio":
        return "waveform" if isinstance(s.audio, WaveformParams) else "log-mel"
    if s.modality == "mask":
        return f"columns {', '.join(s.order)}"
    return ""


def _output_note(o: TensorSpec, m: Manifest) -> str:
    parts = []
    if o.drives:
        parts.append("drives events")
    if o.labels and o.kind != "state" and (o.labels != m.labels or not o.drives):
        parts.append(f"labels {_labels(o.labels)}")
    if o.pool != "none":
        parts.append(f"pooled by {o.pool}")
    return ", ".join(parts)


def _audio_line(a: AudioParams | WaveformParams) -> str:
    if isinstance(a, WaveformParams):
        ms = 1e3 * a.chunk / a.sample_rate
        return (
            f"waveform {a.sample_rate} Hz, chunk {a.chunk} + context {a.context} samples "
            f"({ms:g} ms of new audio per call), scale {a.scale}, normalize {a.normalize}, "
            f"pad_start {str(a.pad_start).lower()}"
        )
    return (
        f"log-mel {a.sample_rate} Hz, {a.window_samples / a.sample_rate:g} s window, n_fft "
        f"{a.n_fft}, win {a.win_length}, hop {a.hop_length}, {a.n_mels} mels "
        f"{a.fmin:g}-{a.fmax:g} Hz ({a.mel_scale}), log {a.log}, layout {a.layout}"
    )


def _cadence(m: Manifest) -> str:
    c = m.cadence
    if c.every_frames is not None:
        return "every video frame" if c.every_frames == 1 else f"every {c.every_frames} frames"
    if c.every_ms is not None:
        return f"every {c.every_ms:g} ms of audio"
    if m.video is not None:
        return "every video frame"
    if isinstance(m.audio, WaveformParams):
        return f"every audio chunk ({1e3 * m.audio.chunk / m.audio.sample_rate:g} ms)"
    return "every 100 ms of audio"


def _decision(m: Manifest) -> str:
    d = m.decision
    smooth = {"ema": f"ema alpha {d.ema_alpha:g}", "mean": f"mean of {d.mean_frames}"}
    text = (
        f"on {d.on:g}, off {d.off:g}, min {d.min_duration_ms:g} ms, smoothing "
        f"{smooth.get(d.smoothing, d.smoothing)}"
    )
    if d.background is not None and d.background in m.labels:
        text += f", background {d.background}"
    for label, (on, off) in d.thresholds.items():
        text += f", {label} {on:g}/{off:g}"
    return text


def print_manifest(m: Manifest) -> None:
    """The summary `avfuse info` prints (m as resolved against its graph)."""
    print(f"model     {m.name}  ({m.model_path})")
    print(f"manifest  version {m.version}  ({m.path})")
    if m.fusion is not None:
        print(f"fusion    {m.fusion}")
    print(f"labels    {_labels(m.labels)}")
    for s in m.inputs:
        print(f"input     {s.name:<8} {s.modality or '':<6} {_shape(s)}  {_input_note(s)}".rstrip())
    for o in m.outputs:
        print(f"output    {o.name:<8} {o.kind or '':<6} {_shape(o)}  {_output_note(o, m)}".rstrip())
    if m.audio:
        print(f"audio     {_audio_line(m.audio)}")
    if m.video:
        v = m.video
        norm = (
            "raw pixels"
            if v.dtype == "uint8"
            else (f"scale {v.scale:g}, mean {list(v.mean)} std {list(v.std)}")
        )
        print(
            f"video     {v.width}x{v.height} {v.colour}, {v.layout} {v.dtype}, resize {v.resize} "
            f"({v.interpolation}), {norm}"
        )
    if m.mask_order:
        print(f"mask      {', '.join(m.mask_order)}")
    print(f"cadence   {_cadence(m)}")
    print(f"decision  {_decision(m)}")
    for k, v in m.metrics.items():
        print(f"metric    {k}: {v}")
    for k, v in m.provenance.items():
        print(f"provenance {k}: {v}")


def run(args: argparse.Namespace) -> int:
    """Load, validate (manifest + graph through ONNX Runtime) and print."""
    from avfuse.backends import create_backend
    from avfuse.manifest.todo import load_complete

    m = load_complete(args.model or default_model_path())
    if not m.model_path.is_file():
        what = "is a folder" if m.model_path.is_dir() else "does not exist"
        raise ModelError(
            f"manifest {m.path} names the model file {m.model_file!r}, but {m.model_path} "
            f"{what}: put the exported model.onnx beside the manifest or fix model.file in it"
        )
    with create_backend("ort", threads=1) as be:
        be.load(m)  # checks the manifest against the graph
        resolved = be.manifest or m
    if args.json:
        print(json.dumps(resolved.to_dict(), indent=2))
        return 0
    print_manifest(resolved)
    print("manifest  valid")
    return 0
