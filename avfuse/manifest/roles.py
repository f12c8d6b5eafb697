"""Guessing the role of each graph input for a draft manifest (`avfuse manifest init`).

Recurrent state is found first: a float input with an output of the same rank, dtype
and fixed sizes and a state-like name (state -> stateN, h -> hn, state_in ->
state_out), its batch axis the graph's dynamic axis. The other inputs are read by
rank and dtype: rank-4 images (NCHW or NHWC by where the 1 or 3 channels are), rank-2
or rank-3 float audio (raw samples when the last axis is long or dynamic, else a
log-mel whose smaller axis is the mels), a "mask" by name, small fixed integer tensors
(the rank-0 `sr` of silero-vad) as constants. Values the graph cannot tell are
written as `TODO`; each input's comment says what was read, guessed and left to fill.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Any

import numpy as np

from avfuse.kernels.reference import AudioParams
from avfuse.manifest.graph import GraphInfo, TensorInfo
from avfuse.manifest.todo import TODO

#: words that name recurrent state in a tensor name (after the in/out suffixes go)
_STATE_WORDS = frozenset(
    ["state", "states", "h", "c", "hx", "cx", "hidden", "cell", "memory", "mem", "cache",
     "past", "carry", "rnn", "lstm", "gru"]
)  # fmt: skip
_SUFFIXES = ("_in", "_out", "_new", "_next", "_prev", "in", "out", "new", "next", "n", "0", "_")
#: names of a const input that usually holds the sample rate
_RATE_NAMES = ("sr", "rate", "sample_rate", "sampling_rate")
#: an axis at least this long (or dynamic) on a rank-2 float input reads as audio samples
_LONG_AXIS = 1000
#: a fixed integer tensor of at most this many elements reads as a setting (const)
_CONST_MAX = 64


def _stem(name: str) -> str:
    """The name without in/out/next suffixes: state_in, state_out, stateN -> state."""
    s = name.lower()
    for _ in range(4):
        cut = next((suf for suf in _SUFFIXES if s.endswith(suf) and len(s) > len(suf)), None)
        if cut is None:
            break
        s = s[: -len(cut)]
    return s


def _state_like(name: str) -> bool:
    tokens = [t for t in re.split(r"[^a-z0-9]+", name.lower()) if t]
    return _stem(name) in _STATE_WORDS or any(
        t in _STATE_WORDS or _stem(t) in _STATE_WORDS for t in tokens
    )


def _floaty(t: TensorInfo) -> bool:
    return bool(t.dtype and t.dtype.startswith("float"))


def _compatible(a: TensorInfo, b: TensorInfo) -> bool:
    """Same rank and dtype, and no axis fixed to two different sizes."""
    if a.rank != b.rank or a.rank == 0 or a.dtype != b.dtype:
        return False
    pairs = zip(a.dims, b.dims, strict=True)
    return not any(isinstance(x, int) and isinstance(y, int) and x != y for x, y in pairs)


def pair_states(g: GraphInfo) -> dict[str, str]:
    """Recurrent-state inputs -> the outputs that feed them.

    An input pairs with an output of the same rank, dtype and fixed sizes when either
    name is state-like (state, h, c, hidden...) and their stems match (state -> stateN,
    h -> hn, state_in -> state_out), or when the input is state-like and exactly one
    such output is too.
    """
    pairs: dict[str, str] = {}
    taken: set[str] = set()
    for t in g.inputs:
        if not _floaty(t):
            continue
        cands = [o for o in g.outputs if o.name not in taken and _compatible(t, o)]
        match = [o for o in cands if _stem(o.name) == _stem(t.name)]
        if not match and _state_like(t.name):
            match = [o for o in cands if _state_like(o.name)]
            match = match if len(match) == 1 else []
        if match and (_state_like(t.name) or _state_like(match[0].name)):
            pairs[t.name] = match[0].name
            taken.add(match[0].name)
    return pairs


def _batch_name(g: GraphInfo) -> str | None:
    """The graph's name of the batch axis: the first named leading axis of an input."""
    return next((t.dims[0] for t in g.inputs if t.rank >= 2 and isinstance(t.dims[0], str)), None)


def _state_batch_axis(t: TensorInfo, batch: str | None) -> tuple[int, str]:
    """(batch axis of a state input, why): the axis named like the inputs' batch axis,
    else its dynamic axis."""
    dynamic = [i for i, d in enumerate(t.dims) if not isinstance(d, int)]
    named = [i for i in dynamic if batch is not None and t.dims[i] == batch]
    if named:
        return named[0], f"the graph's '{batch}' axis"
    if len(dynamic) == 1:
        return dynamic[0], "its only dynamic axis"
    if dynamic:
        return dynamic[0], "a guess: the first of its dynamic axes"
    axis = 1 if t.rank == 3 else 0
    return axis, "a guess: every axis is fixed ([layers, batch, units] has it at 1)"


def shape_of(t: TensorInfo, batch_axis: int | None) -> list[Any]:
    """The shape as the manifest writes it: fixed sizes, "batch" at the batch axis and
    the graph's names (or "dynamic") for the other dynamic axes."""
    return [
        d if isinstance(d, int) else ("batch" if i == batch_axis else (d or "dynamic"))
        for i, d in enumerate(t.dims)
    ]


def _say(told: list[str], guessed: list[str], todo: list[str]) -> str:
    """A block's comment: what came from the graph, what was guessed, what is TODO."""
    parts = []
    if told:
        parts.append("from the graph: " + "; ".join(told))
    if guessed:
        parts.append("guessed: " + "; ".join(guessed))
    if todo:
        parts.append(f"{TODO}: " + "; ".join(todo))
    return ". ".join(parts)


def _video(t: TensorInfo) -> tuple[dict[str, Any], str] | None:
    """The video block of a rank-4 image input, by where the 1- or 3-channel axis is."""
    c1, c3 = t.fixed(1), t.fixed(3)
    if c1 in (1, 3) and c3 not in (1, 3):
        layout, ch, hw = "NCHW", c1, (2, 3)
    elif c3 in (1, 3):
        layout, ch, hw = "NHWC", c3, (1, 2)
    else:
        return None
    raw = t.dtype == "uint8"
    v: dict[str, Any] = {"layout": layout}
    v["height"], v["width"] = (t.fixed(ax) if t.fixed(ax) is not None else TODO for ax in hw)
    told = [f"layout {layout} ({ch} channel(s) on axis {1 if layout == 'NCHW' else 3})"]
    todo = []
    if TODO in (v["height"], v["width"]):
        todo.append("height and width (the graph takes any size: give the size to resize to)")
    v["colour"] = "gray" if ch == 1 else TODO
    if ch == 3:
        todo.append("colour, rgb or bgr: the channel order the model was trained on")
    v["dtype"] = "uint8" if raw else "float32"
    guessed = []
    if raw:
        told.append("uint8 pixels, fed as they are")
    else:
        v.update(scale=1.0 / 255.0, mean=TODO, std=TODO)
        guessed.append("scale 1/255")
        todo.append(
            f"mean and std, {ch} value(s) each: the model sees (pixel * scale - mean) / std"
        )
    v.update(resize="stretch", interpolation="bilinear")
    guessed.append(
        "resize stretch, interpolation bilinear (letterbox, crop or short_side and the "
        "model's own interpolation if it was trained so)"
    )
    return v, _say(told, guessed, todo)


def _waveform(t: TensorInfo) -> tuple[dict[str, Any], str]:
    """The audio block of a raw-sample input."""
    n = t.fixed(-1)
    a: dict[str, Any] = {"feature": "waveform", "sample_rate": TODO, "chunk": TODO}
    todo = ["sample_rate in Hz", "chunk, the new samples per call (the hop)"]
    if n is None:
        a["context"] = TODO
        todo.append("context, the samples of history before each chunk (0 for none)")
        told = ["raw samples on the last axis, any number per call"]
    else:
        told = [f"raw samples, {n} per call (context = {n} - chunk)"]
    a.update(scale="float", normalize="none", pad_start=True)
    guessed = [
        "samples as floats in [-1, 1] (scale int16 for a model that takes int16 values), no "
        "normalisation, the first call padded with zeros"
    ]
    return a, _say(told, guessed, todo)


def _logmel(t: TensorInfo) -> tuple[dict[str, Any], str] | None:
    """The audio block of a rank-3 spectrogram input (the smaller fixed axis: mels)."""
    d1, d2 = t.fixed(1), t.fixed(2)
    if d1 is not None and (d2 is None or d1 <= d2):
        layout, mels = "mels_frames", d1
    elif d2 is not None:
        layout, mels = "frames_mels", d2
    else:
        return None
    a: dict[str, Any] = {"feature": "logmel", "layout": layout, "n_mels": mels}
    a.update(dict.fromkeys(("sample_rate", "window", "n_fft", "win_length", "hop_length"), TODO))
    a.update({k: v for k, v in asdict(AudioParams()).items() if k not in a and k != "window_s"})
    told = [f"{mels} mel bands, layout {layout} (the smaller axis taken as the mels)"]
    guessed = [
        "fmin, fmax, mel scale, log and normalisation are avfuse's own defaults: set each as "
        "the model's training code computes its features"
    ]
    todo = ["sample_rate, window (the samples one call sees), n_fft, win_length, hop_length"]
    return a, _say(told, guessed, todo)


def _const(t: TensorInfo) -> tuple[str, dict[str, Any], str]:
    hint = (
        " (a name like this usually holds the sample rate)" if t.name.lower() in _RATE_NAMES else ""
    )
    return (
        "const",
        {"value": TODO},
        (
            f"from the graph: a fixed {t.dtype} tensor of shape {list(t.dims)}. {TODO}: value, the "
            f"setting the model expects{hint}"
        ),
    )


def _data_input(t: TensorInfo, taken: set[str]) -> tuple[str, dict[str, Any], str]:
    """(role, role fields, comment) of an input that is not recurrent state."""
    small = all(isinstance(d, int) for d in t.dims) and int(np.prod(t.dims)) <= _CONST_MAX
    if t.dtype and small and (t.rank == 0 or (t.dtype != "uint8" and not _floaty(t))):
        return _const(t)
    if t.rank == 4 and "video" not in taken and (_floaty(t) or t.dtype == "uint8"):
        got = _video(t)
        if got is not None:
            return "video", {"video": got[0]}, got[1]
    if _floaty(t) and "mask" in t.name.lower() and t.rank == 2 and t.fixed(1) in (1, 2):
        why = "guessed from the name: per-sample presence of each modality (1.0 or 0.0)"
        return "mask", {}, why
    if _floaty(t) and "audio" not in taken and t.rank in (2, 3):
        last = t.fixed(-1)
        if (last is None or last >= _LONG_AXIS) and (t.rank == 2 or t.fixed(1) == 1):
            a, say = _waveform(t)
            return "audio", {"audio": a}, say
        got = _logmel(t) if t.rank == 3 else None
        if got is not None:
            return "audio", {"audio": got[0]}, got[1]
    return (
        TODO,
        {},
        (
            f"{TODO}: role. From the graph: {t.dtype} {list(t.dims)}, which reads as none of an "
            "image, audio, a mask, recurrent state, a fixed value or another model's outputs "
            "(history)"
        ),
    )


def _state_input(t: TensorInfo, source: str | None, batch: str | None) -> dict[str, Any]:
    axis, why = _state_batch_axis(t, batch)
    if source is not None:
        comment = (
            f"from the graph: recurrent state, fed back from output '{source}' (same shape, "
            f"matching name); batch axis {axis}: {why}; starts as zeros"
        )
    else:
        comment = (
            f"guessed from the name: recurrent state, but no output has its shape. {TODO}: "
            "from, the output that feeds it (or make it a const if the model returns none); "
            f"batch axis {axis}: {why}"
        )
    return {
        "name": t.name,
        "role": "state",
        "comment": comment,
        "shape": shape_of(t, axis),
        "dtype": t.dtype,
        "batch_axis": axis,
        "from": source or TODO,
    }


def draft_inputs(g: GraphInfo, pairs: dict[str, str]) -> list[dict[str, Any]]:
    """The inputs block of a draft: one entry per graph input, in graph order."""
    out: list[dict[str, Any]] = []
    taken: set[str] = set()
    batch = _batch_name(g)
    for t in g.inputs:
        if t.name in pairs or (_state_like(t.name) and _floaty(t) and t.rank >= 2):
            out.append(_state_input(t, pairs.get(t.name), batch))
            continue
        role, extra, comment = _data_input(t, taken)
        taken.add(role)
        d: dict[str, Any] = {"name": t.name, "role": role, "comment": comment}
        d["shape"] = shape_of(t, None if role == "const" else 0)
        if t.dtype:
            d["dtype"] = t.dtype
        d.update(extra)
        out.append(d)
    roles = [d["role"] for d in out]
    for d in out:
        if d["role"] == "mask":
            d["order"] = [m for m in ("audio", "video") if m in roles]
    return out


__all__ = ["draft_inputs", "pair_states", "shape_of"]
