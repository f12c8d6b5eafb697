"""One model of a run: its backend, pre-processing kernels, feed buffers, scheduler and
how its outputs become decisions and values.

A run may hold several models (`--model A --model B`), each with its own manifest,
cadence and window. The per-model half of the work lives here, once per model; the
per-(stream, model) half (which items, which window, the post-processor) lives in a
`Lane`. Feeds are preallocated for the largest micro-batch, in the dtype the graph
wants, and the batch views are made once, so a batch builds nothing.

Outputs, by the manifest's kinds (see avfuse.manifest.spec): the driving output is
turned into per-label scores for the lane's post-processor (softmax of `logits`,
`probabilities` and `score`s as they are, `sigmoid` per label), sequence outputs are
pooled over their steps first; `values` (and `embedding`, when asked for) outputs
become `Value` records.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from avfuse.backends.base import Backend, np_dtype
from avfuse.engine.postprocess import PostprocessConfig
from avfuse.engine.records import Value, WarningRecord
from avfuse.engine.schedule import Scheduler
from avfuse.errors import UsageError
from avfuse.kernels import image_kernel, log_mel_kernel
from avfuse.kernels.reference import AudioParams
from avfuse.kernels.waveform import WaveformKernel, WaveformParams
from avfuse.manifest import Manifest, TensorSpec

if TYPE_CHECKING:
    from avfuse.engine.lane import Lane
    from avfuse.engine.pipeline import PipelineConfig


@dataclass(frozen=True, kw_only=True)
class ModelOptions:
    """Per-model settings a run may override (CLI `--threshold NAME=0.6`, ...).

    Attributes:
        on_threshold / off_threshold / min_duration_ms: override the manifest's decision.
        embeddings: also report `embedding` outputs as value records.
        report_outputs: report every output but state (the driving one too) as value
            records, every decision (for checking a model against its own package).
        every_frames / every_ms: override the manifest's cadence.
    """

    on_threshold: float | None = None
    off_threshold: float | None = None
    min_duration_ms: float | None = None
    embeddings: bool = False
    report_outputs: bool = False
    every_frames: int | None = None
    every_ms: float | None = None


def decision_config(
    m: Manifest, opts: ModelOptions, base: PostprocessConfig | None
) -> PostprocessConfig:
    """The post-processing of a model: the run's explicit config, else the manifest's
    decision block, with the per-model overrides on top."""
    if base is not None:
        cfg = base
    else:
        d = m.decision
        cfg = PostprocessConfig(
            smoothing=d.smoothing,  # type: ignore[arg-type]
            ema_alpha=d.ema_alpha,
            mean_frames=d.mean_frames,
            on_threshold=d.on,
            off_threshold=d.off,
            min_duration_s=d.min_duration_ms / 1e3,
            none_label=d.background,
            thresholds=dict(d.thresholds),
        )
    kw: dict[str, Any] = {}
    if opts.on_threshold is not None:
        kw["on_threshold"] = opts.on_threshold
        if opts.off_threshold is None and cfg.off_threshold > opts.on_threshold:
            kw["off_threshold"] = opts.on_threshold
    if opts.off_threshold is not None:
        kw["off_threshold"] = opts.off_threshold
    if opts.min_duration_ms is not None:
        kw["min_duration_s"] = opts.min_duration_ms / 1e3
    return replace(cfg, **kw) if kw else cfg


class OutputReader:
    """Turns a batch's raw outputs into the driving scores and the value records."""

    def __init__(self, m: Manifest, *, embeddings: bool, everything: bool = False) -> None:
        self.driver: TensorSpec | None = next((o for o in m.outputs if o.drives), None)
        self.values = [
            o
            for o in m.outputs
            if o.kind == "values"
            or (o.kind == "embedding" and embeddings)
            or (everything and o.kind != "state")
        ]
        d = self.driver
        self.kind = "logits"
        if d is not None:
            self.kind = {"sigmoid": "sigmoid", "logits": "logits"}.get(
                d.kind or "", "probabilities"
            )
            if d.kind == "score":
                self.kind = "score"
        self.labels: tuple[str, ...] = d.labels if d is not None else ()

    @staticmethod
    def _pool(a: np.ndarray, pool: str, name: str) -> np.ndarray:
        """[batch, ...] -> [batch, classes]: sequences pooled over their steps."""
        if a.ndim <= 2:
            return a.reshape(a.shape[0], -1)
        if pool == "none":
            raise UsageError(
                f"output {name!r} is a sequence {list(a.shape)}: set its manifest 'pool' to "
                "mean, max or last"
            )
        steps = a.reshape(a.shape[0], -1, a.shape[-1])
        if pool == "mean":
            return steps.mean(axis=1)
        if pool == "max":
            return steps.max(axis=1)
        return steps[:, -1]

    def scores(self, out: dict[str, np.ndarray]) -> np.ndarray | None:
        """[batch, labels] scores of the driving output, or None without one."""
        d = self.driver
        if d is None:
            return None
        return self._pool(np.asarray(out[d.name]), d.pool, d.name)

    def value_records(self, out: dict[str, np.ndarray], row: int, **common: Any) -> list[Value]:
        """Value records of one batch row."""
        recs = []
        for o in self.values:
            a = self._pool(np.asarray(out[o.name]), o.pool if o.pool != "none" else "mean", o.name)
            vals = tuple(round(float(x), 6) for x in a[row])
            recs.append(Value(output=o.name, values=vals, **common))
        return recs


class ModelSlot:
    """The per-model half of a run (see the module docstring).

    Args:
        index: position among the run's models.
        backend: the loaded backend (its manifest completed from the graph).
        config: the pipeline's settings.
        options: per-model overrides.
    """

    def __init__(
        self, *, index: int, backend: Backend, config: PipelineConfig, options: ModelOptions
    ) -> None:
        if backend.manifest is None:
            raise UsageError("the backend is not loaded; call backend.load(manifest) first")
        self.index = index
        self.backend = backend
        self.manifest = m = backend.manifest
        self.name = m.name
        self.options = options
        self.config = config
        self.audio_spec = m.input_for("audio")
        self.video_spec = m.input_for("video")
        self.mask_spec = m.input_for("mask")
        a = m.audio
        if isinstance(a, WaveformParams):
            self.audio_kernel: Any = WaveformKernel(a)
        elif isinstance(a, AudioParams):
            self.audio_kernel = log_mel_kernel(a, config.kernel_impl)
        else:
            self.audio_kernel = None
        self.image_kernel = image_kernel(m.video, config.kernel_impl) if m.video else None
        self.records: list[WarningRecord] = []
        self.batch = self._batch_size(config.max_batch)
        self.fixed = any(isinstance(s.shape[0], int) for s in self._data_inputs() if s.shape)
        self.feeds = {
            s.name: backend.host_buffer(
                (self.batch, *(d if isinstance(d, int) else 1 for d in (s.shape or ())[1:])),
                np_dtype(s.dtype),
            )
            for s in self._data_inputs()
        }
        self.views = {
            b: {k: v[:b] for k, v in self.feeds.items()} for b in range(1, self.batch + 1)
        }
        self.reader = OutputReader(
            m, embeddings=options.embeddings, everything=options.report_outputs
        )
        self.decision = decision_config(m, options, config.postprocess)
        self.lanes: list[Lane] = []
        self.scheduler: Scheduler | None = None
        self.frames = 0
        self.batches = 0
        self.backend_errors = 0
        self.errors_in_a_row = 0

    def _data_inputs(self) -> list[TensorSpec]:
        return [
            s for s in self.manifest.inputs if s.modality in ("video", "audio", "mask", "history")
        ]

    def _batch_size(self, want: int) -> int:
        fixed = {s.shape[0] for s in self._data_inputs() if s.shape and isinstance(s.shape[0], int)}
        if not fixed:
            return want
        b = min(fixed)
        if b < want:
            self.records.append(
                WarningRecord(
                    source="pipeline",
                    kind="batch",
                    message=f"model {self.name!r} has a fixed batch of {b}; micro-batches are "
                    f"capped at {b}",
                    model=self.name,
                )
            )
        return b

    @property
    def modalities(self) -> tuple[str, ...]:
        return self.manifest.modalities

    def make_scheduler(self, on_drop: Any) -> Scheduler:
        """The model's queues, one per lane (call once the lanes are made)."""
        cfg = self.config
        depths = [cfg.queue_depth + lane.burst_allowance for lane in self.lanes]
        self.scheduler = Scheduler(
            streams=max(1, len(self.lanes)),
            depth=depths or cfg.queue_depth,
            max_batch=self.batch,
            max_wait_ms=cfg.max_wait_ms,
            on_drop=on_drop,
            per_stream=1 if self.manifest.state else None,  # state passes item to item
        )
        return self.scheduler

    def infer(self, n: int, stream_ids: list[Any]) -> dict[str, np.ndarray]:
        """Run the first `n` rows of the feeds (padded to a fixed batch)."""
        b = self.batch if self.fixed else n
        ids = list(stream_ids) + [None] * (b - n)
        return self.backend.infer(self.views[b], streams=ids, borrow=True)


__all__ = ["ModelOptions", "ModelSlot", "OutputReader", "decision_config"]
