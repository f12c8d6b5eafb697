"""Agreement of the camera and the microphone: `conflict` records when they confidently differ.

A late-fusion decision averages what the image and the speech say, so a card showing 3
while the voice says 5 comes out as whichever is surer, and the disagreement is lost.
A model whose manifest gives each modality its own head (outputs with ``"modality":
"audio"`` / ``"video"``, see avfuse.manifest.spec) lets the runtime see it: for every
decision of a fused lane, `AgreementMonitor` reads both heads of that same call and
reports a `Conflict` when

    both modalities are present, both heads' top probabilities are at least `on`, their
    labels differ and neither is the decision's background label, for at least
    `min_duration_ms`;

it then goes on while both stay at least `off` on the same two labels, and ends once
that has failed for longer than `max_gap_ms` (a dip shorter than that does not split
it). One record per conflict, made when it ends (or when the stream ends), with its
start and end (the first and last moments the condition held), both labels, each
head's mean top probability over it and, when the model also gives both embeddings
of a shared space, their mean cosine similarity. The thresholds come from the
manifest's ``agreement`` block (`AgreementSpec`).

`AgreementMonitor` has the streaming shape: `push(observation) -> list[Conflict]`,
`push(None)` flushes. `push_outputs` reads one row of a batch's raw outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from avfuse.engine.records import Conflict
from avfuse.manifest import AgreementSpec, Manifest

__all__ = ["AgreementHeads", "AgreementMonitor", "Observation", "agreement_for"]


@dataclass(frozen=True, kw_only=True)
class AgreementHeads:
    """Which graph outputs are each modality's own head (and embedding).

    Attributes:
        audio / video: output names of the per-modality heads.
        audio_kind / video_kind: "logits" (softmax applied here) or "probabilities".
        labels: the heads' labels (the driving output's).
        audio_embedding / video_embedding: output names of the embeddings, or None.
    """

    audio: str
    video: str
    audio_kind: str
    video_kind: str
    labels: tuple[str, ...]
    audio_embedding: str | None = None
    video_embedding: str | None = None

    @classmethod
    def of(cls, m: Manifest) -> AgreementHeads | None:
        """The heads a manifest declares, or None without one for each modality."""
        a, v = m.head_for("audio"), m.head_for("video")
        if a is None or v is None:
            return None
        ea, ev = m.embedding_for("audio"), m.embedding_for("video")
        both = ea is not None and ev is not None
        return cls(
            audio=a.name,
            video=v.name,
            audio_kind=a.kind or "probabilities",
            video_kind=v.kind or "probabilities",
            labels=a.labels or m.labels,
            audio_embedding=ea.name if both and ea is not None else None,
            video_embedding=ev.name if both and ev is not None else None,
        )


@dataclass(frozen=True, kw_only=True)
class Observation:
    """Both heads' opinions about one moment.

    Attributes:
        time_s: stream seconds the decision is about.
        audio / video: per-label probabilities of each head.
        modalities: the modalities present in this decision's input.
        similarity: cosine similarity of the two embeddings, or None.
    """

    time_s: float
    audio: np.ndarray
    video: np.ndarray
    modalities: tuple[str, ...]
    similarity: float | None = None


@dataclass
class _Run:
    """A candidate or open conflict: the two labels and what has been seen of it."""

    audio_label: int
    video_label: int
    start: float
    last: float  # the last moment the condition held
    n: int = 0
    audio_sum: float = 0.0
    video_sum: float = 0.0
    sim_sum: float = 0.0
    sim_n: int = 0
    open: bool = False

    def add(self, obs: Observation, pa: float, pv: float) -> None:
        self.last = obs.time_s
        self.n += 1
        self.audio_sum += pa
        self.video_sum += pv
        if obs.similarity is not None:
            self.sim_sum += obs.similarity
            self.sim_n += 1


class AgreementMonitor:
    """Conflict decisions for one model on one stream (see the module docstring).

    Args:
        heads: the manifest's per-modality outputs.
        config: thresholds and durations.
        background: the label that never takes part in a conflict (e.g. "none"), or None.
        stream / model: ids carried by the records.
    """

    def __init__(
        self,
        *,
        heads: AgreementHeads,
        config: AgreementSpec = AgreementSpec(),  # noqa: B008 - frozen dataclass
        background: str | None = "none",
        stream: str | None = None,
        model: str | None = None,
    ) -> None:
        self.heads = heads
        self.config = config
        self.labels = heads.labels
        self._background = heads.labels.index(background) if background in heads.labels else -1
        self.stream, self.model = stream, model
        self._min_s = config.min_duration_ms / 1e3
        self._gap_s = config.max_gap_ms / 1e3
        n = len(heads.labels)
        self._pa = np.zeros(n, np.float64)
        self._pv = np.zeros(n, np.float64)
        self._run: _Run | None = None
        self._last_t: float | None = None
        self.conflicts = 0

    # ------------------------------------------------------------------ inputs
    def push_outputs(
        self,
        out: dict[str, np.ndarray],
        row: int,
        time_s: float,
        modalities: tuple[str, ...],
    ) -> list[Conflict]:
        """Read row `row` of a batch's outputs (both heads, the embeddings) and push it."""
        h = self.heads
        _probs(h.audio_kind, np.asarray(out[h.audio][row], np.float64).ravel(), self._pa)
        _probs(h.video_kind, np.asarray(out[h.video][row], np.float64).ravel(), self._pv)
        sim = None
        if h.audio_embedding is not None and h.video_embedding is not None:
            sim = _cosine(out[h.audio_embedding][row], out[h.video_embedding][row])
        obs = Observation(
            time_s=time_s, audio=self._pa, video=self._pv, modalities=modalities, similarity=sim
        )
        return self.push(obs)

    def push(self, obs: Observation | None) -> list[Conflict]:
        """One decision's observation; None flushes (an open conflict is reported)."""
        if obs is None:
            return self._close()
        if self._last_t is not None and obs.time_s < self._last_t:
            raise ValueError(
                f"observation at {obs.time_s:.3f} s after one at {self._last_t:.3f} s: "
                "push decisions of one stream in time order"
            )
        self._last_t = obs.time_s
        out: list[Conflict] = []
        la, lv = int(np.argmax(obs.audio)), int(np.argmax(obs.video))
        pa, pv = float(obs.audio[la]), float(obs.video[lv])
        both = "audio" in obs.modalities and "video" in obs.modalities
        differ = both and la != lv and self._background not in (la, lv)
        cfg = self.config
        starts = differ and pa >= cfg.on and pv >= cfg.on
        run = self._run
        if run is not None and obs.time_s - run.last > self._gap_s:
            out.extend(self._close())  # the condition failed for longer than the gap
            run = None
        if run is not None:
            if differ and (la, lv) == (run.audio_label, run.video_label) and min(pa, pv) >= cfg.off:
                run.add(obs, pa, pv)
                if not run.open and run.last - run.start >= self._min_s:
                    run.open = True
                return out
            if not starts:
                return out  # a dip no longer than the gap: the conflict may go on
            out.extend(self._close())  # two other labels, confidently: a new conflict
        if starts:
            self._run = _Run(audio_label=la, video_label=lv, start=obs.time_s, last=obs.time_s)
            self._run.add(obs, pa, pv)
            self._run.open = self._min_s <= 0
        return out

    # ------------------------------------------------------------------ output
    def _close(self) -> list[Conflict]:
        run, self._run = self._run, None
        if run is None or not run.open:
            return []
        self.conflicts += 1
        return [
            Conflict(
                conflict_id=self.conflicts,
                audio_label=self.labels[run.audio_label],
                audio_score=round(run.audio_sum / run.n, 4),
                video_label=self.labels[run.video_label],
                video_score=round(run.video_sum / run.n, 4),
                start=round(run.start, 3),
                end=round(run.last, 3),
                similarity=round(run.sim_sum / run.sim_n, 4) if run.sim_n else None,
                stream=self.stream,
                model=self.model,
                stream_time=round(run.last, 3),
            )
        ]


def _probs(kind: str, x: np.ndarray, out: np.ndarray) -> None:
    if kind == "logits":
        np.subtract(x, x.max(), out=out)
        np.exp(out, out=out)
        out /= out.sum()
    else:
        np.copyto(out, x)


def _cosine(a: Any, b: Any) -> float:
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    den = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b / den) if den > 0 else 0.0


def agreement_for(
    m: Manifest, *, background: str | None, stream: str | None, model: str | None
) -> AgreementMonitor | None:
    """The monitor for a model on a stream, or None when the manifest has no heads for
    both modalities (or the model does not take both)."""
    heads = AgreementHeads.of(m)
    if heads is None or set(m.modalities) != {"audio", "video"}:
        return None
    return AgreementMonitor(
        heads=heads, config=m.agreement, background=background, stream=stream, model=model
    )
