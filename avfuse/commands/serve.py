"""`avfuse serve REPO`: run a local Triton Inference Server on an exported repository.

Starts the `tritonserver` found on PATH or shipped by nvidia-pytriton on 127.0.0.1,
loads the repository's models that this server has a backend for (pytriton's has only
`python`: the `_python` variants), waits until they are ready, prints the `avfuse run`
command that uses them and serves until SIGINT/SIGTERM (then stops the server). The
logic is `avfuse.tritonserver.TritonServer`.
"""

from __future__ import annotations

import argparse
import re
import sys
import threading
from pathlib import Path

from avfuse.commands import _args
from avfuse.errors import BackendError, UsageError

#: config platform -> the backend that runs it
_PLATFORMS = {
    "onnxruntime_onnx": "onnxruntime",
    "tensorrt_plan": "tensorrt",
    "pytorch_libtorch": "pytorch",
    "tensorflow_savedmodel": "tensorflow",
}


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `serve` sub-command."""
    p = _args.add_command(
        sub,
        "serve",
        help="serve an exported Triton model repository with a local tritonserver",
        description="Start tritonserver (on PATH, or the one nvidia-pytriton ships) on "
        "127.0.0.1 on a repository written by `avfuse export --triton`, load the models it "
        "has a backend for, wait until they are ready, print the `avfuse run --backend "
        "triton` command, and serve until stopped (SIGINT/SIGTERM stop the server too).",
        epilog="Example: avfuse export --triton repo avfuse/assets/model && avfuse serve repo",
    )
    p.add_argument("repository", type=Path, help="the model repository")
    p.add_argument(
        "--model",
        action="append",
        default=None,
        metavar="NAME",
        help="a model to load (repeat; default: every one this server can run)",
    )
    p.add_argument("--grpc-port", type=_args.int_range(0, 65535), default=8001, metavar="PORT",
                   help="gRPC port (default 8001; 0: a free one)")  # fmt: skip
    p.add_argument("--http-port", type=_args.int_range(0, 65535), default=8000, metavar="PORT",
                   help="HTTP port (default 8000; 0: a free one)")  # fmt: skip
    p.add_argument("--metrics-port", type=_args.int_range(0, 65535), default=8002, metavar="PORT",
                   help="Prometheus metrics port (default 8002; 0: a free one)")  # fmt: skip
    p.add_argument(
        "--python-env",
        type=Path,
        default=None,
        metavar="DIR",
        help="Python environment of the python backend (numpy<2 and onnxruntime; default "
        "$AVFUSE_TRITON_PYTHON_ENV, else this interpreter's)",
    )
    p.add_argument(
        "--tritonserver",
        type=Path,
        default=None,
        metavar="PATH",
        help="the tritonserver binary (default: PATH, then nvidia-pytriton's)",
    )
    p.add_argument(
        "--ready-timeout",
        type=_args.finite_float(0.0, 3600.0, unit="s", lo_open=True),
        default=120.0,
        metavar="S",
        help="how long the models may take to be ready (default 120 s)",
    )
    p.set_defaults(func=run, drains=True)


def _backend_of(folder: Path) -> str:
    """The backend a model folder's config.pbtxt asks for ("?" when it names none)."""
    text = (folder / "config.pbtxt").read_text(encoding="utf-8", errors="replace")
    m = re.search(r'^\s*backend:\s*"([^"]+)"', text, re.M)
    if m:
        return m.group(1)
    m = re.search(r'^\s*platform:\s*"([^"]+)"', text, re.M)
    return _PLATFORMS.get(m.group(1), m.group(1)) if m else "?"


def servable(repository: Path, available: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(models this server can run, notes on the ones it cannot) in a repository."""
    ok, notes = [], []
    for cfg in sorted(repository.glob("*/config.pbtxt")):
        backend = _backend_of(cfg.parent)
        name = cfg.parent.name
        if backend in available:
            ok.append(name)
        else:
            notes.append(f"{name} not loaded: this server has no {backend} backend")
    return ok, notes


def run(args: argparse.Namespace) -> int:
    """Start the server, print how to use it, serve until stopped."""
    from avfuse.engine.control import Doorbell
    from avfuse.tritonserver import TritonServer, check_python_env, find_tritonserver

    repo: Path = args.repository
    if not repo.is_dir():
        raise UsageError(
            f"repository {repo} is not a folder: write one with avfuse export --triton"
        )
    install = find_tritonserver(args.tritonserver)
    models, notes = servable(repo, install.available)
    if args.model:
        missing = [m for m in args.model if m not in models]
        if missing:
            raise UsageError(f"cannot serve {missing} from {repo} (servable here: {models})")
        models = list(args.model)
    if not models:
        raise UsageError(f"{repo} has no model this server can run ({'; '.join(notes) or 'empty'})")
    if install.stubs is not None and any(_backend_of(repo / m) == "python" for m in models):
        check_python_env(install, args.python_env)  # before anything is printed or started
    server = TritonServer(
        repository=repo,
        models=tuple(models),
        install=install,
        python_env=args.python_env,
        grpc_port=args.grpc_port,
        http_port=args.http_port,
        metrics_port=args.metrics_port,
    )
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    server.start(ready_timeout_s=args.ready_timeout)
    bell = Doorbell()
    token = getattr(args, "stop_token", None)
    if token is not None:
        token.attach(bell)

    def watch() -> None:
        assert server.proc is not None
        server.proc.wait()
        bell.ring()

    threading.Thread(target=watch, daemon=True).start()
    print(f"serving {', '.join(models)} on {server.grpc_url} (HTTP {server.http_url})")
    for name in models:
        print(
            f"  avfuse run --backend triton --triton-url {server.grpc_url} "
            f"--model {repo / name} --source FILE",
            flush=True,
        )
    try:
        bell.wait(None)
    finally:
        died = server.proc is not None and server.proc.poll() is not None
        code = server.stop()
    if died and not (token is not None and token.requested):
        raise BackendError(f"tritonserver exited with status {code}: {server.log_tail()}")
    return 0
