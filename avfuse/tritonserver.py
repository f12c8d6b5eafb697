"""Finding and running a local `tritonserver` on an exported model repository.

Two kinds of installation are recognised:

* a full Triton Inference Server: `tritonserver` on PATH (or given), its backends where
  it was built to look (``/opt/tritonserver/backends`` in NVIDIA's containers);
* the server the nvidia-pytriton wheel ships (``pytriton/tritonserver``), whose only
  backend is `python`. Its Python stub embeds the interpreter of a Python environment
  found through PATH, so the server is started with that environment's ``bin`` first,
  its ``libpython`` on LD_LIBRARY_PATH and the stub built for its Python version, in
  a private backend folder (the installed package is never written to).

The stub of pytriton 0.7 (Triton 2.51) reads and writes tensors through numpy's 1.x
structures: under numpy 2 every tensor arrives and leaves empty (measured here). The
stub's environment must therefore have numpy < 2 and onnxruntime; `python_env_problem`
says what is wrong with one, and `avfuse serve --python-env DIR` takes one.

The server listens on 127.0.0.1 only; `TritonServer` is a context manager that starts it,
waits (bounded) until the chosen models are ready and stops it (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from avfuse.errors import BackendError, BackendUnavailable, UsageError

INSTALL_HINT = "pip install 'avfuse[triton]' (nvidia-pytriton ships a tritonserver binary)"
STUB_ENV_FIX = (
    "python -m venv ENV && ENV/bin/pip install 'numpy<2' onnxruntime, then pass --python-env ENV"
)


@dataclass(frozen=True, kw_only=True)
class ServerInstall:
    """Where a tritonserver binary and its backends are.

    Attributes:
        binary: the tritonserver executable.
        backends: backend folder to pass (None: the binary's own default).
        libs: extra library folder the binary needs (pytriton's bundled libraries).
        stubs: pytriton's per-Python-version python stubs, or None.
        available: the backends this install has ("python", "onnxruntime", ...).
    """

    binary: Path
    backends: Path | None
    libs: Path | None
    stubs: Path | None
    available: tuple[str, ...]


def _pytriton_root() -> Path | None:
    spec = importlib.util.find_spec("pytriton")  # finds it without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def find_tritonserver(binary: str | Path | None = None) -> ServerInstall:
    """The tritonserver to run: `binary`, else one on PATH, else pytriton's.

    Raises:
        BackendUnavailable: none is installed (with the install command).
    """
    if binary is None:
        on_path = shutil.which("tritonserver")
        if on_path is not None:
            binary = on_path
    if binary is not None:
        b = Path(binary)
        if not (b.is_file() and os.access(b, os.X_OK)):
            raise UsageError(f"tritonserver {b} is not an executable file")
        backends = b.resolve().parent.parent / "backends"
        root = _pytriton_root()
        if root is not None and b.resolve() == (root / "tritonserver/bin/tritonserver").resolve():
            return _pytriton_install(root)
        have = tuple(sorted(p.name for p in backends.iterdir() if p.is_dir()))
        return ServerInstall(binary=b, backends=None, libs=None, stubs=None, available=have)
    root = _pytriton_root()
    if root is None or not (root / "tritonserver/bin/tritonserver").is_file():
        raise BackendUnavailable(f"no tritonserver is installed: {INSTALL_HINT}")
    return _pytriton_install(root)


def _pytriton_install(root: Path) -> ServerInstall:
    dist = root / "tritonserver"
    return ServerInstall(
        binary=dist / "bin/tritonserver",
        backends=dist / "backends",
        libs=root.parent / "nvidia_pytriton.libs",
        stubs=dist / "python_backend_stubs",
        available=("python",),
    )


@dataclass(frozen=True, kw_only=True)
class PythonEnv:
    """A Python environment for the python backend's stub (numpy < 2, onnxruntime)."""

    prefix: Path
    version: str
    libdir: Path
    numpy: str | None
    onnxruntime: str | None


def inspect_python_env(prefix: str | Path) -> PythonEnv:
    """Ask the environment's own interpreter what it has.

    Raises:
        UsageError: `prefix` has no working bin/python.
    """
    p = Path(prefix)
    py = p / "bin" / "python"
    code = (
        "import sys, sysconfig, importlib.metadata as md\n"
        "def v(n):\n"
        "    try: return md.version(n)\n"
        "    except md.PackageNotFoundError: return ''\n"
        "print(f'{sys.version_info[0]}.{sys.version_info[1]}')\n"
        "print(sysconfig.get_config_var('LIBDIR'))\n"
        "print(v('numpy')); print(v('onnxruntime'))\n"
    )
    try:
        out = subprocess.run(
            [str(py), "-c", code], capture_output=True, text=True, timeout=60, check=True
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError) as e:
        raise UsageError(f"--python-env {p}: {py} does not run ({e}): {STUB_ENV_FIX}") from None
    return PythonEnv(
        prefix=p,
        version=out[0],
        libdir=Path(out[1]),
        numpy=out[2] or None,
        onnxruntime=out[3] or None,
    )


def python_env_problem(env: PythonEnv, install: ServerInstall) -> str | None:
    """Why the stub cannot run models in `env`, or None when it can."""
    if install.stubs is not None and not (install.stubs / env.version).is_dir():
        have = sorted(p.name for p in install.stubs.iterdir())
        return f"the python stub exists for Python {have}, not {env.version}"
    if env.numpy is None:
        return "numpy is not installed there"
    if install.stubs is not None and int(env.numpy.split(".")[0]) >= 2:
        return (
            f"numpy {env.numpy} is there; pytriton's python stub passes empty tensors under numpy 2"
        )
    if env.onnxruntime is None:
        return "onnxruntime is not installed there"
    return None


def check_python_env(install: ServerInstall, prefix: str | Path | None) -> PythonEnv:
    """The stub's environment (default: `default_python_env`), checked.

    Raises:
        UsageError: it cannot run the python backend's models (the message says why and
            how to make one that can).
    """
    penv = inspect_python_env(prefix or default_python_env())
    problem = python_env_problem(penv, install)
    if problem is not None:
        raise UsageError(
            f"the python backend cannot run in {penv.prefix}: {problem}: {STUB_ENV_FIX}"
        )
    return penv


@dataclass
class TritonServer:
    """A tritonserver process on 127.0.0.1 serving `repository` (a context manager).

    Args:
        repository: the model repository (`avfuse export --triton`).
        models: the models to load (explicit model control).
        install: from `find_tritonserver` (default: found now).
        python_env: the stub's environment (pytriton installs; default: this one).
        grpc_port, http_port, metrics_port: 0 picks free ports.
        cpus: pin the server to these CPUs (``taskset -c CPUS``, e.g. "1"), or None.
    The server's last log lines are kept for error messages (`log_tail`).
    """

    repository: Path
    models: tuple[str, ...]
    install: ServerInstall | None = None
    python_env: Path | None = None
    grpc_port: int = 8001
    http_port: int = 8000
    metrics_port: int = 8002
    cpus: str | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _tail: deque[str] = field(default_factory=lambda: deque(maxlen=40), init=False)
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        for attr in ("grpc_port", "http_port", "metrics_port"):
            if getattr(self, attr) == 0:
                setattr(self, attr, free_port())

    @property
    def grpc_url(self) -> str:
        """The gRPC endpoint (the triton backend's default protocol)."""
        return f"grpc://127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        """The HTTP endpoint."""
        return f"http://127.0.0.1:{self.http_port}"

    def command(self) -> tuple[list[str], dict[str, str]]:
        """The command line and environment the server runs with."""
        inst = self.install or find_tritonserver()
        self.install = inst
        env = dict(os.environ)
        cmd = [
            str(inst.binary),
            f"--model-repository={Path(self.repository).resolve()}",
            "--model-control-mode=explicit",
            *[f"--load-model={m}" for m in self.models],
            "--http-address=127.0.0.1",
            "--grpc-address=127.0.0.1",
            "--metrics-address=127.0.0.1",
            f"--http-port={self.http_port}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-port={self.metrics_port}",
            "--exit-timeout-secs=5",
            "--log-info=false",
        ]
        libs = [str(inst.libs)] if inst.libs else []
        if inst.stubs is not None:
            penv = check_python_env(inst, self.python_env)
            cmd.append(f"--backend-directory={self._backend_dir(inst, penv)}")
            libs.append(str(penv.libdir))
            env["PATH"] = f"{penv.prefix / 'bin'}{os.pathsep}{env.get('PATH', '')}"
            env.pop("PYTHONHOME", None)
            env.pop("PYTHONPATH", None)  # the stub must see its environment, not ours
        if self.cpus is not None:
            taskset = shutil.which("taskset")
            if taskset is None:
                raise UsageError("pinning the server needs taskset (util-linux)")
            cmd = [taskset, "-c", self.cpus, *cmd]
        if libs:
            env["LD_LIBRARY_PATH"] = os.pathsep.join([*libs, env.get("LD_LIBRARY_PATH", "")])
        return cmd, env

    def _backend_dir(self, inst: ServerInstall, penv: PythonEnv) -> Path:
        """A private backends/python with the stub of `penv`'s Python version."""
        assert inst.backends is not None and inst.stubs is not None
        self._tmp = tempfile.TemporaryDirectory(prefix="avfuse-triton-")
        root = Path(self._tmp.name) / "backends"
        py = root / "python"
        py.mkdir(parents=True)
        for f in ("libtriton_python.so", "triton_python_backend_utils.py"):
            (py / f).symlink_to(inst.backends / "python" / f)
        shutil.copy2(inst.stubs / penv.version / "triton_python_backend_stub", py)
        return root

    def start(self, *, ready_timeout_s: float = 120.0) -> TritonServer:
        """Start the server and wait until every model is ready.

        Raises:
            BackendError: the server exited or the models were not ready in time (the
                server's last log lines are in the message).
        """
        cmd, env = self.command()
        self.proc = subprocess.Popen(
            cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C for the client is not one for the server
            preexec_fn=_die_with_parent,
        )
        threading.Thread(target=self._read_log, daemon=True).start()
        self.wait_ready(ready_timeout_s)
        return self

    def _read_log(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in self.proc.stdout:
            self._tail.append(raw.decode("utf-8", "replace").rstrip())

    def log_tail(self, lines: int = 8) -> str:
        """The server's last log lines, joined with ' | '."""
        return " | ".join(list(self._tail)[-lines:])

    def wait_ready(self, timeout_s: float) -> None:
        """Block until the models are ready, the server exits, or `timeout_s` passes."""
        import tritonclient.http as httpclient

        client = httpclient.InferenceServerClient(
            f"127.0.0.1:{self.http_port}", connection_timeout=1.0, network_timeout=2.0
        )
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                assert self.proc is not None
                try:
                    code = self.proc.wait(timeout=0.2)  # the wait between probes
                except subprocess.TimeoutExpired:
                    code = None
                if code is not None:
                    raise BackendError(
                        f"tritonserver exited with status {code} before its models were "
                        f"ready: {self.log_tail()}"
                    )
                try:
                    if all(client.is_model_ready(m) for m in self.models):
                        return
                except Exception:  # not listening yet
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise BackendError(
                        f"tritonserver's models {list(self.models)} were not ready after "
                        f"{timeout_s:g} s: {self.log_tail()}"
                    )
        finally:
            client.close()

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout_s`; returns the exit status."""
        code = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
            code = self.proc.returncode
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        return code

    def kill(self) -> None:
        """SIGKILL now (a crash, for fault tests)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def __enter__(self) -> TritonServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _die_with_parent() -> None:
    """In the child: SIGTERM it when the process that started it dies (even by SIGKILL).

    Linux's PR_SET_PDEATHSIG; elsewhere a killed parent leaves the server running.
    """
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the OS picks it)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def default_python_env() -> Path:
    """The stub's environment when none is given: AVFUSE_TRITON_PYTHON_ENV, else this one."""
    import sys

    return Path(os.environ.get("AVFUSE_TRITON_PYTHON_ENV") or sys.prefix)


__all__ = [
    "PythonEnv",
    "check_python_env",
    "ServerInstall",
    "TritonServer",
    "default_python_env",
    "find_tritonserver",
    "free_port",
    "inspect_python_env",
    "python_env_problem",
]
