"""Models that work together in one run: late fusion, gates, and chained models.

Late fusion (`LateFusionSpec`): an audio model and a video model trained apart, fused
by the engine. For each decision of the driving member at capture time t, each member's
newest decision at or before t on that stream (its `OutputLog`; mapped onto the fused
labels, missing labels 0) is averaged with the weights; a member with none within
`max_age_ms` before t is left out and the fused decision says `degraded`. The fused
decision for t waits until every member has decided past t (on a file one model may
run ahead of the other; live, their batches end at different times), for at most
`max_age_ms` live. The fused scores go through their own post-processor, so the fusion
makes its own onsets and events, with `model` = the fusion's name; the members still
make theirs.

Gate (`GateSpec`): model `model` runs on a stream only where model `by`'s score there
for `label` (default: its driving output's first label that is not background) is at
least `above`, e.g. a keyword spotter behind a voice-activity detector. An item at t is
held until `by` has decided on t (its newest decision at or before t is the one that
counts; live, held at most a short wait), so a gate is exact on files and live alike.
Items skipped are counted (`gated` in the stream's drops), not silently lost.

Chains are described in the consumer's manifest: an input with role "history" takes
the last N outputs of another model of the run (see `HistoryRing`).

A fusion plan is a small JSON file (`avfuse run --fusion plan.json`):

    {"late": [{"name": "av", "members": [{"model": "speech", "weight": 0.6,
                                          "labels": {"seven": "7"}},
                                         {"model": "cards", "weight": 0.4}],
               "labels": ["0", ..., "9", "none"], "drive": "cards"}],
     "gates": [{"model": "kws", "by": "vad", "above": 0.5}]}
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from avfuse.engine.clock import now_ns
from avfuse.engine.postprocess import Decision, PostprocessConfig, PostProcessor
from avfuse.engine.records import Record
from avfuse.errors import UsageError

if TYPE_CHECKING:
    from avfuse.engine.lane import Item, Lane


@dataclass(frozen=True, kw_only=True)
class Member:
    """One model of a late fusion: its weight and how its labels map onto the fused ones."""

    model: str
    weight: float = 1.0
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class LateFusionSpec:
    """A late fusion (see the module docstring)."""

    name: str
    members: tuple[Member, ...]
    labels: tuple[str, ...] = ()
    drive: str | None = None
    max_age_ms: float = 500.0
    decision: PostprocessConfig | None = None


@dataclass(frozen=True, kw_only=True)
class GateSpec:
    """Model `model` runs only while model `by` scores `label` at least `above`."""

    model: str
    by: str
    above: float = 0.5
    label: str | None = None


@dataclass(frozen=True, kw_only=True)
class FusionPlan:
    """The late fusions and gates of a run."""

    late: tuple[LateFusionSpec, ...] = ()
    gates: tuple[GateSpec, ...] = ()

    def check(self, models: list[str]) -> None:
        """Refuse names that are not models of the run (one line naming the field)."""
        names = set(models)
        for i, f in enumerate(self.late):
            if f.name in names:
                raise UsageError(f"late[{i}].name: {f.name!r} is also a model's name")
            for j, mem in enumerate(f.members):
                if mem.model not in names:
                    raise UsageError(
                        f"late[{i}].members[{j}].model: no model {mem.model!r} in this run "
                        f"(models: {', '.join(models)})"
                    )
            if f.drive is not None and f.drive not in {m.model for m in f.members}:
                raise UsageError(f"late[{i}].drive: {f.drive!r} is not one of its members")
        for i, g in enumerate(self.gates):
            for key in ("model", "by"):
                if getattr(g, key) not in names:
                    raise UsageError(
                        f"gates[{i}].{key}: no model {getattr(g, key)!r} in this run "
                        f"(models: {', '.join(models)})"
                    )
            if g.model == g.by:
                raise UsageError(f"gates[{i}]: a model cannot gate itself")


def _num(v: Any, where: str, lo: float, hi: float) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
        raise UsageError(f"{where}: must be a number in [{lo:g}, {hi:g}], got {v!r}")
    return float(v)


def _str(v: Any, where: str) -> str:
    if not isinstance(v, str) or not v:
        raise UsageError(f"{where}: must be a non-empty string, got {v!r}")
    return v


def parse_fusion(data: Any, source: str = "fusion plan") -> FusionPlan:
    """A FusionPlan from parsed JSON; errors name the field (`late[0].members[1].weight`)."""
    if not isinstance(data, dict):
        raise UsageError(f"{source}: must be a JSON object with 'late' and/or 'gates'")
    unknown = sorted(set(data) - {"late", "gates", "comment"})
    if unknown:
        raise UsageError(f"{source}: unknown field {unknown[0]!r}; use 'late' and 'gates'")
    late = []
    for i, f in enumerate(data.get("late", [])):
        w = f"late[{i}]"
        if not isinstance(f, dict):
            raise UsageError(f"{w}: must be an object")
        members = []
        raw = f.get("members")
        if not isinstance(raw, list) or len(raw) < 2:
            raise UsageError(f"{w}.members: must list at least two models")
        for j, m in enumerate(raw):
            wm = f"{w}.members[{j}]"
            if isinstance(m, str):
                m = {"model": m}
            if not isinstance(m, dict):
                raise UsageError(f"{wm}: must be a model name or an object")
            labels = m.get("labels", {})
            if not isinstance(labels, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
            ):
                raise UsageError(f"{wm}.labels: must map member labels to fused labels")
            members.append(
                Member(
                    model=_str(m.get("model"), f"{wm}.model"),
                    weight=_num(m.get("weight", 1.0), f"{wm}.weight", 0.0, 1e6),
                    labels=dict(labels),
                )
            )
        labels = f.get("labels", [])
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise UsageError(f"{w}.labels: must be a list of label names")
        dec = f.get("decision")
        decision = None
        if dec is not None:
            if not isinstance(dec, dict):
                raise UsageError(f"{w}.decision: must be an object")
            try:
                decision = PostprocessConfig(
                    on_threshold=dec.get("on", 0.6),
                    off_threshold=dec.get("off", 0.4),
                    min_duration_s=dec.get("min_duration_ms", 400.0) / 1e3,
                    smoothing=dec.get("smoothing", "ema"),
                    none_label=dec.get("background", "none"),
                )
            except (UsageError, TypeError) as e:
                raise UsageError(f"{w}.decision: {e}") from None
        late.append(
            LateFusionSpec(
                name=_str(f.get("name"), f"{w}.name"),
                members=tuple(members),
                labels=tuple(labels),
                drive=f.get("drive"),
                max_age_ms=_num(f.get("max_age_ms", 500.0), f"{w}.max_age_ms", 1.0, 60_000.0),
                decision=decision,
            )
        )
    gates = []
    for i, g in enumerate(data.get("gates", [])):
        w = f"gates[{i}]"
        if not isinstance(g, dict):
            raise UsageError(f"{w}: must be an object")
        gates.append(
            GateSpec(
                model=_str(g.get("model"), f"{w}.model"),
                by=_str(g.get("by"), f"{w}.by"),
                above=_num(g.get("above", 0.5), f"{w}.above", 0.0, 1.0),
                label=g.get("label"),
            )
        )
    return FusionPlan(late=tuple(late), gates=tuple(gates))


def load_fusion(path: str | Path) -> FusionPlan:
    """Read a fusion plan file (see the module docstring)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"--fusion {p}: cannot read it as JSON ({e}); check the file") from None
    return parse_fusion(data, f"--fusion {p}")


def probabilities(kind: str, scores: np.ndarray, out: np.ndarray) -> np.ndarray:
    """A lane's latest scores as probabilities per label (softmax of logits)."""
    if kind == "logits":
        np.subtract(scores, scores.max(), out=out)
        np.exp(out, out=out)
        out /= out.sum()
    else:
        np.copyto(out, scores, casting="unsafe")
    return out


class LateFusion:
    """One late fusion on one stream (see the module docstring)."""

    def __init__(self, spec: LateFusionSpec, lanes: list[Lane], *, config: PostprocessConfig):
        self.spec = spec
        self.lanes = lanes
        stream = lanes[0].stream
        labels = list(spec.labels)
        if not labels:  # the union of the members' labels, in order
            for lane in lanes:
                member = next(m for m in spec.members if m.model == lane.slot.name)
                for lab in lane.labels:
                    fused = member.labels.get(lab, lab)
                    if fused not in labels:
                        labels.append(fused)
        self.labels = tuple(labels)
        self.maps = []
        for lane in lanes:
            member = next(m for m in spec.members if m.model == lane.slot.name)
            mat = np.zeros((len(labels), len(lane.labels)), np.float64)
            for j, lab in enumerate(lane.labels):
                fused = member.labels.get(lab, lab)
                if fused in labels:
                    mat[labels.index(fused), j] = 1.0
            self.maps.append((lane, member.weight, mat))
        self.driver = next(
            lane for lane in lanes if lane.slot.name == (spec.drive or spec.members[0].model)
        )
        self.post = PostProcessor(
            labels=self.labels,
            config=spec.decision or config,
            stream=stream.name,
            model=spec.name,
            kind="probabilities",
        )
        self._acc = np.zeros(len(labels), np.float64)
        self._part = np.zeros(len(labels), np.float64)
        self._max_age_ns = int(spec.max_age_ms * 1e6)
        self._paced = self.driver.paced
        for lane in lanes:
            lane.keep_log()
        #: the driver's decisions not fused yet: (time_ns, stream time, latency, seen_ns)
        self._pending: deque[tuple[int, float, float, int]] = deque()
        self._max_pending = 4096  # a member that stopped deciding cannot hold them forever

    def on_output(
        self, lane: Lane, it: Item, stream_time_s: float, latency_ms: float
    ) -> list[Record]:
        """A member decided: fused decisions for the moments every member has passed."""
        if lane is self.driver:
            self._pending.append((it.time_ns, stream_time_s, latency_ms, now_ns()))
        return self._resolve(force=False)

    def finish(self) -> list[Record]:
        """The run ends: fuse what is pending with what the members said, then flush."""
        return self._resolve(force=True) + self.post.push(None)

    def _resolve(self, *, force: bool) -> list[Record]:
        out: list[Record] = []
        pending = self._pending
        now = now_ns()
        while pending:
            t, stream_t, latency_ms, seen = pending[0]
            if not force and len(pending) <= self._max_pending:
                behind = any(
                    (last := m.log.last_ns) is None or last < t
                    for m, _, _ in self.maps
                    if m is not self.driver
                )
                if behind and not (self._paced and now - seen > self._max_age_ns):
                    break
            pending.popleft()
            out.extend(self._fuse(t, stream_t, latency_ms))
        return out

    def _fuse(self, t: int, stream_time_s: float, latency_ms: float) -> list[Record]:
        self._acc[:] = 0.0
        total = 0.0
        mods: set[str] = set()
        degraded = False
        for member, weight, mat in self.maps:
            log = member.log
            i = log.at(t)
            if i is None or t - log.time_ns(i) > self._max_age_ns or weight == 0:
                degraded = True
                continue
            np.matmul(mat, log.probs(i), out=self._part)
            self._acc += weight * self._part
            total += weight
            mods.update(log.modalities(i))
            degraded = degraded or log.degraded(i)
        if total <= 0:
            return []
        self._acc /= total
        d = Decision(
            stream_time_s=stream_time_s,
            scores=self._acc,
            modalities=tuple(m for m in ("audio", "video") if m in mods),
            degraded=degraded,
            latency_ms=latency_ms,
        )
        return self.post.push(d)


class Gate:
    """Whether a gated lane may run now (see the module docstring)."""

    def __init__(self, spec: GateSpec, by: Lane) -> None:
        self.spec = spec
        self.by = by
        labels = by.labels
        if spec.label is not None:
            if spec.label not in labels:
                raise UsageError(
                    f"gate label {spec.label!r} is not a label of model {by.slot.name!r} "
                    f"({', '.join(labels)})"
                )
            self.col = labels.index(spec.label)
        else:
            bg = by.slot.decision.none_label
            self.col = next((i for i, lab in enumerate(labels) if lab != bg), 0)
        by.keep_log()

    def open(self) -> bool:
        """True while the gating model's latest score is at least the threshold."""
        if self.by.latest_ns is None:
            return False
        return float(self.by.latest[self.col]) >= self.spec.above

    def decide(self, time_ns: int) -> bool | None:
        """Open at `time_ns`, by the gating model's decision for that moment; None while
        it has not decided that far yet."""
        log = self.by.log
        last = log.last_ns
        if last is None or last < time_ns:
            return None
        i = log.at(time_ns)
        if i is None:  # every kept decision is later: the oldest is the nearest
            i = log.oldest()
        return float(log.probs(i)[self.col]) >= self.spec.above


__all__ = [
    "FusionPlan",
    "Gate",
    "GateSpec",
    "LateFusion",
    "LateFusionSpec",
    "Member",
    "load_fusion",
    "parse_fusion",
    "probabilities",
]
