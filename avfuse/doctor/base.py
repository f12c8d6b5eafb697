"""The types and helpers every doctor check shares: `Check`, `Measure`, bounded calls.

A check never raises and never hangs: an external command runs under a timeout
(`run_command`), and `bounded` runs a check that calls into a driver (CUDA, PortAudio,
a camera, a GPU backend) in a daemon thread with a deadline, so a wedged driver becomes
a `fail` row instead of a frozen terminal.

Statuses:
    pass    present and working
    fail    broken: avfuse (or the part named) will not work until the fix is applied
    absent  an optional part is not on this machine (the detail says why); not a fault
    warn    present but degraded (e.g. a backend that agrees with the CPU reference
            only on most samples)
"""

from __future__ import annotations

import math
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Status = Literal["pass", "fail", "absent", "warn"]
#: every status, in the order the summary counts them
STATUSES: tuple[str, ...] = ("pass", "fail", "absent", "warn")
#: table sections, in the order they print
SECTIONS: tuple[str, ...] = ("software", "gpu", "media", "model", "backends")

#: seconds any external command may take (nvidia-smi on a wedged driver never answers)
COMMAND_TIMEOUT_S = 10.0


@dataclass(frozen=True, kw_only=True)
class Measure:
    """What a backend row measured on the bundled samples.

    Attributes:
        samples: inputs compared with the reference.
        reference: what the outputs were compared with.
        top1_agreement: fraction of samples whose top class equals the reference's
            (None when there was nothing to compare with).
        max_abs_error: largest absolute difference over every output element (None: not
            compared; a non-finite output is reported in the detail and as None).
        label_accuracy: fraction of samples whose top class is the sample's true label.
        latency_calls: single-stream (batch 1) calls timed.
        latency_median_ms: median of the runtime's own time per call.
        latency_p99_ms: 99th percentile of the same.
    """

    samples: int
    reference: str
    top1_agreement: float | None
    max_abs_error: float | None
    label_accuracy: float | None
    latency_calls: int
    latency_median_ms: float | None
    latency_p99_ms: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (non-finite numbers become null: JSON has no NaN)."""
        out: dict[str, Any] = {}
        for k, v in self.__dict__.items():
            out[k] = None if isinstance(v, float) and not math.isfinite(v) else v
        return out


@dataclass(frozen=True, kw_only=True)
class Check:
    """One row of the doctor's table.

    Attributes:
        name: what was checked ("Python", "GPU", "ONNX Runtime CPU").
        section: one of `SECTIONS`.
        status: "pass", "fail", "absent" or "warn".
        detail: what was found, or why it is missing or broken.
        fix: the command or step that repairs a fail or warn (required for them), or
            that adds an absent part; None when there is nothing to do.
        version: the version found, where the part has one.
        measure: a backend's parity and latency figures.
    """

    name: str
    section: str
    status: Status
    detail: str
    fix: str | None = None
    version: str | None = None
    measure: Measure | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        if self.section not in SECTIONS:
            raise ValueError(f"section must be one of {SECTIONS}, got {self.section!r}")
        if self.status in ("fail", "warn") and not self.fix:
            raise ValueError(f"a {self.status} row needs its fix ({self.name})")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with every key present (null where a field is empty)."""
        return {
            "name": self.name,
            "section": self.section,
            "status": self.status,
            "detail": self.detail,
            "fix": self.fix,
            "version": self.version,
            "measure": self.measure.to_dict() if self.measure is not None else None,
        }


@dataclass(frozen=True)
class CommandResult:
    """What an external command answered (`returncode` None: it timed out or did not start)."""

    returncode: int | None
    stdout: str
    stderr: str
    error: str = ""

    @property
    def first_line(self) -> str:
        """The first non-empty line of its output (stdout, else stderr), or the error."""
        for text in (self.stdout, self.stderr):
            for line in text.splitlines():
                if line.strip():
                    return line.strip()
        return self.error


def run_command(argv: Sequence[str], *, timeout_s: float = COMMAND_TIMEOUT_S) -> CommandResult:
    """Run `argv` with no stdin and a timeout; never raises."""
    try:
        p = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout_s,
            stdin=subprocess.DEVNULL, errors="replace",
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return CommandResult(None, "", "", f"{argv[0]} did not answer within {timeout_s:g} s")
    except OSError as e:
        return CommandResult(None, "", "", f"{argv[0]} cannot run: {e.strerror or e}")
    return CommandResult(p.returncode, p.stdout, p.stderr)


@dataclass(frozen=True)
class Outcome:
    """What a call under a deadline came to: its value, what it raised, or neither."""

    value: Any = None
    error: BaseException | None = None
    timed_out: bool = False


def call_with_deadline(fn: Callable[[], Any], *, timeout_s: float, name: str) -> Outcome:
    """Call `fn` in a daemon thread and wait at most `timeout_s` for it.

    The thread of an overrunning call is left behind (a call stuck in a driver cannot be
    cancelled); being a daemon, it does not keep the process alive.
    """
    box: list[Outcome] = []

    def target() -> None:
        try:
            box.append(Outcome(value=fn()))
        except BaseException as e:  # reported by the caller, never as a traceback
            box.append(Outcome(error=e))

    t = threading.Thread(target=target, name=f"doctor-{name}", daemon=True)
    t.start()
    t.join(timeout_s)
    return box[0] if box else Outcome(timed_out=True)


def bounded(
    fn: Callable[[], Check], *, name: str, section: str, timeout_s: float, fix: str
) -> Check:
    """Run a check under a deadline; a check that overruns or raises becomes a fail row."""
    res = call_with_deadline(fn, timeout_s=timeout_s, name=name)
    if isinstance(res.value, Check):
        return res.value
    if res.timed_out:
        detail = f"did not answer within {timeout_s:g} s"
    else:
        detail = f"the check itself failed: {type(res.error).__name__}: {one_line(str(res.error))}"
    return Check(name=name, section=section, status="fail", detail=detail, fix=fix)


def one_line(text: str, limit: int = 240) -> str:
    """`text` on one line, shortened to `limit` characters."""
    s = " ".join(text.split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


def version_tuple(text: str) -> tuple[int, ...]:
    """The leading numeric parts of a version ("1.26.4+x" -> (1, 26, 4))."""
    parts: list[int] = []
    for piece in text.split("."):
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        parts.append(int(digits))
        if len(digits) != len(piece):
            break
    return tuple(parts)


__all__ = [
    "COMMAND_TIMEOUT_S",
    "SECTIONS",
    "STATUSES",
    "Check",
    "CommandResult",
    "Measure",
    "Outcome",
    "Status",
    "bounded",
    "call_with_deadline",
    "one_line",
    "run_command",
    "version_tuple",
]
