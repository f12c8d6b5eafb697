"""Checking a manifest by running its model (`avfuse manifest check`): output ranges and
hints about what the numbers say.

The model runs through the real runtime (the same pipeline as `avfuse run`) on the
bundled demo scene, digit cards shown and the same digits spoken with pauses between
them (or on a media file), with every output of every call reported. What the numbers
look like is compared with what the manifest declares:

    rows summing to 1 on a logits output   these are probabilities, not logits
    values in [0, 1] on a logits output    per-label probabilities (sigmoid) or a score
    probabilities whose rows do not sum to 1, or values outside [0, 1] on a
        probabilities/sigmoid/score output  the graph has no softmax/sigmoid
    an output flat over the whole scene    the model does not see its input: check the
                                            pre-processing
    NaN or infinity                         the model breaks on this input
    a driving output that never reaches decision.on: no event would ever be made
    a raw-waveform model that is flat (or silent) with its declared sample scale but not
        with the other one (float vs int16)  the scale is probably wrong

Hints are advice, not errors: `check_model` returns them in a `CheckReport`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from avfuse.kernels.waveform import WaveformParams
from avfuse.manifest.spec import Manifest

#: |sum - 1| below this on every row reads as a softmax
SUM_TOL = 1e-3
#: peak-to-peak over time below this fraction of the values' size reads as flat
FLAT_TOL = 1e-3


@dataclass(frozen=True, kw_only=True)
class OutputStats:
    """What one output gave over the whole run.

    Attributes:
        index: position in the manifest's outputs.
        name / kind: the output and its declared kind.
        calls / columns: rows seen (one per call and stream) and values per row.
        low / high / mean: over every finite value.
        row_sum: (lowest, highest) sum of a row.
        ptp: largest change over time of any column (max - min).
        nonfinite: NaN or infinite values.
        looks_like: "probabilities" (rows in [0, 1] summing to 1), "sigmoid" / "score"
            (in [0, 1], several columns / one), "unbounded" (anything else), "none" (no rows).
        peak: the highest probability the decision rules would see (driving output only).
        first: the first finite row (its first 8 values).
    """

    index: int
    name: str
    kind: str
    calls: int
    columns: int
    low: float = float("nan")
    high: float = float("nan")
    mean: float = float("nan")
    row_sum: tuple[float, float] = (float("nan"), float("nan"))
    ptp: float = float("nan")
    nonfinite: int = 0
    looks_like: str = "none"
    peak: float | None = None
    first: tuple[float, ...] = ()

    @property
    def flat(self) -> bool:
        """No column moves over the run (more than FLAT_TOL of the values' size)."""
        scale = max(1.0, abs(self.low), abs(self.high))
        return self.calls >= 3 and self.ptp <= FLAT_TOL * scale


@dataclass(frozen=True, kw_only=True)
class Hint:
    """One piece of advice: the output it is about, the manifest field to look at, why."""

    output: str | None
    field: str | None
    message: str


@dataclass(frozen=True, kw_only=True)
class CheckReport:
    """The outcome of `check_model`."""

    model: str
    manifest: Path | None
    media: str
    events: int
    outputs: tuple[OutputStats, ...]
    hints: tuple[Hint, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN written as null)."""

        def num(x: Any) -> Any:
            return None if isinstance(x, float) and not np.isfinite(x) else x

        outs = []
        for o in self.outputs:
            d = {k: getattr(o, k) for k in o.__dataclass_fields__}
            d = {
                k: num(v) if not isinstance(v, tuple) else [num(x) for x in v] for k, v in d.items()
            }
            d["flat"] = o.flat
            outs.append(d)
        return {
            "model": self.model,
            "manifest": str(self.manifest) if self.manifest else None,
            "media": self.media,
            "events": self.events,
            "outputs": outs,
            "hints": [vars(h) for h in self.hints],
            "notes": list(self.notes),
        }


def _rows(records: list[Any], name: str) -> np.ndarray:
    from avfuse.engine.records import Value

    rows = [r.values for r in records if isinstance(r, Value) and r.output == name]
    if not rows:
        return np.zeros((0, 0))
    return np.asarray(rows, dtype=np.float64)


def _softmax(a: np.ndarray) -> np.ndarray:
    e = np.exp(a - a.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def output_stats(m: Manifest, records: list[Any]) -> list[OutputStats]:
    """Per-output statistics of a run's value records (state outputs are not reported)."""
    out = []
    for i, o in enumerate(m.outputs):
        if o.kind == "state":
            continue
        a = _rows(records, o.name)
        base = OutputStats(
            index=i,
            name=o.name,
            kind=o.kind or "",
            calls=a.shape[0],
            columns=a.shape[1] if a.size else 0,
        )
        good = a[np.isfinite(a).all(axis=1)] if a.size else a
        if not good.size:
            out.append(replace(base, nonfinite=int((~np.isfinite(a)).sum())))
            continue
        sums = good.sum(axis=1)
        in01 = good.min() >= -1e-6 and good.max() <= 1 + 1e-6
        if in01 and good.shape[1] > 1 and np.all(np.abs(sums - 1) <= SUM_TOL):
            looks = "probabilities"
        elif in01:
            looks = "score" if good.shape[1] == 1 else "sigmoid"
        else:
            looks = "unbounded"
        peak = None
        if o.drives:
            probs = _softmax(good) if o.kind == "logits" else good
            keep = [j for j, lab in enumerate(o.labels) if lab != m.decision.background]
            keep = keep if keep and len(o.labels) == probs.shape[1] else list(range(probs.shape[1]))
            peak = float(probs[:, keep].max())
        out.append(
            replace(
                base,
                low=float(good.min()),
                high=float(good.max()),
                mean=float(good.mean()),
                row_sum=(float(sums.min()), float(sums.max())),
                ptp=float(np.ptp(good, axis=0).max()),
                nonfinite=int((~np.isfinite(a)).sum()),
                looks_like=looks,
                peak=peak,
                first=tuple(float(x) for x in good[0, :8]),
            )
        )
    return out


def _range(s: OutputStats) -> str:
    return f"{s.low:.4g} to {s.high:.4g}"


def kind_hints(m: Manifest, stats: list[OutputStats]) -> list[Hint]:
    """Hints from comparing what each output looks like with its declared kind."""
    hints = []
    for s in stats:
        w = f"outputs[{s.index}]"

        def add(message: str, field: str | None = f"{w}.kind", s: OutputStats = s) -> None:
            hints.append(Hint(output=s.name, field=field, message=message))

        if s.nonfinite:
            total = s.calls * max(1, s.columns)
            add(
                f"{s.nonfinite} of {total} values are NaN or infinite: the model breaks on "
                "this input; check the pre-processing of its inputs (scale, mean, std)",
                None,
            )
        if s.looks_like == "none":
            continue
        if s.flat:
            row = ", ".join(f"{x:.4g}" for x in s.first) + (", ..." if s.columns > 8 else "")
            add(
                f"output constant over time (over {s.calls} calls it moves by at most "
                f"{s.ptp:.2g} from [{row}]): "
                "check the pre-processing, the model does not seem to see its input",
                None,
            )
        sums = f"{s.row_sum[0]:.4g} to {s.row_sum[1]:.4g}"
        if s.kind == "logits":
            if s.looks_like == "probabilities":
                add(
                    "rows sum to 1: these are probabilities, not logits (a second softmax "
                    'flattens them): set its kind to "probabilities"'
                )
            elif s.looks_like in ("sigmoid", "score"):
                add(
                    f"values stay in [0, 1] ({_range(s)}) and rows do not sum to 1: these "
                    f'look like probabilities, not logits: set its kind to "{s.looks_like}"'
                )
            elif s.columns == 1:
                add(
                    "one logit per call always scores 1 after the softmax: use kind score "
                    "for a probability, values otherwise"
                )
        elif s.kind == "probabilities":
            if s.looks_like == "unbounded":
                add(
                    f"values outside [0, 1] ({_range(s)}): these are not probabilities: set "
                    'its kind to "logits"'
                )
            elif s.looks_like != "probabilities" and s.columns > 1:
                add(
                    f"rows do not sum to 1 ({sums}): not a softmax: set its kind to "
                    '"sigmoid" if each value is its own label\'s probability, else "logits"'
                )
        elif s.kind in ("sigmoid", "score") and s.looks_like == "unbounded":
            add(
                f"values outside [0, 1] ({_range(s)}): not probabilities (avfuse applies no "
                'sigmoid): set its kind to "logits" if the classes exclude each other, or '
                "end the graph in a Sigmoid"
            )
        on = min([m.decision.on, *(t[0] for t in m.decision.thresholds.values())])
        if s.peak is not None and s.peak < on and not s.flat:
            add(
                f"never reaches decision.on = {on:g} on this media (highest {s.peak:.3g}): no "
                "event would be made; lower decision.on or check the pre-processing",
                "decision.on",
            )
    return hints


def verdicts(stats: list[OutputStats], hints: list[Hint]) -> list[str]:
    """One line per class output whose numbers look like its declared kind (no kind hint,
    not flat, no NaN)."""
    lines = []
    hinted = {h.output for h in hints if (h.field or "").endswith(".kind")}
    said = {
        "probabilities": "rows in [0, 1] summing to 1",
        "sigmoid": "values in [0, 1]",
        "score": "values in [0, 1]",
        "unbounded": "rows do not sum to 1",
    }
    for s in stats:
        if s.name in hinted or s.looks_like == "none" or s.flat or s.nonfinite:
            continue
        if s.kind in ("logits", "probabilities", "sigmoid", "score"):
            lines.append(
                f"outputs[{s.index}] '{s.name}': {_range(s)}, {said[s.looks_like]}: "
                f"{s.kind}, as declared"
            )
    return lines


def _waveform_spec(m: Manifest) -> Any:
    s = m.input_for("audio")
    return s if s is not None and isinstance(s.audio, WaveformParams) else None


def _with_scale(m: Manifest, scale: str) -> Manifest:
    spec = _waveform_spec(m)
    new = replace(spec, audio=replace(spec.audio, scale=scale))
    return replace(m, inputs=tuple(new if s is spec else s for s in m.inputs))


def _suspicious(stats: list[OutputStats]) -> bool:
    return (
        any(s.nonfinite or s.flat or (s.peak is not None and s.peak < 0.5) for s in stats)
        or not stats
    )


def _media(m: Manifest, source: str | None, seed: int, digits: str) -> tuple[Any, str]:
    """(a factory of the run's source, its description)."""
    if source is not None:
        return (lambda: source), f"{source}"
    from avfuse.engine.sources.synthetic import SceneScript, SyntheticSource

    script = SceneScript.default(seed=seed, digits=digits)
    rate = m.audio.sample_rate if m.audio is not None else 16000
    audio, video = "audio" in m.modalities, "video" in m.modalities
    parts = [f"audio {rate} Hz"] * audio + ["video 320x240 at 30 fps"] * video
    desc = f"demo scene (seed {seed}, digits {digits}: {script.duration_s:g} s, {', '.join(parts)})"

    def make() -> Any:
        return SyntheticSource(script=script, sample_rate=rate, audio=audio, video=video)

    return make, desc


def _run(m: Manifest, media: Any, threads: int) -> tuple[Manifest, Any]:
    """(the manifest as resolved against the graph, the run's result)."""
    from avfuse.api import run
    from avfuse.backends import create_backend

    with create_backend("ort", threads=threads) as be:
        be.load(m)
        result = run(
            sources=[media()], backend=be, sinks=(), options={None: {"report_outputs": True}}
        )
        return be.manifest or m, result


def _scale_hint(m: Manifest, media: Any, threads: int, stats: list[OutputStats]) -> Hint | None:
    """Rerun a raw-waveform model whose outputs look dead with the other sample scale."""
    spec = _waveform_spec(m)
    if spec is None or not _suspicious(stats):
        return None
    now = spec.audio.scale
    alt = "int16" if now == "float" else "float"
    resolved, result = _run(_with_scale(m, alt), media, threads)
    other = output_stats(resolved, result.records)
    if _suspicious(other):
        return None
    what = {"int16": "int16 sample values (x 32768)", "float": "samples in [-1, 1]"}[alt]
    w = f"inputs[{m.inputs.index(spec)}].audio.scale"
    return Hint(
        output=None,
        field=w,
        message=f'with scale "{now}" the outputs are flat or never reach 0.5, with "{alt}" '
        f"they move ({', '.join(f'{s.name} {_range(s)}' for s in other)}): the model "
        f'probably takes {what}: set {w} to "{alt}"',
    )


def check_model(
    model: str | Path | Manifest,
    *,
    source: str | None = None,
    seed: int = 0,
    digits: str = "0123456789",
    threads: int = 1,
) -> CheckReport:
    """Run a model on demo media (or `source`) and compare its outputs with its manifest.

    Args:
        model: a manifest, or the path of a model folder, model.onnx or manifest.json.
        source: a media file or stream to run on instead of the demo scene.
        seed / digits: the demo scene (digit order and layout; the digits it shows).
        threads: inference threads.

    Raises:
        ManifestError, ModelError, SourceError, UsageError: as `avfuse run` does.
    """
    from avfuse.manifest.todo import load_complete

    m = model if isinstance(model, Manifest) else load_complete(model)
    media, desc = _media(m, source, seed, digits)
    resolved, result = _run(m, media, threads)
    stats = output_stats(resolved, result.records)
    hints = kind_hints(resolved, stats)
    scale = _scale_hint(m, media, threads, stats)
    if scale is not None:
        hints.append(scale)
    from avfuse.engine.records import FaultRecord, WarningRecord

    notes: list[str] = []
    for r in result.records:
        msg = getattr(r, "message", None)
        if isinstance(r, (WarningRecord, FaultRecord)) and msg and msg not in notes:
            notes.append(msg)
    return CheckReport(
        model=resolved.name,
        manifest=resolved.path,
        media=desc,
        events=len(result.events),
        outputs=tuple(stats),
        hints=tuple(hints),
        notes=tuple(notes + verdicts(stats, hints)),
    )


__all__ = [
    "FLAT_TOL",
    "SUM_TOL",
    "CheckReport",
    "Hint",
    "OutputStats",
    "check_model",
    "kind_hints",
    "output_stats",
    "verdicts",
]
