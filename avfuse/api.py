"""The Python API behind `avfuse run` and `avfuse demo`: one call each.

    from avfuse.api import run, demo
    from avfuse.engine.pipeline import PipelineConfig
    result = run(sources=["clip.mp4"], sinks=["jsonl:events.jsonl"],
                 config=PipelineConfig(av_offset_ms=200))
    result.events[0].label, result.summary.latency_ms["end_to_end"]["p99"]

    result = demo(realtime=False)          # synthetic scene, bundled model, self-scored
    result.score["recall"]

Sources are given as the CLI spells them (`open_source` specs: a file, a URL,
"synthetic[:SEED]", "camera:N", "mic:NAME") or as Source objects.

Order of opening (the public contract): the model is loaded, then every source is
opened and checked against it, and only then are the sinks opened, so a bad input
never truncates an output file; a sink that would write onto one of the sources is
refused. A sink that fails during the run makes `run` raise `SinkError` (exit 1)
after the run has drained; a closed stdout raises `StdoutClosed` (exit 141).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from avfuse.assets import default_model_path
from avfuse.backends import Backend, create_backend
from avfuse.backends.select import Choice, choose
from avfuse.engine.control import StopToken
from avfuse.engine.fusion import FusionPlan, load_fusion
from avfuse.engine.model_slot import ModelOptions
from avfuse.engine.pipeline import Pipeline, PipelineConfig
from avfuse.engine.records import Event, Record, Summary
from avfuse.engine.sinks import CallbackSink, MemorySink, Sink, make_sink
from avfuse.engine.sources import Source, open_source
from avfuse.errors import SinkError, StdoutClosed, UsageError
from avfuse.logs import log
from avfuse.manifest import Manifest

SourceSpec = str | Source
StreamSpec = SourceSpec | Sequence[SourceSpec]


@dataclass(frozen=True, kw_only=True)
class RunResult:
    """What a run produced.

    Attributes:
        events: the event records, in order.
        records: the records the sinks got, in order (onsets, warnings, faults, ...): the
            last `keep_records` of them (`start`).
        records_let_go: records older than those, let go (the sinks had them).
        summary: the summary record.
        table: the per-stage latency table as text.
        stopped_by: why the run ended (`Summary.stopped_by`).
        score: events scored against ground truth (demo, or run with a truth file).
        truth: that ground truth.
    """

    events: list[Event]
    records: list[Record]
    summary: Summary
    records_let_go: int = 0
    table: str
    stopped_by: str = "end"
    score: dict[str, Any] | None = None
    truth: list[dict[str, Any]] = field(default_factory=list)


ModelSpec = str | Path


def choose_backend(
    backend: str = "ort",
    *,
    device: str | None = None,
    provider: str | None = None,
    precision: str = "fp32",
) -> Choice:
    """The settled backend settings (`avfuse.backends.select.choose`); for "auto", the
    one line saying which runtime it picked is written on stderr."""
    choice = choose(backend, device=device, provider=provider, precision=precision)
    if choice.reason:
        log("info", choice.reason)
    return choice


def load_backend(
    model: ModelSpec | None = None,
    *,
    backend: str = "ort",
    device: str | None = None,
    threads: int = 0,
    name: str | None = None,
    provider: str | None = None,
    precision: str = "fp32",
    **extra: Any,
) -> Backend:
    """Load a model (default: the bundled one) into a backend, ready to infer.

    `model` may be "NAME=PATH" (or `name` given) to run it under another name.
    `provider` ("cpu", "cuda", "tensorrt") picks ONNX Runtime's execution provider;
    `precision` ("fp32", "fp16", "int8") what a TensorRT provider or backend builds;
    `backend="auto"` the best runtime present (see `choose_backend`); `device` defaults
    to the GPU when the provider or backend needs one, else the CPU.
    """
    text = str(model) if model is not None else None
    if text is not None and "=" in text and name is None:
        head, _, tail = text.partition("=")
        if head and "/" not in head and not Path(text).exists():
            name, text = head, tail
    from avfuse.manifest.todo import load_complete  # names every field still TODO

    manifest: Manifest = load_complete(text or default_model_path())
    if name:
        manifest = replace(manifest, name=name)
    c = choose_backend(backend, device=device, provider=provider, precision=precision)
    return create_backend(
        c.backend,
        device=c.device,
        threads=threads,
        provider=c.provider,
        precision=c.precision,
        extra=extra,
    ).load(manifest)


def _model_list(model: ModelSpec | Sequence[ModelSpec] | None) -> list[ModelSpec | None]:
    if model is None or isinstance(model, (str, Path)):
        return [model]
    models = list(model)
    return models or [None]


def model_options(
    options: Mapping[str | None, Mapping[str, Any] | ModelOptions] | None, names: Sequence[str]
) -> dict[str, ModelOptions]:
    """Per-model options by name; the key None means the only model (an error with several).

    Raises:
        UsageError: options name no model of the run, or a bare option with several models.
    """
    out: dict[str, ModelOptions] = {}
    for key, value in (options or {}).items():
        if key is None:
            if len(names) > 1:
                raise UsageError(
                    f"{len(names)} models run ({', '.join(names)}): name the one an option is "
                    "for, e.g. --threshold NAME=0.6"
                )
            key = names[0]
        if key not in names:
            raise UsageError(f"no model named {key!r} in this run (models: {', '.join(names)})")
        fields = value if isinstance(value, ModelOptions) else ModelOptions(**dict(value))
        if key in out:
            fields = replace(out[key], **{k: v for k, v in vars(fields).items() if v})
        out[key] = fields
    return out


def _source(spec: SourceSpec, *, sample_rate: int, realtime: bool, **kw: Any) -> Source:
    if isinstance(spec, Source):
        return spec
    return open_source(spec, sample_rate=sample_rate, realtime=realtime, **kw)


def build_streams(
    *,
    sources: Sequence[StreamSpec] = (),
    audio: SourceSpec | None = None,
    video: SourceSpec | None = None,
    sample_rate: int = 16000,
    realtime: bool = False,
) -> list[Source | list[Source]]:
    """Turn CLI-style source specs into the pipeline's stream list.

    Each entry of `sources` is one stream (a spec, or a list of specs combined into one
    stream); `audio` + `video` name the two halves of one more stream, each taking only
    its own modality from its source.
    """
    streams: list[Source | list[Source]] = []
    for s in sources:
        if isinstance(s, (str, Source)):
            streams.append(_source(s, sample_rate=sample_rate, realtime=realtime))
        else:
            streams.append([_source(x, sample_rate=sample_rate, realtime=realtime) for x in s])
    if audio is not None or video is not None:
        pair: list[Source] = []
        if video is not None:
            pair.append(
                _source(
                    video,
                    sample_rate=sample_rate,
                    realtime=realtime,
                    **({} if isinstance(video, Source) else {"audio": False}),
                )
            )
        if audio is not None:
            pair.append(
                _source(
                    audio,
                    sample_rate=sample_rate,
                    realtime=realtime,
                    **({} if isinstance(audio, Source) else {"video": False}),
                )
            )
        streams.append(pair)
    if not streams:
        raise UsageError(
            "no source given: use --source FILE|URL|synthetic, --audio/--video, or --camera/--mic"
        )
    return streams


def _source_paths(streams: Sequence[Source | Sequence[Source]]) -> list[Path]:
    """Local files the streams read (URLs and devices have none)."""
    paths = []
    for entry in streams:
        for src in [entry] if isinstance(entry, Source) else entry:
            loc = getattr(getattr(src, "config", None), "location", None)
            if isinstance(loc, str) and "://" not in loc and Path(loc).exists():
                paths.append(Path(loc))
    return paths


def _refuse_overwriting_sources(sinks: Sequence[Sink], sources: list[Path]) -> None:
    for sink in sinks:
        if sink.path is None or not sink.path.exists():
            continue
        for src in sources:
            if os.path.samefile(sink.path, src):
                raise UsageError(
                    f"--sink {sink.name} would overwrite the source {src}: write elsewhere"
                )


class Session:
    """A started run (see `start`): wait for it, stop it, or use it as a context manager.

    Attributes:
        pipeline: the running pipeline.
        sources: the stream entries as built (Source objects; a `PushSource` among them
            is what the application pushes into).
    """

    def __init__(
        self,
        *,
        pipeline: Pipeline,
        memory: MemorySink,
        loaded: list[Backend],
        timer: threading.Timer | None,
        sources: list[Any],
    ) -> None:
        self.pipeline = pipeline
        self.sources = sources
        self._memory = memory
        self._loaded = loaded
        self._timer = timer
        self._result: RunResult | None = None

    def stop(self, reason: str = "stop") -> None:
        """Ask the run to end (it drains first)."""
        self.pipeline.stop_token.request(reason)

    def wait(self, timeout: float | None = None) -> RunResult | None:
        """Wait for the run to end; its result (None when `timeout` passed first).

        Ctrl-C while waiting stops the run, waits for the drain and re-raises it.

        Raises:
            SinkError / StdoutClosed: as `run` (after the drain).
            BackendError: inference failed (after the drain).
        """
        if self._result is not None:
            return self._result
        pipe = self.pipeline
        try:
            if not pipe.wait(timeout):
                return None
        except KeyboardInterrupt:
            pipe.stop(timeout=30.0, reason="SIGINT")
            raise
        finally:
            if pipe.closed or pipe.error is not None:
                self._release()
        summary = pipe.summary
        assert summary is not None  # set when the worker finished
        self._result = RunResult(
            events=self._memory.events,
            records=self._memory.records,
            records_let_go=self._memory.let_go,
            summary=summary,
            table=pipe.table(),
            stopped_by=summary.stopped_by,
        )
        _raise_lost_output(pipe, self._result)
        return self._result

    def _release(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for be in self._loaded:
            be.close()
        self._loaded = []

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._result is None:
            self.stop()
            try:
                self.wait()
            except Exception:  # noqa: BLE001 - the with-block's own exception wins
                if exc[0] is None:
                    raise


def start(
    *,
    sources: Sequence[StreamSpec] = (),
    audio: SourceSpec | None = None,
    video: SourceSpec | None = None,
    model: ModelSpec | Sequence[ModelSpec] | None = None,
    backend: str | Backend | Sequence[Backend] = "ort",
    device: str | None = None,
    threads: int = 0,
    provider: str | None = None,
    precision: str = "fp32",
    sinks: Sequence[str | Sink] = ("console",),
    config: PipelineConfig | None = None,
    duration_s: float | None = None,
    stop: StopToken | None = None,
    options: Mapping[str | None, Mapping[str, Any] | ModelOptions] | None = None,
    fusion: FusionPlan | str | Path | None = None,
    on_record: Any = None,
    keep_records: int | None = 10_000,
) -> Session:
    """Start a run in the background; returns a `Session` (`run` = `start(...).wait()`).

    Everything is opened and checked before this returns (model, sources, then sinks);
    an application then pushes into its `PushSource`s and gets records through
    `on_record` (called on the pipeline's thread with each typed record).

    `keep_records` bounds the records the result holds (the most recent; None: all), so a
    session left running for months does not grow; events and records for long runs
    belong in a sink (`jsonl:PATH`, `on_record`).
    """
    cfg = config or PipelineConfig()
    if duration_s is not None and not 0 < duration_s < float("inf"):
        raise UsageError(f"duration must be a positive number of seconds, got {duration_s}")
    plan = load_fusion(fusion) if isinstance(fusion, (str, Path)) else fusion
    sink_objs = [make_sink(s) if isinstance(s, str) else s for s in sinks]
    if on_record is not None:
        sink_objs.append(CallbackSink(on_record))
    memory = MemorySink(keep=keep_records)
    given = isinstance(backend, Backend) or (
        not isinstance(backend, str) and all(isinstance(b, Backend) for b in backend)
    )
    loaded: list[Backend] = []
    try:
        if given:
            bes = [backend] if isinstance(backend, Backend) else list(backend)  # type: ignore[list-item]
        else:
            c = choose_backend(str(backend), device=device, provider=provider,
                               precision=precision)  # fmt: skip
            for spec in _model_list(model):
                loaded.append(
                    load_backend(
                        spec,
                        backend=c.backend,
                        device=c.device,
                        threads=threads,
                        provider=c.provider,
                        precision=c.precision,
                    )  # fmt: skip
                )
            bes = loaded
        names = [b.manifest.name for b in bes if b.manifest is not None]
        opts = model_options(options, names)
        rates = {b.manifest.audio.sample_rate for b in bes if b.manifest and b.manifest.audio}
        rate = next(iter(rates)) if len(rates) == 1 else 16000
        streams = build_streams(
            sources=sources, audio=audio, video=video, sample_rate=rate, realtime=cfg.realtime
        )
        token = stop or StopToken()
        pipe = Pipeline(  # opens and checks every source
            streams=streams,
            backends=bes,
            sinks=[*sink_objs, memory],
            config=cfg,
            stop=token,
            options=opts,
            fusion=plan,
        )
        _refuse_overwriting_sources(sink_objs, _source_paths(streams))
        pipe.start()
    except BaseException:
        for be in loaded:
            be.close()
        raise
    timer = None
    if duration_s is not None:
        timer = threading.Timer(duration_s, token.request, args=("duration",))
        timer.daemon = True
        timer.start()
    return Session(pipeline=pipe, memory=memory, loaded=loaded, timer=timer, sources=streams)


def run(**kwargs: Any) -> RunResult:
    """Run the pipeline on the given sources until they end, `duration_s` of wall time
    passes, or `stop` is requested; arguments as `start`.

    Args (the main ones):
        model: a model path ("NAME=PATH" renames it), or several: each runs on every
            stream that has a modality it takes (default: the bundled model).
        backend: the backend name ("auto": the best present), or loaded backend(s) to use
            as they are.
        device / provider / precision: as `load_backend`.
        options: per-model overrides by model name (`ModelOptions` fields; the key None
            for the only model), e.g. {"vad": {"on_threshold": 0.6}}.
        fusion: late fusions and gates between the models (a `FusionPlan` or the path
            of its JSON file; see avfuse.engine.fusion).

    Returns the events, every record, the summary and the latency table. Ctrl-C ends the
    run cleanly (sinks flushed) and re-raises KeyboardInterrupt.

    Raises:
        UsageError, SourceError, ManifestError, ...: bad input, before any sink is opened.
        SinkError: a sink could not write during the run (after the run drained; the
            error's `result` holds what was produced).
        StdoutClosed: the reader of stdout went away (the run stopped at once).
        BackendError: inference failed (after the drain).
    """
    session = start(**kwargs)
    result = session.wait()
    assert result is not None  # no timeout
    return result


def _raise_lost_output(pipe: Pipeline, result: RunResult) -> None:
    if pipe.sink_failures:
        first = pipe.sink_failures[0]
        more = f" (and {len(pipe.sink_failures) - 1} more)" if len(pipe.sink_failures) > 1 else ""
        err = SinkError(
            f"sink {first.message}{more}: its records were lost; the other sinks got a fault "
            "record and the summary"
        )
        err.result = result  # type: ignore[attr-defined]
        raise err
    if pipe.stdout_closed:
        err = StdoutClosed("stdout was closed by its reader")
        err.result = result  # type: ignore[attr-defined]
        raise err


def demo(
    *,
    seed: int = 0,
    digits: str = "0123456789",
    realtime: bool = True,
    model: ModelSpec | Sequence[ModelSpec] | None = None,
    backend: str = "ort",
    device: str | None = None,
    threads: int = 0,
    provider: str | None = None,
    precision: str = "fp32",
    sinks: Sequence[str | Sink] = ("console",),
    av_offset_ms: float = 0.0,
    drift_ppm: float = 0.0,
    jitter_ms: float = 0.0,
    config: PipelineConfig | None = None,
    stop: StopToken | None = None,
    options: Mapping[str | None, Mapping[str, Any] | ModelOptions] | None = None,
) -> RunResult:
    """The bundled model on the synthetic digit scene, scored against the scene's truth.

    `av_offset_ms`, `drift_ppm` and `jitter_ms` disturb the scene's audio; the pipeline
    is told the offset (as a user would with --av-offset-ms), drift and jitter it must
    absorb by itself.
    """
    from avfuse.engine.scoring import score_events
    from avfuse.engine.sources.synthetic import SceneScript, SyntheticSource

    cfg = replace(config or PipelineConfig(), realtime=realtime, av_offset_ms=av_offset_ms)
    specs = _model_list(model)
    if len(specs) > 1:
        raise UsageError("the demo runs one model; give one --model (or use avfuse run)")
    be = load_backend(specs[0], backend=backend, device=device, threads=threads,
                      provider=provider, precision=precision)  # fmt: skip
    try:
        rate = be.manifest.audio.sample_rate if be.manifest and be.manifest.audio else 16000
        src = SyntheticSource(
            script=SceneScript.default(seed=seed, digits=digits),
            sample_rate=rate,
            realtime=realtime,
            av_offset_ms=av_offset_ms,
            drift_ppm=drift_ppm,
            jitter_ms=jitter_ms,
        )
        truth = src.truth()
        res = run(sources=[src], backend=be, sinks=sinks, config=cfg, stop=stop, options=options)
    finally:
        be.close()
    return replace(res, score=score_events(res.events, truth), truth=truth)
