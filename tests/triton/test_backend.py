"""The `triton` backend against a real tritonserver (python backend, ONNX Runtime inside):
the same numbers as `ort`, state carried per stream, bounded requests, one-line errors."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from avfuse.backends import create_backend
from avfuse.errors import ModelError, UsageError
from avfuse.manifest import load_manifest
from avfuse.tritonserver import free_port
from tests.fixtures.models import write_tiny_model
from tests.triton.kit import need_tritonclient, start_server

pytestmark = pytest.mark.timeout(240)


def feeds(batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "audio": rng.standard_normal((batch, 64, 97)).astype(np.float32),
        "image": rng.standard_normal((batch, 1, 48, 64)).astype(np.float32),
        "mask": np.ones((batch, 2), np.float32),
    }


@pytest.mark.parametrize("how", ["grpc", "http", "grpc-shm", "http-shm"])
def test_triton_gives_what_ort_gives_on_the_same_batches(server, repo: Path, how: str) -> None:  # noqa: ANN001
    """Batch 11 > max_batch_size 8: the backend splits it; outputs equal ONNX Runtime's."""
    proto, _, shm = how.partition("-")
    url = (server.grpc_url if proto == "grpc" else server.http_url) + ("?shm=system" if shm else "")
    x = feeds(11)
    m = load_manifest(repo / "avfuse-late_python")
    with create_backend("ort").load(m) as be:
        want = be.infer(x)["logits"]
    with create_backend(f"triton:{url}").load(m) as be:
        got = be.infer(x)["logits"]
        assert be.model_name == "avfuse-late_python"
        assert len(be.request_ms) == 2 and be.last_request_ms > 0  # 8 rows, then 3
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_state_is_carried_by_the_client_per_stream(server, repo: Path) -> None:  # noqa: ANN001
    m = load_manifest(repo / "tiny-stateful_python")
    x = feeds(2)
    x["mask"][:, 1] = 0.0
    runs = {}
    for name in ("ort", f"triton:{server.grpc_url}"):
        with create_backend(name).load(m) as be:
            first = be.infer(x, streams=["a", "b"])["logits"]
            second = be.infer(x, streams=["a", "b"])["logits"]
            be.reset_state("a")
            third = be.infer(x, streams=["a", "b"])["logits"]
            runs[name] = (first, second, third)
    ort_run, triton_run = runs.values()
    for a, b in zip(ort_run, triton_run, strict=True):
        np.testing.assert_allclose(b, a, atol=1e-5)
    first, second, third = triton_run
    np.testing.assert_allclose(second, 2 * first, rtol=1e-5)
    np.testing.assert_allclose(third[0], first[0], rtol=1e-5)  # "a" started again
    np.testing.assert_allclose(third[1], 3 * first[1], rtol=1e-5)


def test_requests_in_flight_are_bounded(server, repo: Path) -> None:  # noqa: ANN001
    """8 threads share one backend with in_flight=2: never more than 2 at the server."""
    m = load_manifest(repo / "avfuse-late_python")
    be = create_backend(f"triton:{server.grpc_url}?in_flight=2").load(m)
    real = be.transport.infer
    lock, now, most = threading.Lock(), [0], [0]

    def counted(*a, **kw):  # noqa: ANN002, ANN003, ANN202
        with lock:
            now[0] += 1
            most[0] = max(most[0], now[0])
        try:
            time.sleep(0.05)  # hold the slot long enough for the others to pile up
            return real(*a, **kw)
        finally:
            with lock:
                now[0] -= 1

    be.transport.infer = counted
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(3):
                be.infer(feeds(1))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(8)]
    with be:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert errors == []
    assert most[0] == 2
    assert len(be.request_ms) == 24


def test_server_statistics_count_what_was_sent(server, repo: Path) -> None:  # noqa: ANN001
    m = load_manifest(repo / "avfuse-late_python")
    with create_backend(f"triton:{server.grpc_url}").load(m) as be:
        before = int(be.server_statistics()["model_stats"][0].get("inference_count", 0))
        be.infer(feeds(3))
        deadline = time.monotonic() + 10  # the server counts just after it answers
        while True:
            after = int(be.server_statistics()["model_stats"][0]["inference_count"])
            if after - before >= 3 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert after - before == 3


def test_an_unreachable_server_at_load_is_a_one_line_usage_error(repo: Path) -> None:
    need_tritonclient()
    m = load_manifest(repo / "avfuse-late_python")
    url = f"grpc://127.0.0.1:{free_port()}?retries=1&backoff_ms=10"
    with pytest.raises(UsageError, match="cannot reach the Triton server") as e:
        create_backend(f"triton:{url}").load(m)
    assert "\n" not in str(e.value) and "avfuse serve" in str(e.value)


def test_a_model_the_server_lacks_is_a_model_error(server, repo: Path) -> None:  # noqa: ANN001
    m = load_manifest(repo / "avfuse-late_python")
    with pytest.raises(ModelError, match="'nope' not in its repository"):
        create_backend(f"triton:{server.grpc_url}?model=nope").load(m)


def test_a_served_model_of_another_onnx_file_is_refused(
    server,  # noqa: ANN001
    repo: Path,
    tmp_path: Path,
) -> None:
    """The tiny model has the bundled model's tensors but not its weights."""
    m = load_manifest(write_tiny_model(tmp_path / "tiny"))
    with pytest.raises(ModelError, match="different ONNX file"):
        create_backend(f"triton:{server.grpc_url}?model=avfuse-late_python").load(m)


def test_a_config_contradicting_the_manifest_is_refused(
    repo: Path,
    stub_env: Path,
    install,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    """A config edited by hand (mask dims 3, no hash to compare) is caught by its tensors."""
    bad = tmp_path / "repo"
    shutil.copytree(repo / "avfuse-late_python", bad / "avfuse-late_python")
    cfg = bad / "avfuse-late_python" / "config.pbtxt"
    text = cfg.read_text()
    text = text.replace('name: "mask"\n    data_type: TYPE_FP32\n    dims: [ 2 ]',
                        'name: "mask"\n    data_type: TYPE_FP32\n    dims: [ 3 ]')  # fmt: skip
    text = text.split("parameters [")[0]
    assert "dims: [ 3 ]" in text
    cfg.write_text(text)
    s = start_server(bad, ("avfuse-late_python",), stub_env, install)
    try:
        m = load_manifest(repo / "avfuse-late_python")
        with pytest.raises(ModelError, match="contradicts the manifest.*inputs\\[2\\]"):
            create_backend(f"triton:{s.grpc_url}").load(m)
    finally:
        s.stop()


def test_bad_url_options_are_usage_errors(repo: Path) -> None:
    m = load_manifest(repo / "avfuse-late_python")
    for url, why in (
        ("ftp://127.0.0.1:1", "grpc:// or http://"),
        ("grpc://127.0.0.1", "needs a host and a port"),
        ("grpc://127.0.0.1:1?speed=9", "'speed' is unknown"),
        ("grpc://127.0.0.1:1?in_flight=0", "in_flight must be in 1..256"),
        ("grpc://10.1.2.3:1?shm=system", "needs the server on this host"),
    ):
        with pytest.raises(UsageError, match=why):
            create_backend(f"triton:{url}").load(m)
    with pytest.raises(UsageError, match="takes no server URL"):
        create_backend("ort:grpc://127.0.0.1:1")


def test_devices_and_threads_are_the_servers_to_choose(repo: Path) -> None:
    m = load_manifest(repo / "avfuse-late_python")
    for kw in ({"device": "cuda"}, {"threads": 2}):
        with pytest.raises(UsageError, match="drop --device and --threads"):
            create_backend("triton:grpc://127.0.0.1:1", **kw).load(m)


def test_the_bundled_manifest_finds_its_python_variant_by_name(server) -> None:  # noqa: ANN001
    """No model= given: the manifest's name, else NAME_python, else NAME_plan, if READY."""
    from avfuse.assets import default_model_path

    with create_backend(f"triton:{server.grpc_url}").load(
        load_manifest(default_model_path())
    ) as be:
        assert be.model_name == "avfuse-late_python"
        assert be.infer(feeds(2))["logits"].shape == (2, 11)
