"""The media a soak run plays for hours: the demo scene, looped without a seam.

A soak must run as long as it is asked to, but the demo scene lasts ~24 s and a file
ends. Two ways round it, both on the bundled demo material (held-out cards and voices):

    LoopingSceneSource   the scene delivered live, in real time, on a loop, as a camera
                         and a microphone in front of it would: device time goes on
                         across loops (no clock jump, no gap), nothing is precomputed
                         beyond one loop, so a month-long run holds one loop in memory
    write_scene_files    the scene encoded to an mp4 (H.264 + AAC), and a copy looped
                         with `ffmpeg -stream_loop -c copy` to cover the run (a file
                         source), or streamed looped by ffmpeg (a network stream)

A loop is a whole number of video frames, audio blocks and AAC frames (1024 samples at
16 kHz): its length is rounded up to a multiple of 1.6 s, so a looped file has no
timestamp gap at the seams either.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import subprocess
import time
from pathlib import Path

from avfuse.engine.sources.base import (
    AudioFormat,
    FrameSink,
    Source,
    SourceInfo,
    VideoFormat,
)
from avfuse.engine.sources.synthetic import (
    SceneRender,
    SceneScript,
    load_default_material,
    render_scene_to_file,
)
from avfuse.errors import SourceError

#: a loop length that is a whole number of 30 fps frames, 20 ms blocks and AAC frames
LOOP_QUANTUM_S = 1.6


def scene_script(seed: int) -> SceneScript:
    """The demo scene of `seed`, its length rounded up to a multiple of `LOOP_QUANTUM_S`."""
    script = SceneScript.default(seed=seed)
    loops = math.ceil(script.duration_s / LOOP_QUANTUM_S - 1e-9)
    return dataclasses.replace(script, duration_s=round(loops * LOOP_QUANTUM_S, 6))


class LoopingSceneSource(Source):
    """The demo scene, live and looped (see the module docstring).

    Args:
        seed: which scene (`scene_script(seed)`).
        name: the stream's name in records.
        sample_rate: audio rate delivered (mono float32).
        fps: video frame rate (bgr24 frames of `width` x `height`).
        block_ms: audio block length, as a sound card delivers it.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        name: str = "synthetic",
        sample_rate: int = 16000,
        fps: int = 30,
        block_ms: float = 20.0,
        width: int = 320,
        height: int = 240,
    ) -> None:
        super().__init__(name=name)
        self.script = scene_script(seed)
        self.sample_rate, self.fps, self.size = sample_rate, fps, (width, height)
        self.block = round(block_ms * sample_rate / 1000)
        self.render: SceneRender | None = None

    def _open(self) -> SourceInfo:
        w, h = self.size
        self.render = SceneRender(
            self.script, load_default_material(), width=w, height=h, fps=self.fps,
            sample_rate=self.sample_rate,
        )  # fmt: skip
        self.render.audio.setflags(write=False)
        return SourceInfo(
            name=self.name,
            audio=AudioFormat(sample_rate=self.sample_rate, block_size=self.block),
            video=VideoFormat(width=w, height=h, fps=float(self.fps)),
            live=True,
        )

    def _run(self, sink: FrameSink) -> None:
        r = self.render
        assert r is not None  # open() ran in start(); internal invariant
        track, rate, block = r.audio, self.sample_rate, self.block
        blocks_per_loop = len(track) // block
        origin = time.monotonic_ns()
        na = nv = 0  # blocks and frames delivered since the start, across loops
        while not self.stopping.is_set():
            t_audio = (na + 1) * block / rate  # a block is available once it is captured
            t_video = nv / self.fps
            due = origin + math.ceil(min(t_audio, t_video) * 1e9)
            left = due - time.monotonic_ns()
            if left > 0 and self.stopping.wait(left / 1e9):
                return
            if t_audio <= t_video:
                s0 = (na % blocks_per_loop) * block
                sink.audio(
                    track[s0 : s0 + block],
                    device_time_s=na * block / rate,
                    host_ns=origin + round(na * block / rate * 1e9),
                )
                na += 1
            else:
                image = r.frames[r.frame_image[nv % r.n_frames]]
                sink.video(image, device_time_s=t_video, host_ns=origin + round(t_video * 1e9))
                nv += 1


def ffmpeg_path() -> str:
    """The ffmpeg command (the soak's file and network stream are made with it).

    Raises:
        SourceError: ffmpeg is not installed (with how to get it).
    """
    path = shutil.which("ffmpeg")
    if path is None:
        raise SourceError("the soak needs the ffmpeg command: apt-get install ffmpeg")
    return path


def write_scene_files(folder: Path, *, seed: int, seconds: float) -> tuple[Path, Path]:
    """Encode scene `seed` to `folder/scene-SEED.mp4` and a looped copy covering `seconds`.

    Returns:
        (one loop, the looped copy). The copy is stream-copied, so it costs no encoding.

    Raises:
        SourceError: ffmpeg failed (its message).
    """
    script = scene_script(seed)
    one = folder / f"scene-{seed}.mp4"
    render_scene_to_file(script, one, sample_rate=16000)
    loops = max(1, math.ceil(seconds / script.duration_s))
    long = folder / f"scene-{seed}-x{loops}.mp4"
    cmd = [ffmpeg_path(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
           "-stream_loop", str(loops - 1), "-i", str(one), "-c", "copy", str(long)]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise SourceError(f"ffmpeg could not loop {one}: {r.stderr.strip()[-300:]}")
    return one, long


__all__ = [
    "LOOP_QUANTUM_S",
    "LoopingSceneSource",
    "ffmpeg_path",
    "scene_script",
    "write_scene_files",
]
