#!/usr/bin/env bash
# Rehearse Dockerfile.cpu's steps on a Debian/Python 3.11 host without a container engine:
# build the wheel from the same files the image copies, install it into a fresh venv, warm
# numba's cache and run `avfuse demo --fast` as an unprivileged user (nobody), as the image
# does. It checks the recipe (wheel contents, dependencies resolving, non-root writable
# caches), not the image: the base image, apt layer and HEALTHCHECK are not exercised.
#
#   bash deploy/docker/rehearse-cpu.sh [WORKDIR]      (root, for setpriv; default /tmp/avfuse-rehearse)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:-/tmp/avfuse-rehearse}
# the interpreter must be readable by nobody (not one under /root, as pyenv's is)
python=${PYTHON:-/usr/bin/python3}
rm -rf "$work" && mkdir -p "$work/src" "$work/cache" "$work/home"

# stage "wheel": the image's COPY lines, then pip wheel with build isolation (in its own venv:
# Debian's python3 has no pip)
"$python" -m venv "$work/build"
cp "$root/pyproject.toml" "$root/README.md" "$work/src/"
cp -r "$root/avfuse" "$work/src/avfuse"
find "$work/src" -name __pycache__ -prune -exec rm -rf {} +
t0=$(date +%s)
"$work/build/bin/pip" wheel -q --no-deps --wheel-dir "$work/wheels" "$work/src"
echo "wheel: $(ls "$work/wheels") $(du -h "$work"/wheels/*.whl | cut -f1) in $(( $(date +%s) - t0 )) s"

# stage "runtime": a venv with the wheel and its dependencies
t0=$(date +%s)
"$python" -m venv "$work/venv"
"$work/venv/bin/pip" install -q --no-cache-dir "$work"/wheels/avfuse-*.whl
echo "venv: $(du -sh "$work/venv" | cut -f1) in $(( $(date +%s) - t0 )) s"

# as the service user: warm numba's cache into a writable folder, then the demo
chown -R nobody:nogroup "$work/cache" "$work/home"
as_nobody=(setpriv --reuid=nobody --regid=nogroup --clear-groups
           env -i PATH="$work/venv/bin:/usr/bin:/bin" HOME="$work/home"
           NUMBA_CACHE_DIR="$work/cache/numba" AVFUSE_CACHE_DIR="$work/cache" PYTHONUNBUFFERED=1)
cd "$work/home"
t0=$(date +%s.%N)
"${as_nobody[@]}" python -m avfuse.kernels.warm
echo "warm (cold cache): $(echo "$(date +%s.%N) - $t0" | bc) s"
t0=$(date +%s.%N)
set +e
"${as_nobody[@]}" avfuse demo --fast --quiet --sink "jsonl:$work/home/events.jsonl" > "$work/demo.log" 2>&1
rc=$?
set -e
echo "demo --fast: rc=$rc in $(echo "$(date +%s.%N) - $t0" | bc) s, $(grep -c '"type": *"event"' "$work/home/events.jsonl" || true) events"
tail -n 5 "$work/demo.log"
exit "$rc"
