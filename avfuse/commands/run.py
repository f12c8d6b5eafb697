"""`avfuse run`: recognise what a source shows and says, with per-stage latency."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from avfuse.backends.base import PROVIDERS
from avfuse.backends.select import PRECISIONS
from avfuse.commands import _args
from avfuse.errors import UsageError

#: documented ranges of the timing options (ms) and of --duration (s)
AV_OFFSET_MS = 10000.0
AUDIO_DEADLINE_MS = 10000.0
MAX_DURATION_S = 7 * 24 * 3600.0
MAX_BATCH = 1024


def add_model_options(p: argparse.ArgumentParser) -> None:
    """Model/backend options shared by run and demo."""
    g = p.add_argument_group("model")
    g.add_argument(
        "--model",
        action="append",
        default=None,
        metavar="[NAME=]PATH",
        help="model.onnx, its manifest.json or folder (default: the bundled model); repeat to "
        "run several models on every stream that has what they take; NAME= renames one "
        "(records carry the name; flags below take it)",
    )
    g.add_argument(
        "--threshold",
        action="append",
        default=[],
        type=_args.per_model(_args.finite_float(0.0, 1.0)),
        metavar="[NAME=]P",
        help="score that opens a decision, 0..1 (default: the manifest's); with several "
        "models name one: --threshold vad=0.6",
    )
    g.add_argument(
        "--off-threshold",
        action="append",
        default=[],
        type=_args.per_model(_args.finite_float(0.0, 1.0)),
        metavar="[NAME=]P",
        help="score below which an open decision closes, 0..1 (default: the manifest's)",
    )
    g.add_argument(
        "--min-duration-ms",
        action="append",
        default=[],
        type=_args.per_model(_args.finite_float(0.0, 600_000.0, unit="ms")),
        metavar="[NAME=]MS",
        help="shorter decisions are not reported (default: the manifest's)",
    )
    g.add_argument(
        "--every-frames",
        action="append",
        default=[],
        type=_args.per_model(_args.int_range(1, 10_000)),
        metavar="[NAME=]N",
        help="run a video model on every N-th frame (default: the manifest's cadence)",
    )
    g.add_argument(
        "--every-ms",
        action="append",
        default=[],
        type=_args.per_model(_args.finite_float(0.0, 60_000.0, unit="ms", lo_open=True)),
        metavar="[NAME=]MS",
        help="run an audio-driven model every MS of audio (default: the manifest's cadence)",
    )
    g.add_argument(
        "--fusion",
        metavar="PLAN.json",
        default=None,
        help="late fusions and gates between the models (see README, 'Several models')",
    )
    g.add_argument(
        "--values",
        action="append",
        nargs="?",
        const="",
        default=[],
        metavar="NAME",
        help="also write every output of every decision as `value` records (all models, or "
        "the one named): for checking a model against its own package, or debugging",
    )
    g.add_argument(
        "--backend",
        type=_args.one_of(_backend_names, what="backend", default="ort"),
        default="ort",
        help="ort (default), tensorrt, torch, triton (a Triton Inference Server: --triton-url), "
        "or auto: the best present here (TensorRT, then ONNX Runtime's TensorRT or CUDA "
        "provider on a GPU; the CPU otherwise), said on stderr",
    )
    g.add_argument(
        "--triton-url",
        metavar="URL",
        default=None,
        help="the Triton server of --backend triton: grpc://HOST:PORT (default "
        "grpc://127.0.0.1:8001) or http://HOST:PORT, options as a query: "
        "?timeout_s=5&retries=3&in_flight=4&shm=system&model=NAME (see docs/triton.md)",
    )
    g.add_argument(
        "--device",
        type=_args.device,
        default=None,
        help="cpu, cuda or cuda:N (default cpu; cuda when --provider or --backend needs a GPU)",
    )
    g.add_argument(
        "--provider",
        choices=PROVIDERS,
        default=None,
        help="ONNX Runtime execution provider, --backend ort only: cpu, cuda or tensorrt "
        "(default: the device's)",
    )
    g.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help="fp32 (default); fp16 or int8 with --provider tensorrt or --backend tensorrt "
        "(int8 needs a quantised model: `avfuse build MODEL --precision int8`)",
    )
    g.add_argument(
        "--threads",
        type=_args.threads(),
        default=0,
        metavar="N",
        help=(
            f"inference threads, {_args.threads_help(0)} (default 0: for ONNX Runtime half "
            "the usable cores, 1 to 4)"
        ),
    )
    g.add_argument(
        "--kernels",
        type=_args.one_of(_kernel_names, what="kernel implementation", default="auto"),
        default="auto",
        help="pre-processing implementation: auto (fastest available), numba, numpy, "
        "reference or cuda",
    )


def backend_spec(args: argparse.Namespace) -> str:
    """The backend as `create_backend` takes it ("triton:URL" carries --triton-url)."""
    url = getattr(args, "triton_url", None)
    if url is None:
        return args.backend
    if args.backend != "triton":
        raise UsageError(f"--triton-url is for --backend triton, not {args.backend}: drop one")
    return f"triton:{url}"


def _backend_names() -> list[str]:
    from avfuse.backends import available_backends

    return [*available_backends(), "auto"]


def check_backend(args: argparse.Namespace) -> None:
    """Refuse backend settings that contradict each other (one line, exit 2), before any
    work: `--provider cpu --device cuda`, `--provider` with another backend, ..."""
    import contextlib

    from avfuse.backends.select import choose
    from avfuse.errors import BackendUnavailable

    # `auto` finding nothing is said when loading, with what is missing
    with contextlib.suppress(BackendUnavailable):
        choose(args.backend, device=args.device, provider=args.provider, precision=args.precision)


def _kernel_names() -> list[str]:
    from avfuse.kernels import IMPLEMENTATIONS

    return ["auto", *IMPLEMENTATIONS]


def add_output_options(p: argparse.ArgumentParser, *, default_sink: str = "console") -> None:
    """Sink options shared by run and demo."""
    g = p.add_argument_group("output")
    g.add_argument(
        "--sink",
        action="append",
        default=None,
        metavar="SINK",
        help=f"where records go, repeatable: console, jsonl:PATH (- for stdout; "
        f"add ,max_mb=M / ,every=1d / ,keep=N to rotate), video:PATH.mp4, "
        f"webhook:URL[,backlog=N,timeout=S] (NDJSON POSTs, oldest dropped when the "
        f"endpoint is down), mqtt://HOST/TOPIC[,qos=0|1] (a JSON message per record), "
        f"window (default: {default_sink})",
    )
    g.add_argument("--show", action="store_true", help="also show a live window (= --sink window)")
    g.add_argument(
        "--metrics",
        metavar="PATH",
        default=None,
        help="write the summary (latency per stage, drops) as JSON to PATH (checked "
        "writable before the run starts)",
    )
    g.add_argument("--quiet", action="store_true", help="do not print the latency table at exit")


def sinks_from(args: argparse.Namespace, default: str = "console") -> list[str]:
    """The sink specs the options ask for."""
    sinks = list(args.sink or [default])
    if args.show:
        sinks.append("window")
    return sinks


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `run` sub-command."""
    p = _args.add_command(
        sub,
        "run",
        help="run a model on a file, stream, camera or microphone",
        description="Capture audio and video, align them on one clock and print recognition "
        "events as they happen, with per-stage latency. Files are processed as fast as the "
        "pipeline allows unless --realtime; live sources are paced by their devices.",
        epilog="Examples: avfuse run --source clip.mp4 --sink jsonl:events.jsonl | "
        "avfuse run --source udp://127.0.0.1:5004 --av-offset-ms 200 | "
        "avfuse run --camera 0 --mic default --show",
    )
    src = p.add_argument_group("sources (one stream each; --source may be repeated)")
    src.add_argument(
        "--source",
        action="append",
        default=[],
        metavar="SRC",
        help="a media file, a URL (udp://, rtsp://, http://, ...), synthetic[:SEED] "
        f"(SEED 0..{_args.SEED_MAX}), camera:N or mic:NAME",
    )
    src.add_argument("--audio", metavar="SRC", help="audio of the stream from SRC")
    src.add_argument("--video", metavar="SRC", help="video of the stream from SRC")
    src.add_argument("--camera", metavar="N|URL", help="camera index, device path or URL")
    src.add_argument("--mic", metavar="NAME", help="microphone: index, name substring or default")
    t = p.add_argument_group("timing")
    t.add_argument(
        "--av-offset-ms",
        type=_args.finite_float(-AV_OFFSET_MS, AV_OFFSET_MS, unit="ms"),
        default=0.0,
        metavar="MS",
        help="how much later the audio arrives than the video it belongs with "
        f"(positive: audio late), -{AV_OFFSET_MS:g}..{AV_OFFSET_MS:g}; default 0",
    )
    t.add_argument(
        "--sync-monitor",
        choices=("onsets", "content", "off"),
        default="onsets",
        help="how the residual A/V offset is measured: onsets (cues that start together), "
        "content (a talking face; EBU R37 tolerance) or off; default onsets",
    )
    t.add_argument(
        "--auto-offset",
        action="store_true",
        help="with --sync-monitor content: slew the applied offset to the measured one",
    )
    t.add_argument(
        "--audio-deadline-ms",
        type=_args.finite_float(0.0, AUDIO_DEADLINE_MS, unit="ms"),
        default=100.0,
        metavar="MS",
        help=f"longest wait for late audio after a frame, 0..{AUDIO_DEADLINE_MS:g} (default 100)",
    )
    t.add_argument(
        "--realtime",
        action="store_true",
        help="play files at their own pace instead of as fast as possible",
    )
    t.add_argument(
        "--duration",
        type=_args.finite_float(0.0, MAX_DURATION_S, unit="s", lo_open=True),
        default=None,
        metavar="S",
        help=f"stop after S seconds of wall time, 0 < S <= {MAX_DURATION_S:g} (a week; for "
        "longer runs leave it out and stop with Ctrl-C)",
    )
    t.add_argument(
        "--max-batch",
        type=_args.int_range(1, MAX_BATCH),
        default=8,
        metavar="N",
        help=f"largest micro-batch across streams, 1..{MAX_BATCH} (default 8)",
    )
    ops = p.add_argument_group("service")
    ops.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="messages on stderr as text (default) or one JSON object a line (services)",
    )
    ops.add_argument(
        "--metrics-port",
        type=_args.int_range(0, 65535),
        default=None,
        metavar="PORT",
        help="serve Prometheus metrics, /healthz and /readyz on PORT (0: any free port); "
        "needs pip install 'avfuse[metrics]'",
    )
    ops.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        metavar="HOST",
        help="address the metrics server binds (default 127.0.0.1: this machine only)",
    )
    p.add_argument(
        "--config",
        metavar="FILE.toml",
        default=None,
        help="read the options from a TOML file (keys = these flags; flags given here "
        "override it); SIGHUP then reloads it (`avfuse config --example` prints one)",
    )
    p.add_argument(
        "--truth",
        metavar="PATH",
        default=None,
        help="score the events against a ground-truth JSON (list of {label, start, "
        "end}), e.g. the one written beside a rendered synthetic scene; read and checked "
        "before the run starts",
    )
    add_model_options(p)
    add_output_options(p)
    p.set_defaults(func=run, drains=True)


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse an output option that could not be written at the end of the run."""
    if args.metrics is not None:
        _args.check_output_file(args.metrics, "--metrics")


def preflight(args: argparse.Namespace) -> None:
    """Checks that need the file system, run before any work (UsageError: exit 2).

    A synthetic:SEED source must have a valid seed, --truth must be a readable list
    of {label, start, end}, --metrics must be writable (nothing is created or
    truncated here).
    """
    from avfuse.engine.sources import synthetic_seed

    for spec in (*args.source, args.audio, args.video):
        kind, _, arg = (spec or "").strip().partition(":")
        if kind == "synthetic" and not arg.startswith("//"):
            synthetic_seed(arg)
    backend_spec(args)  # --triton-url without --backend triton
    if args.truth is not None:
        _args.read_truth(args.truth, "--truth")  # the run body reads it again at the end
    check_backend(args)
    check_outputs(args)


def model_options(args: argparse.Namespace) -> dict[str | None, dict[str, object]]:
    """Per-model overrides from the flags: {model name or None (the only model): fields}."""
    out: dict[str | None, dict[str, object]] = {}
    flags = (
        ("threshold", "on_threshold", 1.0),
        ("off_threshold", "off_threshold", 1.0),
        ("min_duration_ms", "min_duration_ms", 1.0),
        ("every_frames", "every_frames", 1),
        ("every_ms", "every_ms", 1.0),
    )
    for flag, field, _ in flags:
        for name, value in getattr(args, flag, []) or []:
            out.setdefault(name, {})[field] = value
    for name in getattr(args, "values", []) or []:
        out.setdefault(name or None, {})["report_outputs"] = True
    return out


def _stream_args(args: argparse.Namespace) -> tuple[list[str], str | None, str | None]:
    audio, video = args.audio, args.video
    if args.camera is not None:
        if video is not None:
            raise UsageError("--camera and --video both name the video: give one of them")
        video = args.camera if args.camera.startswith("camera:") else f"camera:{args.camera}"
    if args.mic is not None:
        if audio is not None:
            raise UsageError("--mic and --audio both name the audio: give one of them")
        audio = args.mic if args.mic.startswith("mic:") else f"mic:{args.mic}"
    return list(args.source), audio, video


def print_outcome(result, args: argparse.Namespace) -> None:  # noqa: ANN001 - RunResult
    """Latency table on stderr (unless --quiet) and the --metrics file."""
    if not args.quiet and getattr(args, "log_format", "text") != "json":
        print(result.table, file=sys.stderr)
    if args.metrics:
        Path(args.metrics).parent.mkdir(parents=True, exist_ok=True)
        summary = result.summary.to_dict()
        if result.score is not None:
            summary["score"] = {k: v for k, v in result.score.items() if k != "per_digit"}
        Path(args.metrics).write_text(json.dumps(summary, indent=2, default=str) + "\n")


def _api_kwargs(args: argparse.Namespace) -> dict[str, object]:
    """The `avfuse.api.start` arguments the options stand for."""
    from avfuse.engine.pipeline import PipelineConfig

    sources, audio, video = _stream_args(args)
    config = PipelineConfig(
        av_offset_ms=args.av_offset_ms,
        sync_monitor=getattr(args, "sync_monitor", "onsets") != "off",
        sync_method="content" if getattr(args, "sync_monitor", "") == "content" else "onsets",
        auto_offset=getattr(args, "auto_offset", False),
        audio_deadline_ms=args.audio_deadline_ms,
        realtime=args.realtime,
        kernel_impl=args.kernels,
        max_batch=args.max_batch,
    )
    return {
        "sources": sources,
        "audio": audio,
        "video": video,
        "model": args.model,
        "backend": backend_spec(args),
        "device": args.device,
        "provider": args.provider,
        "precision": args.precision,
        "threads": args.threads,
        "sinks": sinks_from(args),
        "config": config,
        "duration_s": args.duration,
        "stop": getattr(args, "stop_token", None),
        "options": model_options(args),
        "fusion": getattr(args, "fusion", None),
        # the records went to the sinks; only --truth scores the events at the end
        "keep_records": None if getattr(args, "truth", None) else 0,
    }


def run(args: argparse.Namespace) -> int:
    """Build the pipeline from the options and run it to the end."""
    preflight(args)
    from avfuse.api import start

    kwargs = _api_kwargs(args)
    config_file = getattr(args, "config_file", None)
    watchdog = "WATCHDOG_USEC" in __import__("os").environ
    if watchdog:
        from avfuse.service import WatchdogSink

        kwargs["sinks"] = [*kwargs["sinks"], WatchdogSink()]  # type: ignore[list-item]
    server = None
    started: list[Any] = []  # the session, once started (the server answers before it)
    if getattr(args, "metrics_port", None) is not None:
        from avfuse.ops.http import MetricsServer

        tick = kwargs["config"].stats_interval_s  # figures are published each tick
        server = MetricsServer(  # bound first: a port in use fails before anything runs
            snapshot=lambda: started[0].pipeline.snapshot if started else None,
            host=args.metrics_host,
            port=args.metrics_port,
            stale_after_s=max(5.0, 3 * tick),
        ).start()
    try:
        session = start(**kwargs)  # type: ignore[arg-type]
    except BaseException:
        if server is not None:
            server.stop()
        raise
    started.append(session)
    try:
        if config_file is not None:
            from avfuse.service import Service

            service = Service(
                config=config_file,
                parser=args.run_parser,
                argv=args.cli_argv,
                build=reload_parts,
            )
            args.on_hup = service.request_reload
            service.serve(session)
            result = session.wait()
        else:
            from avfuse.service import sd_notify

            sd_notify("READY=1")
            result = session.wait()
            sd_notify("STOPPING=1")
    finally:
        if server is not None:
            server.stop()
    assert result is not None  # no timeout
    if args.truth:
        from avfuse.engine.scoring import score_events

        try:
            truth = json.loads(Path(args.truth).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise UsageError(f"cannot read the truth file {args.truth}: {e}") from e
        score = score_events(result.events, truth)
        result = replace(result, score=score, truth=truth)
        print(
            f"score: {score['n_recognised']}/{score['n_truth']} recognised "
            f"(recall {score['recall']:.2f}), {score['n_false']} false event(s)",
            file=sys.stderr,
        )
    print_outcome(result, args)
    return 0


def reload_parts(args: argparse.Namespace):  # noqa: ANN201 - returns the Reconfig maker
    """What a reloaded config asks for, as a function (pipeline, old, new) -> Reconfig.

    Runs on the main thread: new models are loaded and warmed here, off the pipeline.
    """
    from avfuse.api import load_backend
    from avfuse.api import model_options as api_options
    from avfuse.engine.fusion import load_fusion
    from avfuse.engine.model_slot import ModelOptions
    from avfuse.engine.reconfig import Reconfig, prepare_slot
    from avfuse.engine.sinks import make_sink
    from avfuse.manifest import load_manifest

    def make(pipe, *, old, new):  # noqa: ANN001, ANN202
        wanted: dict[str, str] = {}
        for spec in args.model or []:
            name, sep, path = str(spec).partition("=")
            if not sep or "/" in name:
                name, path = load_manifest(spec).name, str(spec)
            wanted[name] = path
        running = {slot.name: slot for slot in pipe.slots}
        remove, add_specs, changes = [], [], []
        for name, slot in running.items():
            path = wanted.get(name)
            if path is None and wanted:
                remove.append(name)
                changes.append(f"model {name} removed")
            elif path is not None and load_manifest(path).model_path != slot.manifest.model_path:
                remove.append(name)
                add_specs.append((name, path))
                changes.append(f"model {name} replaced")
        for name, path in wanted.items():
            if name not in running:
                add_specs.append((name, path))
                changes.append(f"model {name} added")
        names = [n for n in running if n not in remove] + [n for n, _ in add_specs]
        opts = api_options(model_options(args), names)
        options = {}
        for name in running:
            if name in remove:
                continue
            new_opts = opts.get(name, ModelOptions())
            if new_opts != running[name].options:
                options[name] = new_opts
                changes.append(f"model {name} options")
        add = []
        for name, path in add_specs:
            be = load_backend(path, backend=backend_spec(args), device=args.device,
                              threads=args.threads, name=name, provider=args.provider,
                              precision=args.precision)  # fmt: skip
            add.append(prepare_slot(pipe, be, opts.get(name, ModelOptions())))
        sinks = None
        if sinks_from(args) != [s.name for s in pipe.sink_set.sinks if s.durable or
                                s.name == "console"]:  # fmt: skip
            keep = {s.name: s for s in pipe.sink_set.sinks}
            sinks = [keep.get(spec) or make_sink(spec) for spec in sinks_from(args)]
            sinks += [s for s in pipe.sink_set.sinks if not s.durable and s.name != "console"]
            changes.append("sinks")
        fusion = None
        if "fusion" in new.differs(old):
            fusion = load_fusion(args.fusion) if args.fusion else None
            changes.append("fusion plan")
        return Reconfig(
            add=add, remove=remove, options=options, sinks=sinks, fusion=fusion,
            summary=", ".join(changes) or "nothing changed",
        )  # fmt: skip

    return make
