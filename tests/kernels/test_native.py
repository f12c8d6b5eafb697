"""The CUDA kernels' header math built for the CPU (g++) against the reference; nvcc build.

The host library is built from CMakeLists.txt into a temporary directory; the same
configure step compiles the CUDA kernels where nvcc exists (one architecture, to keep it
quick; the slow test compiles every default target). Nothing here needs a GPU except
the `gpu` tests, which skip cleanly without one.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from avfuse.errors import BackendUnavailable
from avfuse.kernels import AudioParams, VideoParams, image_kernel, log_mel_kernel, native
from avfuse.kernels import reference as ref

from .conftest import chirp, frame_of, noise

ROOT = Path(__file__).resolve().parents[2]
NVCC = shutil.which("nvcc")
P = AudioParams()


def _cmake(build: Path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    cfg = subprocess.run(
        ["cmake", "-S", str(ROOT), "-B", str(build), *extra],
        capture_output=True,
        text=True,
        env=env,
    )
    assert cfg.returncode == 0, cfg.stdout + cfg.stderr
    res = subprocess.run(["cmake", "--build", str(build), "-j2"], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    return cfg


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    if shutil.which("cmake") is None or shutil.which("g++") is None:
        pytest.skip("cmake and g++ are needed to build the native kernels")
    build = tmp_path_factory.mktemp("native_build")
    cfg = _cmake(build, "-DCMAKE_CUDA_ARCHITECTURES=80")
    return build / "lib", cfg.stdout


@pytest.fixture(scope="module")
def host(build: tuple[Path, str]) -> ctypes.CDLL:
    return native.load_library("host", build[0] / "libavfuse_kernels_host.so")


def _host_log_mel(lib: ctypes.CDLL, audio: np.ndarray, params: AudioParams) -> np.ndarray:
    x = np.ascontiguousarray(np.atleast_2d(audio), np.float32)
    frames = ref.n_frames(x.shape[1], params.n_fft, params.hop_length)
    out = np.empty((x.shape[0], params.n_mels, frames), np.float32)
    s = native.audio_struct(params)
    assert lib.avf_host_log_mel(x.ctypes.data, x.shape[0], x.shape[1], ctypes.byref(s),
                                out.ctypes.data) == 0  # fmt: skip
    return out


def test_host_log_mel_matches_reference(host: ctypes.CDLL) -> None:
    x = np.stack([noise(P.window_samples), chirp(P.window_samples)])
    np.testing.assert_allclose(_host_log_mel(host, x, P), ref.log_mel(x, P), atol=1e-3)
    silent = _host_log_mel(host, np.zeros(P.window_samples, np.float32), P)
    assert np.all(silent == np.float32(10 * np.log10(P.log_floor)))
    other = AudioParams(n_fft=1024, win_length=800, hop_length=320, n_mels=40, mean=-30, std=15)
    np.testing.assert_allclose(
        _host_log_mel(host, chirp(20000), other)[0], ref.log_mel(chirp(20000), other), atol=1e-4
    )


def test_host_log_mel_rejects_bad_sizes(host: ctypes.CDLL) -> None:
    s = native.audio_struct(AudioParams(n_fft=400, win_length=400))
    x = np.zeros(1000, np.float32)
    out = np.empty(10000, np.float32)
    assert host.avf_host_log_mel(x.ctypes.data, 1, 1000, ctypes.byref(s), out.ctypes.data) == 1
    s = native.audio_struct(P)
    assert host.avf_host_log_mel(x.ctypes.data, 1, 100, ctypes.byref(s), out.ctypes.data) == 2


@pytest.mark.parametrize("fmt", ["bgr24", "rgb24", "gray", "nv12", "i420"])
@pytest.mark.parametrize("colour", ["gray", "rgb", "bgr"])
def test_host_image_matches_reference(host: ctypes.CDLL, fmt: str, colour: str) -> None:
    chans = 1 if colour == "gray" else 3
    vp = VideoParams(height=48, width=64, colour=colour, mean=(0.45,) * chans, std=(0.2,) * chans)
    frames = np.stack([frame_of(fmt, 120, 162, seed=s) for s in range(2)])
    out = np.empty((2, chans, 48, 64), np.float32)
    s = native.video_struct(vp)
    code = native.FORMAT_CODES[fmt]
    assert host.avf_host_image(frames.ctypes.data, 2, code, 120, 162, ctypes.byref(s),
                               out.ctypes.data) == 0  # fmt: skip
    for i in range(2):
        np.testing.assert_allclose(out[i], ref.image_to_tensor(frames[i], vp, fmt), atol=1e-5)


@pytest.mark.skipif(NVCC is None, reason="nvcc is not installed")
def test_cuda_kernels_compile_with_nvcc(build: tuple[Path, str]) -> None:
    lib_dir, configure_log = build
    assert "building CUDA kernels for 80" in configure_log
    assert (lib_dir / "libavfuse_kernels_cuda.so").is_file()


@pytest.mark.slow
@pytest.mark.skipif(NVCC is None, reason="nvcc is not installed")
def test_cuda_kernels_compile_for_every_default_target(tmp_path: Path) -> None:
    src = ROOT / "avfuse" / "kernels" / "cuda"
    archs = ["75", "80", "86", "87", "89", "90", "100", "120"]
    gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in archs]
    res = subprocess.run(
        [
            NVCC,
            "-c",
            "-O3",
            f"-I{src}",
            *gencode,
            str(src / "avf_kernels.cu"),
            "-o",
            str(tmp_path / "k.o"),
        ],  # fmt: skip
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr


def test_cmake_skips_cuda_cleanly_without_nvcc(tmp_path: Path) -> None:
    if shutil.which("cmake") is None or shutil.which("g++") is None:
        pytest.skip("cmake and g++ are needed")
    cmake_dir = str(Path(shutil.which("cmake")).parent)
    env = {k: v for k, v in os.environ.items() if k not in ("CUDACXX", "CUDA_PATH", "CUDA_HOME")}
    env["PATH"] = os.pathsep.join(dict.fromkeys([cmake_dir, "/usr/bin", "/bin"]))
    if any(Path(d, "nvcc").exists() for d in env["PATH"].split(os.pathsep)):
        pytest.skip("nvcc sits next to cmake/g++; cannot hide it")
    cfg = _cmake(tmp_path, env=env)
    assert "nvcc not found, skipping the CUDA kernels" in cfg.stdout
    assert (tmp_path / "lib" / "libavfuse_kernels_host.so").is_file()
    assert not (tmp_path / "lib" / "libavfuse_kernels_cuda.so").exists()


def test_cuda_wrapper_reports_what_is_missing(build: tuple[Path, str], monkeypatch) -> None:
    """Without a GPU the CUDA kernels refuse with a message that names the fix."""
    import avfuse.kernels.cuda_gpu as cg

    monkeypatch.setenv("AVFUSE_KERNELS_LIB_DIR", str(build[0]))
    monkeypatch.setattr(cg, "_lib", None)
    try:
        lib = native.load_library("cuda")
    except BackendUnavailable as e:
        assert "CUDA runtime" in str(e) or "not built" in str(e)
        return
    if lib.avf_cuda_device_count() > 0:
        pytest.skip("a GPU is present; the gpu tests cover it")
    with pytest.raises(BackendUnavailable, match="no CUDA GPU or driver found.*impl='numba'"):
        cg.LogMel(P)
    with pytest.raises(BackendUnavailable, match="no CUDA GPU"):
        log_mel_kernel(P, "cuda")
    assert log_mel_kernel(P).name == "numba"  # auto skips cuda


@pytest.mark.gpu
def test_cuda_kernels_on_gpu(build: tuple[Path, str], monkeypatch) -> None:
    import avfuse.kernels.cuda_gpu as cg

    monkeypatch.setenv("AVFUSE_KERNELS_LIB_DIR", str(build[0]))
    monkeypatch.setattr(cg, "_lib", None)
    k = log_mel_kernel(P, "cuda")
    x = np.stack([noise(P.window_samples, seed=s) for s in range(8)])
    np.testing.assert_allclose(k(x), ref.log_mel(x, P), atol=1e-3)
    vp = VideoParams(height=48, width=64)
    ik = image_kernel(vp, "cuda")
    for fmt in ("bgr24", "nv12"):
        frame = frame_of(fmt, 240, 320)
        np.testing.assert_allclose(ik(frame, fmt), ref.image_to_tensor(frame, vp, fmt), atol=1e-5)


@pytest.mark.gpu
def test_cuda_kernels_feed_the_torch_backend_without_a_host_round_trip(
    build: tuple[Path, str], monkeypatch
) -> None:
    """Audio and frames go up once; the kernels write the model inputs into CUDA tensors
    (run_device); the torch backend reads them where they are and answers as it does on
    the host copies of the same tensors."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA build of torch")
    import avfuse.kernels.cuda_gpu as cg
    from avfuse.api import load_backend

    monkeypatch.setenv("AVFUSE_KERNELS_LIB_DIR", str(build[0]))
    monkeypatch.setattr(cg, "_lib", None)
    be = load_backend(backend="torch", device="cuda")
    m = be.manifest
    mel, img = cg.LogMel(m.audio), cg.Image(m.video)
    batch, n = 4, m.audio.window_samples
    audio = torch.from_numpy(np.stack([noise(n, seed=s) for s in range(batch)])).cuda()
    frames = torch.from_numpy(np.stack([frame_of("bgr24", 240, 320, seed=s)
                                        for s in range(batch)])).cuda()  # fmt: skip
    feeds = {
        "audio": torch.empty((batch, *mel.out_shape(n)), device="cuda"),
        "image": torch.empty((batch, *img.out_shape), device="cuda"),
        "mask": torch.ones((batch, 2), device="cuda"),
    }
    stream = torch.cuda.current_stream().cuda_stream
    mel.run_device(audio, batch, n, feeds["audio"], stream)
    img.run_device(frames, batch, "bgr24", 240, 320, feeds["image"], stream)
    torch.cuda.synchronize()
    np.testing.assert_allclose(feeds["audio"].cpu().numpy(),
                               ref.log_mel(audio.cpu().numpy(), m.audio), atol=1e-3)  # fmt: skip
    with be:
        on_device = be.infer(feeds)["logits"]
        on_host = be.infer({k: v.cpu().numpy() for k, v in feeds.items()})["logits"]
    np.testing.assert_allclose(on_device, on_host, rtol=1e-5, atol=1e-5)
