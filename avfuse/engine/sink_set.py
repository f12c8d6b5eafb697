"""The sinks of a run: records to every working sink, failures turned into faults.

A sink whose hook raises is dropped for the rest of the run and the others get a
`fault` record naming it. `failures` lists them; when no durable sink is left the run
is asked to stop ("sinks_failed"), and a sink writing to stdout whose reader went away
stops it quietly ("stdout_closed").
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from avfuse.engine.control import StopToken
from avfuse.engine.metrics import Metrics
from avfuse.engine.records import Event, FaultRecord, Record, RunInfo
from avfuse.engine.sinks import Sink


@dataclass(frozen=True)
class SinkFailure:
    """A sink that stopped working during a run (its later records were lost)."""

    sink: Sink
    error: BaseException

    @property
    def message(self) -> str:
        e = self.error
        what = f"[Errno {e.errno}] {e.strerror}" if isinstance(e, OSError) and e.strerror else e
        return f"{self.sink.name}: {what}"


def _is_epipe(e: BaseException) -> bool:
    return isinstance(e, BrokenPipeError) or (isinstance(e, OSError) and e.errno == errno.EPIPE)


class SinkSet:
    """Every sink of a run (see the module docstring).

    Args:
        sinks: the run's sinks.
        stop: the run's stop token (asked to stop when no durable sink is left).
        metrics: where `sink_errors` is counted.
    """

    def __init__(self, sinks: Sequence[Sink], *, stop: StopToken, metrics: Metrics) -> None:
        self.sinks = list(sinks)
        self.stop_token = stop
        self.metrics = metrics
        self._dead: set[int] = set()
        #: sinks that failed during the run, in order
        self.failures: list[SinkFailure] = []
        #: True when a sink's stdout reader went away
        self.stdout_closed = False
        #: event records sent, in all and per stream
        self.events = 0
        self.events_by_stream: dict[str, int] = {}

    @property
    def frame_sinks(self) -> list[Sink]:
        """Working sinks that want annotated frames."""
        return [s for s in self.sinks if s.wants_frames and id(s) not in self._dead]

    def start(self, info: RunInfo, sinks: Sequence[Sink] | None = None) -> None:
        """Open sinks (all, or the ones given); an error here propagates (nothing ran yet)."""
        for s in sinks if sinks is not None else self.sinks:
            s.on_start(info)

    def send(self, record: Record, *, skip: Sink | None = None) -> None:
        """One record to every working sink."""
        if isinstance(record, Event):
            self.events += 1
            key = record.stream or ""
            self.events_by_stream[key] = self.events_by_stream.get(key, 0) + 1
        for s in self.sinks:
            if s is not skip:
                self.call(s, "on_record", record)

    def call(self, sink: Sink, hook: str, *args: Any) -> None:
        """Call a sink hook; a sink that raises is dropped and reported (see the module)."""
        if id(sink) in self._dead:
            return
        try:
            getattr(sink, hook)(*args)
        except Exception as e:  # noqa: BLE001 - every sink failure becomes a fault record
            self._failed(sink, e)

    def _failed(self, sink: Sink, e: BaseException) -> None:
        self._dead.add(id(sink))
        if sink.to_stdout and _is_epipe(e):
            self.stdout_closed = True
            self.stop_token.request("stdout_closed")
            message, kind = "the reader of stdout went away", "stdout_closed"
        else:
            self.metrics.count("sink_errors")
            failure = SinkFailure(sink=sink, error=e)
            self.failures.append(failure)
            message, kind = f"cannot write: {failure.message}; its records are lost", "error"
            if sink.durable and not any(s.durable and id(s) not in self._dead for s in self.sinks):
                self.stop_token.request("sinks_failed")
        self.send(
            FaultRecord(source=f"sink:{sink.name}", kind=kind, message=message, recoverable=False),
            skip=sink,
        )

    def close(self, sinks: Sequence[Sink] | None = None) -> None:
        """Close sinks (all, or the ones given); a failure to flush is a failure too."""
        for s in list(sinks if sinks is not None else self.sinks):
            if id(s) in self._dead:
                continue
            try:
                s.close()
            except Exception as e:  # noqa: BLE001 - one sink must not stop the others
                self._dead.add(id(s))
                if s.to_stdout and _is_epipe(e):
                    self.stdout_closed = True
                else:
                    self.failures.append(SinkFailure(sink=s, error=e))

    def replace(self, sinks: Sequence[Sink], info: RunInfo) -> None:
        """Swap to a new sink list (a reload): new ones opened, gone ones closed."""
        keep = {s.name for s in sinks}
        gone = [s for s in self.sinks if s.name not in keep]
        have = {s.name for s in self.sinks}
        new = [s for s in sinks if s.name not in have]
        self.start(info, new)
        self.close(gone)
        self.sinks = [s for s in self.sinks if s.name in keep] + new


__all__ = ["SinkFailure", "SinkSet"]
