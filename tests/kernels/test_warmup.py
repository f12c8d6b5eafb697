"""No numba JIT work after capture starts: warm-up makes every kernel specialisation first.

With an empty numba cache the first call of each specialisation compiles for seconds;
inside a live run that stalls the clock (digits missed, events degraded). Each check
runs in a fresh interpreter with NUMBA_CACHE_DIR pointing at its own directory, so
nothing compiled or cached earlier (by other tests, or in the package's __pycache__)
can hide a missing warm-up. Compiles are observed with numba's event API
("numba:compile"), the moment capture starts by wrapping `Source.start`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: the demo's configuration with the numba kernels named ("auto" picks CUDA where built)
NUMBA = json.dumps({"kernel_impl": "numba"})

# Shared by the probes: record compiles and the signatures of avfuse's numba dispatchers.
_PROBE = r"""
import json, sys
import numba.core.event as ev
from numba.core.dispatcher import Dispatcher

compiles = []
phase = {"now": "before"}

class Recorder(ev.Listener):
    def on_start(self, event):
        fn = event.data["dispatcher"].py_func
        compiles.append({"phase": phase["now"], "fn": f"{fn.__module__}.{fn.__qualname__}",
                         "args": str(event.data["args"])})
    def on_end(self, event):
        pass

ev.register("numba:compile", Recorder())

def signatures():
    out = set()
    for name, mod in list(sys.modules.items()):
        if name.startswith("avfuse.kernels") and mod is not None:
            for attr, obj in vars(mod).items():
                if isinstance(obj, Dispatcher):
                    out.update(f"{name}.{attr}{sig}" for sig in obj.signatures)
    return out

def report(**extra):
    snap = state.get("snapshot")
    new = sorted(signatures() - snap) if snap is not None else None
    after = [c for c in compiles if c["phase"] == "after"]
    print("RESULT " + json.dumps({"compiled_before": len(compiles) - len(after),
                                  "compiled_after": after, "new_signatures": new, **extra}))

state = {}
def mark():
    if "snapshot" not in state:
        state["snapshot"] = signatures()
        phase["now"] = "after"
"""

_PIPELINE = r"""
from avfuse import api
from avfuse.engine.pipeline import PipelineConfig
from avfuse.engine.sources.base import Source
import avfuse.engine.sources.media, avfuse.engine.sources.synthetic  # noqa: F401

def subclasses(c):
    for s in c.__subclasses__():
        yield s
        yield from subclasses(s)

def wrap(cls):
    orig = cls.__dict__["start"]
    def start(self, sink):
        mark()
        return orig(self, sink)
    cls.start = start

for cls in [Source, *subclasses(Source)]:
    if "start" in cls.__dict__:
        wrap(cls)

opts = json.loads(sys.argv[1])
res = api.demo(realtime=False, digits="27", sinks=(), config=PipelineConfig(**opts))
report(started="snapshot" in state, recognised=res.score["n_recognised"])
"""

_KERNELS = r"""
import numpy as np
from avfuse.assets import default_model_path
from avfuse.kernels import image_kernel, log_mel_kernel
from avfuse.kernels.streaming import StreamingLogMel
from avfuse.kernels.warm import all_formats, warm_kernels
from avfuse.manifest import load_manifest

m = load_manifest(default_model_path())
mel = log_mel_kernel(m.audio, "numba")
img = image_kernel(m.video, "numba")
specs = all_formats(240, 320) + all_formats(480, 640)
warm_kernels(mel=mel, image=img, frames=specs, streaming_mel=True)
mark()
rng = np.random.default_rng(0)
p = m.audio
n = p.window_samples
audio = rng.standard_normal(n).astype(np.float32)
feed = np.zeros((4, p.n_mels, p.frames), np.float32)  # the pipeline's batch feed buffer
mel(audio, feed[1])
stream = StreamingLogMel(mel)
end = 4 * n // p.hop_length * p.hop_length
for step in (0, 1, 3, 8, 40, -200, 10 * p.frames):  # whole, hops, block path, back, gap
    end += step * p.hop_length
    stream.window(audio, end, feed[2])
out = np.zeros((4, *img.out_shape), np.float32)
for shape, fmt in specs:
    ring = rng.integers(0, 256, (8, *shape), dtype=np.uint8)  # a frame ring's slots
    img(ring[5], fmt, out[3])
report()
"""


def _probe(script: str, cache: Path, *args: str, timeout: float = 200) -> dict:
    """Run `script` in a fresh interpreter with numba caching into `cache`; its result."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE + script, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


@pytest.fixture(scope="module")
def cold(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """The demo pipeline run once with an empty numba cache: (result, the cache it filled)."""
    cache = tmp_path_factory.mktemp("numba-cache")
    return _probe(_PIPELINE, cache, NUMBA), cache


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_no_numba_compile_after_capture_starts_with_an_empty_cache(cold) -> None:
    res, _ = cold
    assert res["started"], "no Source.start was seen: the probe did not observe capture"
    assert res["compiled_before"] > 0, "nothing compiled at all: the cache was not empty"
    assert res["compiled_after"] == []


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_no_kernel_loaded_after_capture_starts_with_a_warm_cache(cold) -> None:
    """Loading a specialisation from the cache after start is smaller, but still a stall."""
    _, cache = cold
    res = _probe(_PIPELINE, cache, NUMBA)
    assert res["started"]
    assert res["compiled_before"] == 0 and res["compiled_after"] == []  # all from the cache
    assert res["new_signatures"] == []


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_warm_kernels_covers_every_pixel_format_and_mel_path(tmp_path: Path) -> None:
    res = _probe(_KERNELS, tmp_path / "numba-cache")
    assert res["compiled_before"] > 0
    assert res["compiled_after"] == []
    assert res["new_signatures"] == []


@pytest.mark.slow
@pytest.mark.timeout(420)  # the install step also compiles the parallel batch paths
def test_install_precompile_leaves_nothing_to_compile_on_the_first_run(tmp_path: Path) -> None:
    cache = tmp_path / "numba-cache"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    subprocess.run(
        [sys.executable, "-m", "avfuse.kernels.warm"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=200,
    )
    res = _probe(_PIPELINE, cache, NUMBA)
    assert res["compiled_before"] == 0 and res["compiled_after"] == []
    assert res["new_signatures"] == []


@pytest.mark.timeout(120)
def test_streaming_warmup_leaves_no_silence_in_the_ring() -> None:
    """Frames of the warm-up's silent windows must not be reused by the stream's first window."""
    import numpy as np

    from avfuse.kernels import AudioParams, log_mel_kernel
    from avfuse.kernels.streaming import StreamingLogMel

    from .conftest import chirp

    p = AudioParams()
    kernel = log_mel_kernel(p, "numba")
    stream = StreamingLogMel(kernel)
    stream.warmup()
    assert (stream.computed_frames, stream.reused_frames) == (0, 0)
    audio = chirp(p.window_samples)
    out = np.empty((p.n_mels, p.frames), np.float32)
    end = (2 * p.frames + 3) * p.hop_length  # the window the warm-up ended on
    stream.window(audio, end, out)
    assert stream.computed_frames == p.frames and stream.reused_frames == 0
    np.testing.assert_allclose(out, kernel(audio), atol=1e-5)
