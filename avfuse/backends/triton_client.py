"""The `triton` backend's settings and its two transports (gRPC, HTTP) over tritonclient.

Settings come from one URL, DSN-style, so a command line needs one flag:

    grpc://127.0.0.1:8001?timeout_s=5&retries=3&in_flight=4&shm=system&model=NAME

(``http://HOST:PORT`` for HTTP; a bare ``HOST:PORT`` is gRPC). The same keys may be given
in ``BackendOptions.extra`` instead (``url`` for the address); a key given both ways is
refused. `Transport` hides which protocol is used: the backend calls `infer` with
prepared inputs and gets numpy outputs back, and `is_transient` says which failures a
retry may cure (the server unreachable or restarting, a deadline missed, shared memory
the server forgot when it restarted).
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from avfuse.errors import BackendUnavailable, UsageError

DEFAULT_URL = "grpc://127.0.0.1:8001"
INSTALL_HINT = "pip install 'avfuse[triton]' (tritonclient[grpc,http])"
#: gRPC statuses a retry may cure
_TRANSIENT = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "CANCELLED", "ABORTED")
_SHM_LOST = "shared memory region"


@dataclass(frozen=True, kw_only=True)
class TritonSettings:
    """How the backend reaches its server.

    Attributes:
        url: as given (for messages).
        protocol: "grpc" or "http".
        address: "host:port".
        model: the server's model name (default: the manifest's name or a variant of it).
        version: the model version ("" for the server's latest).
        timeout_s: limit of one request, and of the wait for a free in-flight slot.
        retries: further tries of a request that failed transiently.
        backoff_ms: pause before the first retry; doubles each time, at most 1 s.
        in_flight: requests this backend has at the server at once, across threads.
        shm: "none", or "system" (POSIX shared memory; client and server on one host).
    """

    url: str = DEFAULT_URL
    protocol: str = "grpc"
    address: str = "127.0.0.1:8001"
    model: str | None = None
    version: str = ""
    timeout_s: float = 5.0
    retries: int = 3
    backoff_ms: float = 50.0
    in_flight: int = 4
    shm: str = "none"

    @classmethod
    def from_options(cls, extra: Mapping[str, Any]) -> TritonSettings:
        """Parse ``extra`` (with its ``url``); UsageError naming a bad or doubled key."""
        raw = str(extra.get("url") or DEFAULT_URL)
        text = raw if "://" in raw else f"grpc://{raw}"
        parts = urlsplit(text)
        if parts.scheme not in ("grpc", "http"):
            raise UsageError(f"triton URL {raw!r}: the scheme must be grpc:// or http://")
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or port is None:
            raise UsageError(f"triton URL {raw!r} needs a host and a port, e.g. {DEFAULT_URL}")
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        keys = {f.name for f in fields(cls)} - {"url", "protocol", "address"}
        given: dict[str, Any] = {}
        for k, v in parse_qsl(parts.query, keep_blank_values=True):
            if k not in keys:
                raise UsageError(f"triton URL option {k!r} is unknown; use {sorted(keys)}")
            given[k] = v
        for k, v in extra.items():
            if k == "url":
                continue
            if k not in keys:
                raise UsageError(f"triton backend option {k!r} is unknown; use {sorted(keys)}")
            if k in given:
                raise UsageError(f"triton option {k!r} is given in the URL and as an option")
            given[k] = v
        s = cls(url=raw, protocol=parts.scheme, address=f"{host}:{port}", **_typed(given))
        s.check()
        return s

    def check(self) -> None:
        """Refuse out-of-range values (one line naming the key)."""
        rules = (
            (self.timeout_s > 0, "timeout_s must be > 0"),
            (0 <= self.retries <= 20, "retries must be in 0..20"),
            (self.backoff_ms >= 0, "backoff_ms must be >= 0"),
            (1 <= self.in_flight <= 256, "in_flight must be in 1..256"),
            (self.shm in ("none", "system"), "shm must be none or system"),
        )
        for ok, why in rules:
            if not ok:
                raise UsageError(f"triton URL {self.url!r}: {why}")
        if self.shm == "system" and not is_local(self.address.rpartition(":")[0]):
            raise UsageError(
                f"triton shm=system needs the server on this host; {self.address} is not "
                "a loopback address: drop shm or run the client beside the server"
            )


def _typed(given: Mapping[str, Any]) -> dict[str, Any]:
    conv = {"timeout_s": float, "backoff_ms": float, "retries": int, "in_flight": int}
    out = {}
    for k, v in given.items():
        try:
            out[k] = conv[k](v) if k in conv else (None if v in ("", None) else str(v))
        except (TypeError, ValueError):
            raise UsageError(f"triton option {k}={v!r} is not a number") from None
    if out.get("shm") is None:
        out.pop("shm", None)
    return out


def is_local(host: str) -> bool:
    """Whether `host` names this machine's loopback interface."""
    h = host.strip("[]")
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        try:
            return ipaddress.ip_address(socket.gethostbyname(h)).is_loopback
        except OSError:
            return False


def is_transient(error: BaseException) -> bool:
    """A failure a retry may cure: unreachable, restarting, overloaded, too slow."""
    status = str(getattr(error, "status", lambda: None)() or "")
    if any(s in status for s in _TRANSIENT):
        return True
    text = str(error)
    if _SHM_LOST in text:
        return True
    if isinstance(error, (ConnectionError, TimeoutError, OSError)):
        return True
    return type(error).__name__ in ("Timeout", "ConnectionTimeout", "NetworkTimeout")


def shm_lost(error: BaseException) -> bool:
    """The server does not know a shared-memory region (it restarted)."""
    return _SHM_LOST in str(error) and "unable to find" in str(error).lower()


def one_line(error: BaseException) -> str:
    """The first line of an error, without tritonclient's prefixes."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text.removeprefix("[StatusCode.").replace("] ", ": ", 1)


class Transport:
    """One tritonclient client (gRPC or HTTP) with the calls the backend makes."""

    def __init__(self, settings: TritonSettings) -> None:
        self.settings = settings
        try:
            if settings.protocol == "grpc":
                import tritonclient.grpc as mod
            else:
                import tritonclient.http as mod
        except (ImportError, RuntimeError) as e:  # tritonclient raises RuntimeError too
            raise BackendUnavailable(f"tritonclient is not installed: {INSTALL_HINT}") from e
        self.mod = mod
        t = settings.timeout_s
        if settings.protocol == "grpc":
            self.client = mod.InferenceServerClient(
                settings.address,
                channel_args=[
                    ("grpc.max_send_message_length", 2**31 - 1),
                    ("grpc.max_receive_message_length", 2**31 - 1),
                    # reconnect within a second of a restarted server, not after gRPC's
                    # default back-off (up to two minutes)
                    ("grpc.initial_reconnect_backoff_ms", 100),
                    ("grpc.min_reconnect_backoff_ms", 100),
                    ("grpc.max_reconnect_backoff_ms", 1000),
                ],
            )
        else:
            self.client = mod.InferenceServerClient(
                settings.address,
                concurrency=settings.in_flight,
                connection_timeout=t,
                network_timeout=t,
            )

    def _kw(self) -> dict[str, Any]:
        return (
            {"client_timeout": self.settings.timeout_s} if self.settings.protocol == "grpc" else {}
        )

    def live(self) -> bool:
        """Whether the server answers its liveness probe."""
        return bool(self.client.is_server_live(**self._kw()))

    def index(self) -> list[dict[str, Any]]:
        """The repository index: [{name, version, state}]."""
        if self.settings.protocol == "grpc":
            got = self.client.get_model_repository_index(as_json=True, **self._kw())
            return list(got.get("models", []))
        return list(self.client.get_model_repository_index())

    def config(self, model: str) -> dict[str, Any]:
        """The model's config as JSON (dims as ints)."""
        if self.settings.protocol == "grpc":
            got = self.client.get_model_config(
                model, self.settings.version, as_json=True, **self._kw()
            )
            return dict(got["config"])
        return dict(self.client.get_model_config(model, self.settings.version))

    def statistics(self, model: str) -> dict[str, Any]:
        """The server's inference statistics of the model."""
        if self.settings.protocol == "grpc":
            return dict(
                self.client.get_inference_statistics(
                    model, self.settings.version, as_json=True, **self._kw()
                )
            )
        return dict(self.client.get_inference_statistics(model, self.settings.version))

    def make_input(self, name: str, shape: list[int], datatype: str) -> Any:
        """An InferInput of this protocol."""
        return self.mod.InferInput(name, shape, datatype)

    def make_output(self, name: str) -> Any:
        """An InferRequestedOutput of this protocol (binary data over HTTP)."""
        if self.settings.protocol == "http":
            return self.mod.InferRequestedOutput(name, binary_data=True)
        return self.mod.InferRequestedOutput(name)

    def infer(self, model: str, inputs: list[Any], outputs: list[Any]) -> Any:
        """One inference request; the result object of tritonclient."""
        return self.client.infer(
            model, inputs, model_version=self.settings.version, outputs=outputs, **self._kw()
        )

    def register_shm(self, name: str, key: str, size: int) -> None:
        """Tell the server about a system shared-memory region."""
        self.client.register_system_shared_memory(name, key, size)

    def unregister_shm(self, name: str) -> None:
        """Make the server forget a region (ignored when it is gone already)."""
        # the server may be down; the region is destroyed anyway
        with contextlib.suppress(Exception):
            self.client.unregister_system_shared_memory(name)

    def close(self) -> None:
        """Close the connection."""
        # closing a client whose server died must not fail close()
        with contextlib.suppress(Exception):
            self.client.close()


__all__ = [
    "DEFAULT_URL",
    "TritonSettings",
    "Transport",
    "is_local",
    "is_transient",
    "one_line",
    "shm_lost",
]
