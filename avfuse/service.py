"""Running as a service: config reloads on SIGHUP, systemd readiness and watchdog.

`avfuse run --config deploy.toml` runs like any `avfuse run` and, in addition:

    * SIGHUP re-reads the config file. The new file is checked in full (every value by
      its flag's rules); a file that is invalid, or that changes a key that cannot change
      while running (sources, backend, timing: see avfuse.config.RELOADABLE), is refused
      with a `reload_refused` warning and the running config is kept. Otherwise new
      models are loaded and warmed on this (the main) thread, then handed to the pipeline,
      which applies the change between two batches: no source stops, no frame is lost.
    * With systemd (`Type=notify`; NOTIFY_SOCKET set), READY=1 is sent once the model
      and sources are open and the pipeline runs, RELOADING=1/READY=1 around a reload,
      STOPPING=1 when it drains, and WATCHDOG=1 every stats tick of the pipeline's own
      loop when `WatchdogSec` is set, so a stuck pipeline is restarted by systemd.

The protocol is the sd_notify datagram one (a message to the NOTIFY_SOCKET Unix
socket); no libsystemd is needed.
"""

from __future__ import annotations

import argparse
import os
import queue
import socket
from collections.abc import Callable
from typing import Any

from avfuse.config import ConfigFile, merge_argv, read_config, reload_problem
from avfuse.engine.records import Stats, WarningRecord
from avfuse.engine.sinks import Sink
from avfuse.errors import AvfuseError
from avfuse.logs import log


def sd_notify(message: str) -> bool:
    """Send one sd_notify message ("READY=1", "WATCHDOG=1", ...); False without systemd."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    addr = "\0" + path[1:] if path.startswith("@") else path
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect(addr)
            s.sendall(message.encode())
    except OSError:
        return False
    return True


class WatchdogSink(Sink):
    """Pets systemd's watchdog from the pipeline's loop (each stats tick)."""

    name = "watchdog"
    durable = False

    def on_stats(self, stats: Stats) -> None:
        sd_notify("WATCHDOG=1")


class Service:
    """The reload loop of `avfuse run --config` (see the module docstring).

    Args:
        config: the config file as read at start.
        parser: the `run` sub-command's parser (the flags config keys are checked by).
        argv: the command line after `run` (its flags override the file's).
        build: turns parsed run arguments into (backends loader, options, sinks, fusion)
            for a reload: see `avfuse.commands.run.reload_parts`.
    """

    def __init__(
        self,
        *,
        config: ConfigFile,
        parser: argparse.ArgumentParser,
        argv: list[str],
        build: Callable[[argparse.Namespace], dict[str, Any]],
    ) -> None:
        self.config = config
        self.parser = parser
        self.argv = argv
        self.build = build
        self.requests: queue.SimpleQueue[str] = queue.SimpleQueue()

    def request_reload(self) -> None:
        """From the SIGHUP handler: hand the reload to the service loop (signal-safe)."""
        self.requests.put("reload")

    def serve(self, session: Any) -> None:
        """Wait for the run to end, reloading on request (the main thread's loop)."""
        sd_notify("READY=1")
        pipe = session.pipeline

        def finished() -> None:
            self.requests.put("done")

        pipe.on_finished = finished
        if pipe.closed:
            return
        while True:
            msg = self.requests.get()
            if msg == "done":
                break
            if msg == "reload":
                sd_notify("RELOADING=1")
                try:
                    self.reload(pipe)
                finally:
                    sd_notify("READY=1")
        sd_notify("STOPPING=1")

    def reload(self, pipe: Any) -> None:
        """Re-read, check and apply the config file; refuse (and say why) when it is bad."""
        try:
            new = read_config(self.config.path, self.parser)
            problem = reload_problem(self.config, new)
            if problem is not None:
                raise AvfuseError(problem)
            args = self.parser.parse_args(merge_argv(new, self.argv, self.parser))
            rc = self.build(args)(pipe, old=self.config, new=new)
        except (AvfuseError, SystemExit, OSError, ValueError) as e:
            why = str(e) if not isinstance(e, SystemExit) else "a flag in it is invalid"
            pipe.sink_set.send(
                WarningRecord(
                    source="config",
                    kind="reload_refused",
                    message=f"{self.config.path}: reload refused, the running config is "
                    f"kept: {why}",
                )
            )
            log("warning", f"reload refused: {why}", command="run")
            return
        pipe.request_reconfig(rc)
        rc.done.wait(30.0)
        if rc.error is not None:
            log("error", f"reload failed: {rc.error}", command="run")
            return
        self.config = new


__all__ = ["Service", "WatchdogSink", "sd_notify"]
