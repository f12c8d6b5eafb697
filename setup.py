"""Build hook: the native kernel libraries go into the wheel when they can be built.

Everything else about the package is in pyproject.toml. This only adds one step to
`build_py`: configure and build CMakeLists.txt (the CUDA kernels' math for the CPU with
the C++ compiler, and the CUDA kernels where nvcc is found) and copy the libraries into
``avfuse/kernels/cuda/lib``, where `avfuse.kernels.native` looks for them in an
installed package (not for an editable install: a checkout uses its own build/lib).
Without cmake or a compiler the wheel is built all the same, pure
Python, with a message; the kernels are optional at run time.

    AVFUSE_BUILD_NATIVE=0            never build them (a pure-Python wheel)
    AVFUSE_BUILD_NATIVE=1            build them or fail the build
    AVFUSE_CUDA_ARCHITECTURES="80"   the GPU targets (default: CMakeLists.txt's list)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools < 70.1 ships it in the wheel package
    from wheel.bdist_wheel import bdist_wheel

HERE = Path(__file__).resolve().parent
LIBS = ("libavfuse_kernels_host.so", "libavfuse_kernels_cuda.so")


def _say(msg: str) -> None:
    print(f"avfuse native kernels: {msg}", file=sys.stderr)


def _build_native(out: Path) -> list[str]:
    """Build the libraries into `out`; the names built (empty when skipped)."""
    mode = os.environ.get("AVFUSE_BUILD_NATIVE", "auto").lower()
    if mode in ("0", "no", "off"):
        return []
    cmake = shutil.which("cmake")
    if cmake is None or not (HERE / "CMakeLists.txt").is_file():
        if mode in ("1", "yes", "on"):
            raise SystemExit("AVFUSE_BUILD_NATIVE=1 but cmake is not installed")
        _say("cmake not found, the wheel carries none (the numpy kernels need none)")
        return []
    args = [cmake, "-S", str(HERE), "-DCMAKE_BUILD_TYPE=Release"]
    archs = os.environ.get("AVFUSE_CUDA_ARCHITECTURES")
    if archs:
        args.append(f"-DCMAKE_CUDA_ARCHITECTURES={archs}")
    with tempfile.TemporaryDirectory(prefix="avfuse-cmake-") as tmp:
        try:
            subprocess.run([*args, "-B", tmp], check=True, capture_output=True, text=True)
            subprocess.run(
                [cmake, "--build", tmp, "-j", str(os.cpu_count() or 2)],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
        except subprocess.CalledProcessError as e:
            if mode in ("1", "yes", "on"):
                raise SystemExit(f"building the native kernels failed:\n{e.stderr[-3000:]}") from e
            _say(f"the build failed, the wheel carries none: {(e.stderr or '').strip()[-300:]}")
            return []
        out.mkdir(parents=True, exist_ok=True)
        built = []
        for name in LIBS:
            lib = Path(tmp) / "lib" / name
            if lib.is_file():
                shutil.copy2(lib, out / name)
                built.append(name)
    _say("built " + ", ".join(built) + ("" if len(built) == 2 else " (nvcc not found: no CUDA)"))
    return built


class BuildPyWithKernels(build_py):
    """`build_py`, then the native libraries into the build tree."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            # an editable install imports the checkout, which finds build/lib itself
            # (`cmake -S . -B build && cmake --build build`): nothing to copy, no wait
            return
        built = _build_native(Path(self.build_lib) / "avfuse" / "kernels" / "cuda" / "lib")
        self.distribution.avfuse_native = bool(built)


class PlatformWheel(bdist_wheel):
    """A wheel with native libraries is tagged for this platform (any Python 3: ctypes)."""

    def get_tag(self) -> tuple[str, str, str]:
        # called after the build ran, before the WHEEL file is written
        if getattr(self.distribution, "avfuse_native", False):
            self.root_is_pure = False
            return "py3", "none", sysconfig.get_platform().replace("-", "_").replace(".", "_")
        return super().get_tag()


setup(cmdclass={"build_py": BuildPyWithKernels, "bdist_wheel": PlatformWheel})
