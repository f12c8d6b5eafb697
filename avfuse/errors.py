"""One error tree for avfuse.

Every error a user can cause or meet derives from `AvfuseError` and also from the
builtin exception it means, so callers can catch either. Messages name the
problem and the fix in one line; the CLI prints them as they are and exits 2
(bad input or usage) or 1 (failure at run time), see `exit_code_for`.
"""

from __future__ import annotations


class AvfuseError(Exception):
    """Base of every avfuse error."""

    #: CLI exit status for this kind of error (2: bad input/usage, 1: run-time failure).
    exit_code: int = 1


class UsageError(AvfuseError, ValueError):
    """Contradictory or malformed options given by the user."""

    exit_code = 2


class ManifestError(AvfuseError, ValueError):
    """A model manifest is missing, malformed or contradicts its ONNX graph.

    Attributes:
        field: dotted path of the offending manifest field (e.g. ``inputs[1].shape``).
    """

    exit_code = 2

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(f"manifest field '{field}': {message}" if field else message)


class ModelError(AvfuseError, ValueError):
    """A model file cannot be read or run (corrupt, wrong inputs)."""

    exit_code = 2


class BackendUnavailable(AvfuseError, ImportError):
    """An optional backend or package is not installed; the message has the install command."""

    exit_code = 2


class BackendError(AvfuseError, RuntimeError):
    """A backend failed while running inference."""


class SourceError(AvfuseError, OSError):
    """A source (file, URL, camera, microphone) cannot be opened or read."""

    exit_code = 2


class DeviceNotFound(SourceError, LookupError):
    """A named camera or microphone does not exist; the message lists the ones that do."""


class StreamFormatError(SourceError, ValueError):
    """A stream's format does not fit what the model needs (rate, channels, pixel format)."""


class SinkError(AvfuseError, OSError):
    """A sink could not write (disk full, folder gone, reader gone): its records were lost.

    Raised after the run has drained, so the other sinks hold everything, including a
    fault record naming this sink and the summary.
    """

    exit_code = 1


class StdoutClosed(SinkError):
    """The reader of stdout went away (``avfuse run --sink jsonl:- | head -1``).

    The run ends promptly and quietly with 141 (128 + SIGPIPE), as Unix tools do.
    """

    exit_code = 141


class Interrupted(AvfuseError, RuntimeError):
    """The run was ended by a signal after draining; the exit status is 128 + the signal.

    Attributes:
        signal_name: "SIGINT", "SIGTERM" or "SIGHUP".
    """

    def __init__(self, signal_name: str, signum: int) -> None:
        self.signal_name = signal_name
        self.exit_code = 128 + signum
        super().__init__(f"stopped by {signal_name}")


class ClockNotReady(AvfuseError, RuntimeError):
    """A clock model was asked to map a time before it had any observation."""


class DataError(AvfuseError, RuntimeError):
    """The data set cannot be generated or loaded (e.g. espeak-ng missing)."""

    exit_code = 2


class ExportError(AvfuseError, RuntimeError):
    """Exporting a model failed."""


class ParityError(ExportError):
    """ONNX Runtime and torch disagree past tolerance; carries the measured numbers.

    Attributes:
        max_abs_error: largest absolute logit difference seen.
        top1_agreement: fraction of samples whose top-1 label agrees.
    """

    def __init__(self, message: str, *, max_abs_error: float, top1_agreement: float) -> None:
        self.max_abs_error = max_abs_error
        self.top1_agreement = top1_agreement
        super().__init__(message)


class AccuracyGateError(ExportError):
    """A quantised model lost more accuracy than allowed; carries the measured numbers.

    Attributes:
        fp32_accuracy / int8_accuracy: top-1 accuracy of each model on the same samples.
        loss_points: fp32 - int8, in percentage points.
    """

    def __init__(
        self, message: str, *, fp32_accuracy: float, int8_accuracy: float, loss_points: float
    ) -> None:
        self.fp32_accuracy = fp32_accuracy
        self.int8_accuracy = int8_accuracy
        self.loss_points = loss_points
        super().__init__(message)


def exit_code_for(error: BaseException) -> int:
    """Return the CLI exit status for an exception (see DESIGN: 0, 1, 2, 129, 130, 141, 143)."""
    if isinstance(error, KeyboardInterrupt):
        return 130
    if isinstance(error, AvfuseError):
        return error.exit_code
    return 1
