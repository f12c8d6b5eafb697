"""Sinks: where records (onsets, events, warnings, faults, summary) and annotated frames go.

A sink receives typed records (`avfuse.engine.records`), optionally every processed
frame with its overlay, and a `Stats` record about once a second. Sinks run on the
pipeline's worker thread, after inference; a slow sink shows up in the "sink"
latency stage.

    console        onsets and events as readable lines on stdout, warnings and faults on
                   stderr, a live status line on stderr (TTY)
    jsonl:PATH     every record as one JSON object a line (PATH "-" is stdout)
    jsonl:PATH,max_mb=M,every=1d,keep=N   the same, rotated by size or age
    video:PATH     annotated video file (label, score, audio level on every frame; sink_video)
    webhook:URL    records POSTed as NDJSON, bounded backlog (see sink_webhook)
    mqtt://HOST/TOPIC   each record published as one JSON message (see sink_mqtt)
    window         a live OpenCV window (needs a display and a GUI build of OpenCV; sink_video)

Life cycle: `make_sink(spec)` only parses and checks the spec (no file is touched);
the pipeline calls `on_start(info)` once its sources and model are open, and that is
where a sink opens its file. So a bad input never truncates an output file.

Failures: a sink hook that raises is the pipeline's business (see `Pipeline`): the
sink is dropped, the others get a `fault` record, and a `durable` sink that failed
makes the run fail, since its records were lost. A sink writing to stdout whose
reader went away raises `BrokenPipeError`, which ends the run quietly (exit 141).
"""

from __future__ import annotations

import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from avfuse.engine.records import Event, FaultRecord, Onset, Record, RunInfo, Stats, WarningRecord
from avfuse.errors import UsageError


@dataclass(frozen=True, kw_only=True)
class FrameOverlay:
    """What an annotated-video or window sink draws on a frame."""

    stream_time_s: float
    label: str | None  # current top label after smoothing, None when below threshold
    score: float
    audio_level_dbfs: float
    modalities: tuple[str, ...]
    degraded: bool


class Sink:
    """Base sink: every hook is optional; override what the sink needs.

    Attributes:
        name: how messages name the sink (its --sink spec).
        wants_frames: the sink wants `on_frame` calls (they cost a frame copy/draw).
        durable: losing what this sink writes fails the run (files, stdout, network).
        path: the file it writes, if any (checked against the sources' paths).
        to_stdout: it writes to stdout (a closed reader ends the run with 141).
    """

    name: str = "sink"
    wants_frames: bool = False
    durable: bool = True
    path: Path | None = None
    to_stdout: bool = False

    def on_start(self, info: RunInfo) -> None:
        """Called once, after sources and model are open and before the first frame."""

    def on_record(self, record: Record) -> None:
        """An onset, event, warning, fault or summary record."""

    def on_frame(self, frame: np.ndarray, overlay: FrameOverlay) -> None:
        """A processed frame (bgr24) with its overlay; only when `wants_frames`."""

    def on_stats(self, stats: Stats) -> None:
        """Live statistics, about once a second."""

    def close(self) -> None:
        """Flush and release; called once at the end of the run, also after a signal."""

    def figures(self) -> dict[str, Any] | None:
        """Delivery figures for the summary's `sinks` list (None: this sink keeps none)."""
        return None


def _check_output_path(spec: str, path: Path) -> None:
    """Refuse a path that cannot be a file: a folder, or under a regular file."""
    if path.is_dir():
        raise UsageError(f"--sink {spec}: {path} is a folder; give a file name in it")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(
                    f"--sink {spec}: {parent} is a file, not a folder; choose a path in a folder"
                )
            break


def _pyav(name: str) -> Any:
    """The PyAV module, or a one-line error naming the extra that installs it."""
    try:
        import av
    except ImportError as e:
        raise UsageError(
            f"--sink {name}: writing video needs PyAV: pip install 'avfuse[media]'"
        ) from e
    return av


def _cannot_open(spec: str, path: Path, e: OSError) -> UsageError:
    return UsageError(
        f"--sink {spec}: cannot write {path}: {e.strerror or e}; choose a writable path"
    )


class JsonlSink(Sink):
    """Every record as one JSON object a line; flushed per line so nothing is lost on a crash.

    A box that runs for months rotates its file: past `max_bytes` (or `every_s` after it
    was opened), PATH is renamed PATH.1 (PATH.1 to PATH.2, ...; the oldest past `keep`
    is deleted) and a new PATH is opened, between two records, so no line is ever split.
    A rotating sink appends to an existing PATH (a restarted service keeps what the last
    run wrote); a plain one starts the file afresh.
    """

    def __init__(
        self,
        *,
        path: str | Path,
        max_bytes: int | None = None,
        every_s: float | None = None,
        keep: int = 5,
        spec: str | None = None,
    ) -> None:
        text = str(path)
        self.name = spec or f"jsonl:{text}"
        self.to_stdout = text == "-"
        self.path = None if self.to_stdout else Path(text)
        if self.path is not None:
            _check_output_path(self.name, self.path)
        if self.to_stdout and (max_bytes or every_s):
            raise UsageError(f"--sink {self.name}: stdout cannot be rotated")
        if max_bytes is not None and max_bytes < 1000:
            raise UsageError(f"--sink {self.name}: max_mb must be at least 0.001 (1 kB)")
        if every_s is not None and every_s < 1:
            raise UsageError(f"--sink {self.name}: every must be at least 1 s")
        if not 1 <= keep <= 10_000:
            raise UsageError(f"--sink {self.name}: keep must be 1..10000")
        self.max_bytes, self.every_s, self.keep = max_bytes, every_s, keep
        self._file: TextIO | None = None
        self._bytes = 0
        self._opened = 0.0
        self.rotations = 0

    def _open(self) -> None:
        assert self.path is not None  # not stdout
        rotating = self.max_bytes is not None or self.every_s is not None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            mode = "a" if rotating else "w"
            self._file = open(self.path, mode, encoding="utf-8")  # noqa: SIM115 - closed in close()
            self._bytes = self._file.tell() if rotating else 0
        except OSError as e:
            raise _cannot_open(self.name, self.path, e) from e
        self._opened = time.monotonic()

    def on_start(self, info: RunInfo) -> None:
        if self.to_stdout:
            self._file = sys.stdout
            return
        self._open()

    def _rotate(self) -> None:
        assert self.path is not None and self._file is not None
        self._file.close()
        p = self.path
        oldest = p.with_name(f"{p.name}.{self.keep}")
        if oldest.exists():
            oldest.unlink()
        for k in range(self.keep - 1, 0, -1):
            src = p.with_name(f"{p.name}.{k}")
            if src.exists():
                src.rename(p.with_name(f"{p.name}.{k + 1}"))
        p.rename(p.with_name(f"{p.name}.1"))
        self.rotations += 1
        self._open()

    def on_record(self, record: Record) -> None:
        f = self._file
        if f is None:
            raise RuntimeError(f"{self.name} was not started")
        line = record.json_line() + "\n"
        f.write(line)
        f.flush()
        if self.max_bytes is None and self.every_s is None:
            return
        self._bytes += len(line.encode())
        due = self.every_s is not None and time.monotonic() - self._opened >= self.every_s
        if (self.max_bytes is not None and self._bytes >= self.max_bytes) or due:
            self._rotate()

    def close(self) -> None:
        f, self._file = self._file, None
        if f is not None and not self.to_stdout:
            f.close()  # raises if the last flush fails: the run reports it


def _sink_options(spec: str, arg: str, known: dict[str, type]) -> tuple[str, dict[str, object]]:
    """`PATH,key=value,...` -> (PATH, {key: value}); unknown keys are refused."""
    head, *rest = arg.split(",")
    opts: dict[str, object] = {}
    for item in rest:
        key, sep, value = item.partition("=")
        if not sep or key not in known:
            raise UsageError(
                f"--sink {spec}: {item!r} is not an option; use {', '.join(known)} (key=value)"
            )
        try:
            opts[key] = known[key](value)
        except ValueError:
            raise UsageError(f"--sink {spec}: {key}={value!r} is not a number") from None
    return head, opts


_DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _duration_s(text: str) -> float:
    text = text.strip()
    unit = _DURATION_UNITS.get(text[-1:])
    return float(text[:-1]) * unit if unit else float(text)


class MemorySink(Sink):
    """Keeps the records in memory (for the Python API and tests).

    Args:
        keep: the most recent records kept (None: all). A service runs for months and
            makes thousands of records an hour: held all, they are memory that only
            grows (~1 KB each; the 30-minute soak grew 9 MB/h from them alone). Older
            records are let go and counted in `let_go`; sinks have had them all.
    """

    name = "memory"
    durable = False

    def __init__(self, keep: int | None = None) -> None:
        if keep is not None and keep < 0:
            raise ValueError("keep must be >= 0 (or None: all)")
        self.keep = keep
        self._records: deque[Record] = deque(maxlen=keep)
        self.let_go = 0
        self.info: RunInfo | None = None

    def on_start(self, info: RunInfo) -> None:
        self.info = info

    def on_record(self, record: Record) -> None:
        if self.keep is not None and len(self._records) >= self.keep:
            self.let_go += 1
        self._records.append(record)

    @property
    def records(self) -> list[Record]:
        """The records kept, in order."""
        return list(self._records)

    @property
    def events(self) -> list[Event]:
        """The event records kept, in order."""
        return [r for r in self._records if isinstance(r, Event)]


class CallbackSink(Sink):
    """Calls a function with every record (and, if given, every stats record).

    For an application that wants records as objects, as they happen: the function runs
    on the pipeline's thread, so it should hand the record on and return quickly (a slow
    callback shows in the "sink" latency stage). An exception it raises is a sink fault.
    """

    name = "callback"
    durable = False

    def __init__(self, on_record: Any, *, on_stats: Any = None) -> None:
        self._on_record = on_record
        self._on_stats_fn = on_stats

    def on_record(self, record: Record) -> None:
        self._on_record(record)

    def on_stats(self, stats: Stats) -> None:
        if self._on_stats_fn is not None:
            self._on_stats_fn(stats)


def format_event(record: Event | Onset, *, with_stream: bool = False) -> str:
    """Human-readable one-line form of an event (start-end) or onset (start-, "(on)")."""
    mods = "+".join(record.modalities) or "-"
    flag = "  DEGRADED" if record.degraded else ""
    if isinstance(record, Onset):
        span, tail = f"{record.start:8.2f}-  ...", "  (onset)"
    else:
        span, tail = f"{record.start:8.2f}-{record.end:.2f}", ""
    where = f"  [{record.stream}]" if with_stream and record.stream else ""
    return (
        f"{span} s  {record.label!r:>7}  score {record.score:.2f}  {mods:<11} "
        f"{record.latency_ms:6.1f} ms{flag}{tail}{where}"
    )


class ConsoleSink(Sink):
    """Onsets and events as lines on stdout; warnings/faults on stderr; health on stderr.

    Health: on a TTY the live status line (rewritten in place each stats tick) carries
    it; otherwise (a journal, a log file) one line every `health_every_s` seconds, e.g.
    ``health: 29.9 fps, p99 12.3 ms, drops 0, streams up 1/1``, so an unattended run
    says it is alive without flooding the log. A stream counts as up while one of its
    modalities is: it goes down on a `disconnected`/`track_ended` warning or a fatal
    fault about it, and up again on `reconnected`/`track_resumed`.

    JSON mode (`--log-format json`, for journald and log shippers): every line is one
    JSON object: onsets, events, warnings and faults as their records, the health line as
    a `log` message carrying its figures; no status line.

    Args:
        out: where onsets and events go (stdout).
        err: where warnings, faults and health go (stderr).
        live: draw the status line (default: when `err` is a TTY and not JSON).
        health_every_s: seconds between health lines when not live (None: never; 0: at
            every stats tick); the first comes one period after the start.
        json_lines: JSON mode (default: as `avfuse.logs` is set).
    """

    name = "console"
    to_stdout = True

    #: record kinds that take a stream's modality down / bring it back
    DOWN_KINDS = frozenset({"disconnected", "track_ended"})
    UP_KINDS = frozenset({"reconnected", "track_resumed"})

    def __init__(
        self,
        *,
        out: TextIO | None = None,
        err: TextIO | None = None,
        live: bool | None = None,
        health_every_s: float | None = 60.0,
        json_lines: bool | None = None,
    ) -> None:
        if health_every_s is not None and not 0 <= health_every_s < float("inf"):
            raise UsageError(f"health_every_s must be >= 0 seconds or None, got {health_every_s}")
        from avfuse.logs import json_logs

        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.to_stdout = out is None
        self.json = json_logs() if json_lines is None else json_lines
        self.live = (self.err.isatty() and not self.json) if live is None else live
        self.health_every_s = health_every_s
        self._next_health: float | None = None
        self._status_shown = False
        self._multi = False
        self._has: dict[str, frozenset[str]] = {}
        self._down: dict[str, set[str]] = {}

    def on_start(self, info: RunInfo) -> None:
        self._multi = len(info.streams) > 1
        self._has = {
            s.name: frozenset(
                m for m, present in (("audio", s.sample_rate), ("video", s.fps)) if present
            )
            for s in info.streams
        }
        self._down = {name: set() for name in self._has}
        if self.health_every_s is not None:
            self._next_health = time.monotonic() + self.health_every_s

    def _clear_status(self) -> None:
        if self._status_shown:
            self.err.write("\r\033[K")
            self._status_shown = False

    def _track(self, record: WarningRecord | FaultRecord) -> None:
        """Follow which modalities of which stream are down, from the records about them."""
        down = self._down.get(record.stream or "")
        if down is None:
            return
        mods = {record.modality} if record.modality else set(self._has[str(record.stream)])
        if record.kind in self.DOWN_KINDS or (
            isinstance(record, FaultRecord) and not record.recoverable
        ):
            down |= mods
        elif record.kind in self.UP_KINDS:
            down -= mods

    def streams_up(self) -> tuple[int, int]:
        """(streams with a modality up, streams), as far as the records told."""
        up = sum(1 for name, has in self._has.items() if has - self._down[name])
        return up, len(self._has)

    def on_record(self, record: Record) -> None:
        if isinstance(record, (Event, Onset)):
            self._clear_status()
            line = (
                record.json_line() if self.json else format_event(record, with_stream=self._multi)
            )
            self.out.write(line + "\n")
            self.out.flush()
        elif isinstance(record, (WarningRecord, FaultRecord)):
            self._track(record)
            self._clear_status()
            if self.json:
                self.err.write(record.json_line() + "\n")
            else:
                src = f" [{record.source}]" if record.source else ""
                self.err.write(f"{record.type}{src} {record.kind}: {record.message}\n")
            self.err.flush()

    def health_line(self, stats: Stats) -> str:
        """The one-line health summary of a stats record."""
        up, total = self.streams_up()
        return (
            f"health: {stats.fps:.1f} fps, p99 {stats.latency_p99_ms:.1f} ms, "
            f"drops {stats.drops}, streams up {up}/{total}"
        )

    def on_stats(self, stats: Stats) -> None:
        if not self.live:
            now, every, due = time.monotonic(), self.health_every_s, self._next_health
            if every is not None and due is not None and now >= due:
                self._next_health = max(due + every, now)
                if self.json:
                    import json

                    up, total = self.streams_up()
                    rec = {"type": "log", "level": "info", "command": "run",
                           "message": self.health_line(stats), "kind": "health",
                           "fps": stats.fps, "latency_p99_ms": stats.latency_p99_ms,
                           "drops": stats.drops, "streams_up": up, "streams": total,
                           "wall_time": stats.wall_time}  # fmt: skip
                    self.err.write(json.dumps(rec) + "\n")
                    self.err.flush()
                else:
                    self.err.write(self.health_line(stats) + "\n")
                    self.err.flush()
            return
        up, total = self.streams_up()
        labels = " ".join(lab or "-" for lab in stats.labels.values())
        line = (
            f"{stats.fps:5.1f} fps  latency p50 {stats.latency_p50_ms:5.1f} "
            f"p99 {stats.latency_p99_ms:5.1f} ms  drops {stats.drops}  up {up}/{total}  {labels}"
        )
        self.err.write("\r\033[K" + line)
        self.err.flush()
        self._status_shown = True

    def close(self) -> None:
        self._clear_status()


def make_sink(spec: str) -> Sink:
    """Build a sink from a --sink value: console, jsonl:PATH[,max_mb=M,every=1d,keep=N],
    video:PATH, webhook:URL[,backlog=N,timeout=S], mqtt://HOST/TOPIC[,qos=0|1,...], window.

    Only parses and checks the spec; nothing is opened until `on_start`.
    """
    kind, _, arg = spec.partition(":")
    if kind == "console" and not arg:
        return ConsoleSink()
    if kind == "jsonl" and arg:
        path, opts = _sink_options(spec, arg, {"max_mb": float, "every": _duration_s, "keep": int})
        max_mb = opts.get("max_mb")
        return JsonlSink(
            path=path,
            max_bytes=int(float(max_mb) * 1e6) if max_mb is not None else None,  # type: ignore[arg-type]
            every_s=opts.get("every"),  # type: ignore[arg-type]
            keep=int(opts.get("keep", 5)),  # type: ignore[call-overload]
            spec=spec,
        )
    if kind == "webhook" and arg:
        from avfuse.engine.sink_webhook import WebhookSink

        url, opts = _sink_options(spec, arg, {"backlog": int, "timeout": float})
        return WebhookSink(url=url, spec=spec, **opts)  # type: ignore[arg-type]
    if kind in ("mqtt", "mqtts") and arg.startswith("//"):
        from avfuse.engine.sink_mqtt import MqttSink

        url, opts = _sink_options(spec, spec, {"backlog": int, "timeout": float, "qos": int})
        return MqttSink(url=url, spec=spec, **opts)  # type: ignore[arg-type]
    if kind == "video" and arg:
        from avfuse.engine.sink_video import VideoFileSink

        return VideoFileSink(path=arg)
    if kind == "window" and not arg:
        from avfuse.engine.sink_video import WindowSink

        return WindowSink()
    raise UsageError(
        f"unknown sink {spec!r}; use console, jsonl:PATH (- for stdout), video:PATH.mp4, "
        "webhook:URL, mqtt://HOST/TOPIC or window"
    )


__all__ = [
    "CallbackSink",
    "ConsoleSink",
    "FrameOverlay",
    "JsonlSink",
    "MemorySink",
    "Sink",
    "format_event",
    "make_sink",
]
