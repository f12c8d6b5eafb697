"""Delivering a planned synthetic scene: item by item on its thread, or handed over.

A scene's every timestamp, jitter and drop is planned at `open()` (`ScenePlan`); what
is left is to hand each item to the sink when it is due: a video frame once captured,
an audio block once its last sample is, plus the delay its stamp carries.

- `deliver_paced`: the source's thread sleeps to each item's time and delivers it, as a
  camera's and a microphone's threads would (an item due within `WAKE_SLACK_NS` after
  another shares its wake-up). About 40 wake-ups a second at 30 fps with 20 ms blocks,
  each with cold caches.
- `deliver_handed_over`: the pipeline takes the scene's `PlayoutBuffer` (its
  `take_playout`, as for a file played in real time): the source's thread only queues
  the next second of items and sleeps, and the pipeline's thread lets them in when it
  wakes for the frames its models run on. The items, their stamps and their order are
  the same; none goes out before it is due. Through the whole CLI (`avfuse run
  --source synthetic --realtime`), old and new code alternated: 3.5-3.9 -> 2.4-2.9 % of
  a core, the scene's thread 1.3-1.6 -> 0.06 %.
- without `realtime`, every item goes out at once, in due order (as fast as the sink
  takes them).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

import numpy as np

from avfuse.engine.sources.base import WAKE_SLACK_NS, FrameSink
from avfuse.engine.sources.playout import PlayoutBuffer


@dataclass(frozen=True, kw_only=True)
class ScenePlan:
    """Every item of a scene, as Python lists (a NumPy scalar costs several times a
    float in the arithmetic of each wake-up, caches cold).

    Attributes:
        block: samples per audio block; `block_s` its true duration (drift applied).
        a_true, a_jit, a_dev, a_kept: per block: the first sample's true time (s), its
            arrival jitter (ns), its device time (s), whether it arrives (not in a gap).
        v_true, v_jit, v_dropped, v_image: per frame: true time (s), jitter (ns),
            dropped, which pre-composed image it shows (`frames[v_image[k]]`).
        track: the whole audio track (blocks are views of it).
        frames: the pre-composed images.
    """

    block: int
    block_s: float
    a_true: list[float]
    a_jit: list[float]
    a_dev: list[float]
    a_kept: list[bool]
    v_true: list[float]
    v_jit: list[float]
    v_dropped: list[bool]
    v_image: list[int]
    track: np.ndarray
    frames: np.ndarray


class _Due:
    """The scene's items in due order: `peek(na, nv)` -> (is_audio, due ns after origin)."""

    def __init__(self, plan: ScenePlan, *, audio: bool, video: bool) -> None:
        self.plan = plan
        self.n_blocks = len(plan.a_true) if audio else 0
        self.n_frames = len(plan.v_true) if video else 0

    def peek(self, na: int, nv: int) -> tuple[bool, float]:
        """The next item (audio or not) and when it arrives: once captured (an audio
        block once its last sample is), plus the same delay its stamp carries."""
        p, inf = self.plan, math.inf
        ta = p.a_true[na] + p.block_s if na < self.n_blocks else inf
        tv = p.v_true[nv] if nv < self.n_frames else inf
        if ta == tv == inf:  # nothing after the last item
            return True, inf
        if ta <= tv:
            return True, ta * 1e9 + p.a_jit[na]
        return False, tv * 1e9 + p.v_jit[nv]


class _Stamper:
    """Host stamps of the items, each modality strictly increasing (jitter may not
    reorder one modality's items)."""

    def __init__(self, origin: int) -> None:
        self.origin = origin
        self.last_a = self.last_v = origin - 1

    def audio(self, plan: ScenePlan, na: int) -> int:
        host = self.origin + int(plan.a_true[na] * 1e9 + plan.a_jit[na])
        self.last_a = host = max(host, self.last_a + 1)
        return host

    def video(self, plan: ScenePlan, nv: int) -> int:
        host = self.origin + int(plan.v_true[nv] * 1e9 + plan.v_jit[nv])
        self.last_v = host = max(host, self.last_v + 1)
        return host


def deliver_paced(
    plan: ScenePlan,
    sink: FrameSink,
    stopping: threading.Event,
    origin: int,
    *,
    audio: bool,
    video: bool,
    realtime: bool,
) -> None:
    """Deliver every item from this thread, each at its time when `realtime`."""
    order = _Due(plan, audio=audio, video=video)
    stamp = _Stamper(origin)
    block, track, frames = plan.block, plan.track, plan.frames
    a_kept, a_dev, v_dropped, v_true, v_image = (
        plan.a_kept,
        plan.a_dev,
        plan.v_dropped,
        plan.v_true,
        plan.v_image,
    )
    n_blocks, n_frames = order.n_blocks, order.n_frames
    na = nv = 0
    while (na < n_blocks or nv < n_frames) and not stopping.is_set():
        is_audio, t_due = order.peek(na, nv)
        if realtime:
            target = origin + math.ceil(t_due)
            if target > time.monotonic_ns():
                # one wake-up for this item and the next when it is due within the
                # slack, as an OS timer slack does: a wake-up costs more than the
                # work of delivering a block (see benchmarks/cpu_usage.py)
                after = order.peek(na + is_audio, nv + (not is_audio))[1]
                if 0 < after - t_due <= WAKE_SLACK_NS:  # (jitter may put it first)
                    target = origin + math.ceil(after)
            while (left := target - time.monotonic_ns()) > 0:  # never early
                if stopping.wait(left / 1e9 + 1e-4):
                    return
        if is_audio:
            if a_kept[na]:
                s0 = na * block
                host = stamp.audio(plan, na)
                sink.audio(track[s0 : s0 + block], device_time_s=a_dev[na], host_ns=host)
            na += 1
        else:
            if not v_dropped[nv]:
                host = stamp.video(plan, nv)
                sink.video(frames[v_image[nv]], device_time_s=v_true[nv], host_ns=host)
            nv += 1


def deliver_handed_over(
    plan: ScenePlan,
    playout: PlayoutBuffer,
    origin: int,
    *,
    audio: bool,
    video: bool,
) -> None:
    """Queue the items into a playout buffer its consumer delivers (`hand_over` done):
    the buffer sleeps this thread once a second of them is queued."""
    order = _Due(plan, audio=audio, video=video)
    stamp = _Stamper(origin)
    block, track, frames = plan.block, plan.track, plan.frames
    n_blocks, n_frames = order.n_blocks, order.n_frames
    na = nv = 0
    last_due = origin  # a block jittered past the next one holds that one back
    while na < n_blocks or nv < n_frames:
        is_audio, t_due = order.peek(na, nv)
        if is_audio:
            if plan.a_kept[na]:
                s0 = na * block
                last_due = max(last_due, origin + math.ceil(t_due))
                playout.audio(
                    track[s0 : s0 + block],
                    device_time_s=plan.a_dev[na],
                    host_ns=stamp.audio(plan, na),
                    due_ns=last_due,
                )
            na += 1
        else:
            if not plan.v_dropped[nv]:
                playout.video(
                    frames[plan.v_image[nv]],
                    device_time_s=plan.v_true[nv],
                    host_ns=stamp.video(plan, nv),
                )
            nv += 1
        if not playout.pump():
            return
    playout.finish()


__all__ = ["ScenePlan", "deliver_handed_over", "deliver_paced"]
