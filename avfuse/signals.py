"""Signals end a run by draining it, never by cutting it off.

| signal  | what avfuse does                                         | exit |
|---------|----------------------------------------------------------|------|
| SIGINT  | drain: open events written, summary last, sinks closed   | 130  |
|         | (a second SIGINT during the drain aborts at once)        |      |
| SIGTERM | drain, as SIGINT                                         | 143  |
| SIGHUP  | drain, as SIGINT (with `--config`, a reload instead)     | 129  |
| SIGPIPE | stdout's reader went away: stop at once, quietly         | 141  |

A signal that was ignored when avfuse started (`nohup`, a background job started by a
non-interactive shell) stays ignored. The handlers only ask the run to stop through a
`StopToken`, whose request is safe inside a signal handler (see avfuse.engine.control).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

from avfuse.engine.control import StopToken

#: signal name -> exit status after a drained stop (128 + the signal number)
EXIT_STATUS = {"SIGINT": 130, "SIGTERM": 143, "SIGHUP": 129}
STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


def exit_status(reason: str | None) -> int | None:
    """The exit status for a run stopped for `reason`, or None when it is not a signal."""
    return EXIT_STATUS.get(reason or "")


@contextlib.contextmanager
def drain_on_signals(
    token: StopToken,
    names: tuple[str, ...] = STOP_SIGNALS,
    *,
    on_hup: Callable[[], None] | None = None,
) -> Iterator[StopToken]:
    """While inside, SIGINT/SIGTERM/SIGHUP request `token` to stop (see the module table).

    With `on_hup` (a service with a config file), SIGHUP calls it instead of stopping; it
    must only hand the work on (e.g. put into a `queue.SimpleQueue`), as any signal
    handler. Only the main thread can install handlers; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield token
        return

    def handler(signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        if name == "SIGHUP" and on_hup is not None:
            on_hup()
            return
        if token.requested and name == "SIGINT":
            raise KeyboardInterrupt  # a second Ctrl-C: the user does not want to wait
        token.request(name)

    previous: dict[int, object] = {}
    for name in names:
        sig = getattr(signal, name, None)
        if sig is None:
            continue
        old = signal.getsignal(sig)
        if old is signal.SIG_IGN:
            continue  # ignored at start (nohup, background job): stays ignored
        previous[sig] = old
        signal.signal(sig, handler)
    try:
        yield token
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)  # type: ignore[arg-type]


__all__ = ["EXIT_STATUS", "STOP_SIGNALS", "drain_on_signals", "exit_status"]
