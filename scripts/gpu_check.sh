#!/usr/bin/env bash
# The one check a machine with an NVIDIA GPU runs (under ~5 minutes), from the repository
# root:  bash scripts/gpu_check.sh
#
#   1. builds the CUDA kernels for this GPU (CMake + nvcc) into build-gpu/
#   2. runs every test marked `gpu` (they skip what this machine lacks, with the reason)
#   3. benchmarks the CUDA pre-processing kernels and the torch CUDA backend reading their
#      device output (benchmarks/gpu_check.py -> benchmarks/results/gpu_<device>.json)
#
# Needs: nvcc, cmake, a Python with numpy, onnxruntime, onnx, pytest and a CUDA torch.
# pytest-timeout is optional (the run is bounded by `timeout` instead). Writes the test
# log next to the JSON: benchmarks/results/gpu_tests.log.
set -u -o pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=benchmarks/results
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi -L || { echo "gpu_check: nvidia-smi lists no GPU" >&2; exit 2; }
arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d ' .')
echo "== build (sm_${arch})"
cmake -S . -B build-gpu -DCMAKE_CUDA_ARCHITECTURES="${arch}" >/dev/null \
  && cmake --build build-gpu -j "$(nproc)" >/dev/null || { echo "gpu_check: build failed" >&2; exit 1; }
export AVFUSE_KERNELS_LIB_DIR="$PWD/build-gpu/lib"
echo "== gpu tests"
# addopts without --strict-markers: the timeout marks need pytest-timeout, which may be absent
timeout 240 "$PY" -m pytest -m gpu -o addopts="-ra --import-mode=importlib" -p no:cacheprovider \
  tests/backends/test_ort_gpu.py tests/backends/test_cudart.py tests/backends/test_tensorrt.py \
  tests/kernels/test_native.py 2>&1 | tee "$OUT/gpu_tests.log"
tests=${PIPESTATUS[0]}
echo "== benchmark"
timeout 150 "$PY" benchmarks/gpu_check.py --repeats 200
bench=$?
echo "gpu_check: tests exit ${tests}, benchmark exit ${bench}"
[ "$tests" -eq 0 ] && [ "$bench" -eq 0 ]
