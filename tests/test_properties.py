"""Property-based tests: random input meets only the documented errors and exit codes.

Random bytes as a manifest or a model, random mutations of a valid manifest, random
option values and random command lines for `run` and `demo`, and truncated media
files each get a result or the error class (and exit status 2, one line) the
contract names; never another exception, a traceback or a hang.

Every test runs under one derandomised hypothesis profile (same examples on every
run, no example database, no deadline: CI is repeatable and load does not matter).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from avfuse.cli import build_parser, main
from avfuse.commands import demo as demo_command
from avfuse.commands import run as run_command
from avfuse.errors import ManifestError, ModelError, SourceError, UsageError
from avfuse.manifest import Manifest, load_manifest
from tests.fixtures.models import tiny_manifest_dict, write_tiny_model

settings.register_profile(
    "avfuse-properties",
    derandomize=True,
    deadline=None,
    database=None,
    max_examples=200,
    print_blob=False,
    # the examples share module-scoped files that each example rewrites first
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
PROFILE = settings.get_profile("avfuse-properties")

#: one parser for every example (argparse parsers keep no state between parses)
PARSER = build_parser()


def _cli(argv: list[str]) -> tuple[int, str]:
    """Run `avfuse.cli.main(argv)` in-process: (exit status, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as e:  # argparse's own exit
            code = e.code if isinstance(e.code, int) else 2
    return code, err.getvalue()


def _one_line(stderr: str) -> str:
    lines = stderr.strip("\n").splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{stderr}"
    return lines[0]


# ---------------------------------------------------------------------- manifests and models


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("model")
    write_tiny_model(d)
    return d


@pytest.mark.timeout(240)
@PROFILE
@given(data=st.binary(max_size=4096))
def test_random_bytes_as_manifest_json_are_a_manifest_error(model_dir: Path, data: bytes) -> None:
    (model_dir / "manifest.json").write_bytes(data)
    with contextlib.suppress(ManifestError):
        load_manifest(model_dir)
    code, err = _cli(["info", str(model_dir)])
    assert code == 2
    _one_line(err)


_GOOD_ONNX: dict[str, bytes] = {}


def _good_onnx() -> bytes:
    if not _GOOD_ONNX:
        import tempfile

        with tempfile.TemporaryDirectory() as t:
            write_tiny_model(t)
            _GOOD_ONNX["b"] = (Path(t) / "model.onnx").read_bytes()
    return _GOOD_ONNX["b"]


def _onnx_bytes() -> st.SearchStrategy[bytes]:
    good = _good_onnx()
    cut = st.integers(0, len(good) - 1).map(lambda n: good[:n])
    flip = st.tuples(st.integers(0, len(good) - 1), st.integers(0, 255)).map(
        lambda t: good[: t[0]] + bytes([t[1]]) + good[t[0] + 1 :]
    )
    return st.one_of(st.binary(max_size=2048), cut, flip)


@pytest.mark.timeout(240)
@settings(PROFILE, max_examples=150)
@given(data=_onnx_bytes())
def test_random_bytes_as_model_onnx_are_a_model_error(model_dir: Path, data: bytes) -> None:
    from avfuse.backends import create_backend

    manifest = tiny_manifest_dict()  # no sha256: the bytes reach ONNX Runtime
    (model_dir / "manifest.json").write_text(json.dumps(manifest))
    (model_dir / "model.onnx").write_bytes(data)
    m = load_manifest(model_dir)
    try:
        with create_backend("ort", threads=1) as be:
            be.load(m)
    except (ModelError, ManifestError) as e:
        assert e.exit_code == 2
        code, err = _cli(["info", str(model_dir)])
        assert code == 2
        _one_line(err)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key/index path inside a JSON document."""
    out: list[tuple] = []
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for k, v in items:
        out.append((*prefix, k))
        out += _paths(v, (*prefix, k))
    return out


_BASE = tiny_manifest_dict()
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(["batch", "audio", "video", "mask", "float32", "late", "model.onnx"]),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=8,
)
#: a mutation hits a top-level field half of the time, any field the other half
_PATH = st.sampled_from([(k,) for k in _BASE]) | st.sampled_from(_paths(_BASE))
_MUTATION = st.tuples(_PATH, st.sampled_from(["delete", "replace"]), _JSON)


def _mutated(mutations: list[tuple[tuple, str, Any]]) -> Any:
    d = copy.deepcopy(_BASE)
    for path, op, value in mutations:
        node = d
        try:
            for k in path[:-1]:
                node = node[k]
            if op == "delete":
                del node[path[-1]]
            else:
                node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed the path
    return json.loads(json.dumps(d))  # what a file on disk would hold


@pytest.mark.timeout(240)
@settings(PROFILE, max_examples=600)
@given(mutations=st.lists(_MUTATION, min_size=1, max_size=3))
def test_mutated_manifest_is_valid_or_a_manifest_error_naming_a_field(
    mutations: list[tuple[tuple, str, Any]],
) -> None:
    data = _mutated(mutations)
    try:
        Manifest.from_dict(data)
    except ManifestError as e:
        assert e.field, f"ManifestError without a field: {e}"


# ---------------------------------------------------------------------- option values


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _finite_in(lo: float, hi: float, *, lo_open: bool = False) -> Callable[[str], bool]:
    def ok(text: str) -> bool:
        try:
            v = float(text)
        except ValueError:
            return False
        return math.isfinite(v) and (lo < v if lo_open else lo <= v) and v <= hi

    return ok


def _int_in(lo: int, hi: int) -> Callable[[str], bool]:
    def ok(text: str) -> bool:
        t = text.strip()
        return re.fullmatch(r"[+-]?[0-9]+", t) is not None and lo <= int(t) <= hi

    return ok


#: the documented range of every numeric option of run and demo: (oracle, range text, kind)
RUN_FLAGS: dict[str, tuple[Callable[[str], bool], str, type]] = {
    "--av-offset-ms": (_finite_in(-10000, 10000), "[-10000, 10000]", float),
    "--audio-deadline-ms": (_finite_in(0, 10000), "[0, 10000]", float),
    "--duration": (_finite_in(0, 604800, lo_open=True), "(0, 604800]", float),
    "--max-batch": (_int_in(1, 1024), "[1, 1024]", int),
    "--threads": (_int_in(0, 4 * _cores()), f"[0, {4 * _cores()}]", int),
}
DEMO_FLAGS: dict[str, tuple[Callable[[str], bool], str, type]] = {
    "--av-offset-ms": (_finite_in(-10000, 10000), "[-10000, 10000]", float),
    "--drift-ppm": (_finite_in(-10000, 10000), "[-10000, 10000]", float),
    "--jitter-ms": (_finite_in(0, 1000), "[0, 1000]", float),
    "--seed": (_int_in(0, 2**32 - 1), "[0, 4294967295]", int),
    "--threads": (_int_in(0, 4 * _cores()), f"[0, {4 * _cores()}]", int),
}

_VALUES = st.one_of(
    st.floats().map(repr),
    st.floats().map(lambda x: f"{x:g}"),
    st.floats(-2e4, 2e4).map(lambda x: f"{x:.3f}"),
    st.integers(-(10**12), 10**12).map(str),
    st.integers(-10, 2000).map(str),
    st.sampled_from(
        ["nan", "inf", "-inf", "1e12", "-1e12", "", " ", "0", "-0", "+5", "5.0", " 7 ", "0x10"]
        + ["1_000", "1e3", "4294967296", "4294967295", "-1", "١٢", "abc", "--", "-", "1,2"]
    ),
    st.text(max_size=12),
)


def _check_flag(command: str, flags: dict, preflight: Callable, flag: str, value: str) -> None:
    accepted_by_oracle, range_text, kind = flags[flag]
    argv = [command, f"{flag}={value}"]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            args = PARSER.parse_args(argv)
        except SystemExit as e:
            args, code = None, e.code
    if args is not None:
        assert accepted_by_oracle(value), f"{flag}={value!r} was accepted, out of {range_text}"
        parsed = getattr(args, flag.lstrip("-").replace("-", "_"))
        assert parsed == kind(value.strip() if kind is int else value)
        preflight(args)  # no file options given: nothing to refuse
        return
    assert code == 2
    assert not accepted_by_oracle(value), f"{flag}={value!r} was refused, in {range_text}"
    # the whole CLI (in-process) answers the same: exit 2, one line naming flag, value, range
    code, stderr = _cli(argv)
    assert code == 2
    line = _one_line(stderr)
    assert flag in line and repr(value) in line and range_text in line, line


@pytest.mark.timeout(240)
@settings(PROFILE, max_examples=500)
@given(flag=st.sampled_from(sorted(RUN_FLAGS)), value=_VALUES)
def test_run_option_values_parse_in_range_or_exit_2_in_one_line(flag: str, value: str) -> None:
    _check_flag("run", RUN_FLAGS, run_command.preflight, flag, value)


@pytest.mark.timeout(240)
@settings(PROFILE, max_examples=500)
@given(flag=st.sampled_from(sorted(DEMO_FLAGS)), value=_VALUES)
def test_demo_option_values_parse_in_range_or_exit_2_in_one_line(flag: str, value: str) -> None:
    _check_flag("demo", DEMO_FLAGS, demo_command.preflight, flag, value)


_TOKENS = st.one_of(
    st.sampled_from(sorted({*RUN_FLAGS, *DEMO_FLAGS, "--source", "--truth", "--metrics"})),
    st.sampled_from(["--realtime", "--quiet", "--show", "--fast", "--sink", "--kernels"]),
    st.sampled_from(["--backend", "--device", "--model", "--digits", "--bogus", "-x", "--"]),
    _VALUES,
)


@pytest.mark.timeout(240)
@settings(PROFILE, max_examples=500)
@given(command=st.sampled_from(["run", "demo"]), tokens=st.lists(_TOKENS, max_size=6))
def test_random_command_lines_parse_or_exit_2_in_one_line(
    command: str, tokens: list[str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    cwd = os.getcwd()
    os.chdir(tmp_path_factory.getbasetemp())  # relative --metrics paths land here
    try:
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                args = PARSER.parse_args([command, *tokens])
            except SystemExit as e:
                assert e.code == 2
                _one_line(err.getvalue())
                return
        module = run_command if command == "run" else demo_command
        try:
            module.preflight(args)
        except UsageError as e:
            assert "\n" not in str(e)
    finally:
        os.chdir(cwd)


# ---------------------------------------------------------------------- truncated media

FFMPEG = shutil.which("ffmpeg")


@pytest.fixture(scope="module")
def small_mp4s(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two real 1 s H.264 + AAC mp4 files: index (moov) at the start and at the end."""
    if FFMPEG is None:
        pytest.skip("needs the ffmpeg command")
    d = tmp_path_factory.mktemp("media")
    out: dict[str, Path] = {}
    for name, flags in (("faststart", ["-movflags", "+faststart"]), ("plain", [])):
        path = d / f"{name}.mp4"
        subprocess.run(
            [FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
            + ["-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10"]
            + ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000", "-t", "1"]
            + ["-c:v", "libx264", "-preset", "ultrafast", "-g", "5", "-c:a", "aac", *flags]
            + [str(path)],
            check=True,
            timeout=60,
        )
        out[name] = path
    return out


#: container headers and codec setup sit in the first or (index last) the final few KiB
_EDGE = 4096


@pytest.mark.timeout(240)
@settings(PROFILE, max_examples=200)
@given(
    which=st.sampled_from(["faststart", "plain"]),
    where=st.sampled_from(["head", "tail", "anywhere"]),
    offset=st.integers(0, 1 << 20),
)
def test_truncated_media_is_a_source_error_or_reads_to_the_end(
    small_mp4s: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
    which: str,
    where: str,
    offset: int,
) -> None:
    from avfuse.engine.sources.media import MediaSource
    from tests.fixtures.sinks import RecordingFrameSink

    data = small_mp4s[which].read_bytes()
    n = len(data)
    cut = {
        "head": offset % (min(n, _EDGE) + 1),
        "tail": n - offset % (min(n, _EDGE) + 1),
        "anywhere": offset % (n + 1),
    }[where]
    path = tmp_path_factory.getbasetemp() / "cut.mp4"
    path.write_bytes(data[:cut])
    src = MediaSource(path)
    try:
        src.open()
    except SourceError:
        return  # StreamFormatError is a SourceError
    sink = RecordingFrameSink()
    src.start(sink)
    try:
        assert src.finished.wait(20), "reading a truncated file did not end within 20 s"
    finally:
        src.stop()
    for s in sink.statuses:
        if s.kind == "error":  # the source thread reports "TypeName: message"
            assert s.message.split(":")[0] in ("SourceError", "StreamFormatError"), s.message
