"""Audio that comes in late bursts (an MPEG-TS stream packs ~0.3 s of audio per packet).

Every frame waiting on a burst becomes ready when it lands, all at once. They are on time
by the audio deadline's contract; the scheduler must not drop all but the newest two as if
the pipeline had fallen behind (it did so after every reconnect of a UDP stream in the
soak: ~28 fps instead of 30, `queue_full` drops).
"""

from __future__ import annotations

import heapq

import pytest

from avfuse.engine.clock import now_ns
from avfuse.engine.schedule import Scheduler
from avfuse.engine.sources.base import FrameSink
from tests.engine.pipeline_kit import Collect, ScriptedSource, run

BURST_S = 0.3


class BurstyAudioSource(ScriptedSource):
    """Live frames on time; audio stamped at capture but delivered every `BURST_S`, late."""

    def _run(self, sink: FrameSink) -> None:
        origin = now_ns()
        events: list[tuple[float, int, float]] = []  # (delivered at, 0 audio / 1 video, t)
        for k in range(int(self.duration_s * self.fps)):
            events.append((k / self.fps, 1, k / self.fps))
        n_blocks = int(self.duration_s * self.rate / self.block)
        for b in range(n_blocks):
            ta = b * self.block / self.rate
            events.append(((int(ta / BURST_S) + 1) * BURST_S, 0, ta))
        heapq.heapify(events)
        while events and not self.stopping.is_set():
            at, kind, t = heapq.heappop(events)
            self._pace(origin, at)
            if kind == 0:
                sink.audio(self._silence, device_time_s=t, host_ns=origin + int(t * 1e9))
            else:
                sink.video(self._black, device_time_s=t, host_ns=origin + int(t * 1e9))


@pytest.mark.timeout(60)
def test_frames_completed_by_one_audio_burst_are_all_processed(backend) -> None:
    src = BurstyAudioSource(name="ts", duration_s=3.0, card=None, live=True)
    sink = Collect()
    summary = run([src], backend, sink, audio_deadline_ms=400, realtime=True)
    assert summary.drops.get("queue_full", 0) == 0, summary.drops
    # every frame but those the last burst may still owe at the stop
    assert summary.frames >= 3.0 * 30 - 12, summary.frames


def test_a_scheduler_holds_its_own_depth_per_stream() -> None:
    dropped: list[int] = []
    s = Scheduler(streams=2, depth=[2, 5], on_drop=lambda t, r: dropped.append(t.stream))
    for i in range(6):
        s.push(0, i, now_ns=i)
        s.push(1, i, now_ns=i)
    assert dropped.count(0) == 4 and dropped.count(1) == 1
    assert s.space(0) == 0 and s.space(1) == 0
    with pytest.raises(ValueError, match="one depth per stream"):
        Scheduler(streams=2, depth=[2])
