"""Cross-field checks of a parsed or resolved manifest, the same for versions 1 and 2.

Run twice: on the parsed manifest (`parse`), where a shape may still be missing, and
again once the ONNX graph filled in the missing shapes and dtypes (`resolve`), so a
contradiction between the manifest and the model is named with the manifest's field
either way.
"""

from __future__ import annotations

from avfuse.errors import ManifestError
from avfuse.kernels.reference import AudioParams
from avfuse.kernels.waveform import WaveformParams
from avfuse.manifest.spec import HEAD_KINDS, AgreementSpec, Dim, Manifest, TensorSpec


def check_consistency(m: Manifest) -> None:
    """Cross-field checks: one input per sensor role, shapes vs pre-processing, state
    pairs, labels vs the driving output."""
    seen: dict[str, int] = {}
    names = set()
    for i, s in enumerate(m.inputs):
        if s.name in names:
            raise ManifestError(f"input name {s.name!r} is used twice", field=f"inputs[{i}].name")
        names.add(s.name)
        if s.modality in ("video", "audio", "mask"):
            if s.modality in seen:
                raise ManifestError(
                    f"a second {s.modality} input: one model takes at most one (run two "
                    "models with --model A --model B instead)",
                    field=f"inputs[{i}].role",
                )
            seen[s.modality] = i
    if not m.modalities and not m.history_inputs:
        raise ManifestError(
            "needs an input with role 'audio' or 'video' (or 'history', for a chained model)",
            field="inputs",
        )
    if m.history_inputs and m.modalities:
        raise ManifestError(
            "a chained model (with a history input) takes no audio or video itself: "
            "its source model does",
            field="inputs",
        )
    if "mask" in seen:
        order = m.mask_order
        if not order or any(x not in ("audio", "video") for x in order):
            raise ManifestError(
                "a mask input needs its columns: order ['audio', 'video']",
                field=f"inputs[{seen['mask']}].order" if m.version == 2 else "mask_order",
            )
    for i, s in enumerate(m.inputs):
        _check_input_shape(m, s, f"inputs[{i}]")
    out_names = [o.name for o in m.outputs]
    if len(set(out_names)) != len(out_names):
        raise ManifestError("output names must be unique", field="outputs")
    for i, s in enumerate(m.inputs):
        if s.modality == "state" and s.source not in out_names:
            field = f"inputs[{i}].from" if m.version == 2 else "state"
            raise ManifestError(f"no output named {s.source!r}", field=field)
    _check_modality_outputs(m)
    driver = next((o for o in m.outputs if o.drives), None)
    if driver is not None:
        i = m.outputs.index(driver)
        if driver.shape is not None and not driver.shape:
            raise ManifestError(
                "the driving output needs a batch dimension", field=f"outputs[{i}].shape"
            )
        if driver.shape is not None and len(driver.shape) >= 3 and driver.pool == "none":
            raise ManifestError(
                f"the driving output {driver.name!r} is a sequence {list(driver.shape)}: "
                "set its 'pool' to mean, max or last",
                field=f"outputs[{i}].pool",
            )
        n = _classes(driver)
        if driver.kind != "score" and n is not None and n != len(driver.labels):
            field = "labels" if m.version == 1 else f"outputs[{i}].labels"
            raise ManifestError(
                f"{len(driver.labels)} labels but the output has {n} classes", field=field
            )


def _check_modality_outputs(m: Manifest) -> None:
    """Per-modality outputs: of a modality the model takes, one head and one embedding per
    modality at most, heads with the driving output's labels; an `agreement` block only
    with a head for each modality."""
    seen: set[tuple[str, str]] = set()
    driver = next((o for o in m.outputs if o.drives), None)
    for i, o in enumerate(m.outputs):
        if o.modality is None:
            continue
        w = f"outputs[{i}].modality"
        if o.modality not in m.modalities:
            raise ManifestError(
                f"the model takes no {o.modality} input, so no output can be its own", field=w
            )
        what = "head" if o.kind in HEAD_KINDS else "embedding"
        if (o.modality, what) in seen:
            raise ManifestError(f"a second {o.modality} {what}: give one at most", field=w)
        seen.add((o.modality, what))
        if what == "head" and driver is not None and o.labels != driver.labels:
            raise ManifestError(
                f"a {o.modality} head must have the driving output's labels {list(driver.labels)}",
                field=f"outputs[{i}].labels",
            )
    if m.agreement != AgreementSpec() and not m.has_agreement:
        raise ManifestError(
            "an agreement block needs a logits or probabilities output with modality "
            "'audio' and one with modality 'video'",
            field="agreement",
        )


def _classes(o: TensorSpec) -> int | None:
    if o.shape is None or len(o.shape) < 2:
        return None
    last = o.shape[-1]
    return last if isinstance(last, int) else None


def expected_shape(s: TensorSpec) -> tuple[Dim, ...] | None:
    """The shape an audio/video/mask input must have for its pre-processing ("batch" at
    the batch axis), or None when the role fixes no shape."""
    if s.modality == "video" and s.video is not None:
        v = s.video
        chw = (v.channels, v.height, v.width)
        core = chw if getattr(v, "layout", "NCHW") == "NCHW" else (v.height, v.width, v.channels)
        return ("batch", *core)
    if s.modality == "audio" and isinstance(s.audio, AudioParams):
        a = s.audio
        core = (a.n_mels, a.frames)
        if getattr(a, "layout", "mels_frames") == "frames_mels":
            core = core[::-1]
        return ("batch", *core)
    if s.modality == "mask":
        return ("batch", len(s.order))
    return None


def _check_input_shape(m: Manifest, s: TensorSpec, w: str) -> None:
    if s.shape is None:
        return
    if s.modality == "audio" and isinstance(s.audio, WaveformParams):
        last = s.shape[-1]
        if isinstance(last, int) and last != s.audio.window_samples:
            raise ManifestError(
                f"the input takes {last} samples but context + chunk is {s.audio.window_samples}",
                field=f"{w}.shape",
            )
        return
    want = expected_shape(s)
    if want is None:
        return
    if s.modality == "video" and len(s.shape) == 5:  # [batch, frames, ...]: a frame stack
        if not isinstance(s.shape[1], int) or s.shape[1] < 1:
            raise ManifestError(
                f"a stacked video input needs a fixed frame count, got {s.shape[1]!r}",
                field=f"{w}.shape",
            )
        want = (want[0], s.shape[1], *want[1:])
    what = {"audio": "audio", "video": "video", "mask": "mask"}[s.modality or ""]
    core_ok = len(s.shape) == len(want) and all(
        isinstance(a, str) or a == b for a, b in zip(s.shape[1:], want[1:], strict=True)
    )
    if not core_ok:
        hint = "pre-processing parameters" if what != "mask" else "mask columns"
        raise ManifestError(
            f"{what} input must be {list(want)} for these {hint}, got {list(s.shape)}",
            field=f"{w}.shape",
        )


__all__ = ["check_consistency", "expected_shape"]
