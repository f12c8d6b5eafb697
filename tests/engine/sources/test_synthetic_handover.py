"""A realtime synthetic scene handed over: the pipeline's thread lets its items in.

The scene's thread only queues the next second of items into a `PlayoutBuffer` and
sleeps; the consumer delivers them when it wakes. Checked with the controlled clock and
simulated consumer of test_playout_handover.py against the scene's own item-by-item
delivery: the same frames with the same stamps in the same order, the same samples,
nothing before it is due, and the scene's thread asleep between bursts. The faults a
scene can carry (audio gaps, dropped frames, jitter, a slow audio clock) are on.
"""

from __future__ import annotations

import numpy as np
import pytest

from avfuse.engine.sources.base import WAKE_SLACK_NS
from avfuse.engine.sources.playout import HIGH_S, LOW_S, PlayoutBuffer
from avfuse.engine.sources.synthetic import SceneItem, SceneScript, SyntheticSource
from avfuse.engine.sources.synthetic_delivery import deliver_handed_over, deliver_paced
from tests.engine.sources.test_playout import Arrivals
from tests.engine.sources.test_playout_handover import ConsumerTime

pytestmark = pytest.mark.timeout(60)

SR = 16000
FPS = 30.0
SECONDS = 3.0


class _Record:
    """A FrameSink that keeps what arrives, with its stamps (no clock)."""

    def __init__(self) -> None:
        self.frames: list[tuple[int, float | None]] = []
        self.blocks: list[tuple[int, np.ndarray]] = []

    def audio(self, samples, *, device_time_s, host_ns) -> None:  # type: ignore[no-untyped-def]
        self.blocks.append((host_ns, samples.copy()))

    def video(self, frame, *, device_time_s, host_ns) -> None:  # type: ignore[no-untyped-def]
        self.frames.append((host_ns, device_time_s))

    def status(self, status) -> None:  # type: ignore[no-untyped-def]
        raise AssertionError(f"a scene reports no status: {status}")


def _scene(**faults: object) -> SyntheticSource:
    script = SceneScript(
        items=(SceneItem(label="4", card_start=0.5, card_end=2.0, speech_start=0.7),),
        duration_s=SECONDS,
        seed=3,
    )
    src = SyntheticSource(
        script=script, realtime=True, sample_rate=SR, fps=FPS, block_ms=20.0, **faults
    )
    src.open()
    return src


FAULTS = {
    "drift_ppm": -300.0,  # a slow audio clock: each block's last sample comes later
    "jitter_ms": 4.0,
    "drop_frames": (10, 11, 40),
    "audio_gaps": ((1.0, 1.2),),
}


@pytest.mark.parametrize(
    ("faults", "video"),
    [({}, True), (FAULTS, True), (FAULTS, False), ({"drift_ppm": -300.0}, False)],
    # audio only: each block wakes by itself, once its last sample is captured; without
    # jitter, a slow clock's block ends 6 us after its nominal 20 ms
    ids=["clean", "faults", "audio-only", "audio-only-slow-clock"],
)
def test_handed_over_a_scene_delivers_what_it_delivers_itself_never_early(
    faults: dict[str, object], video: bool
) -> None:
    src = _scene(**faults)
    plan = src._scene_plan
    ref = _Record()
    deliver_paced(plan, ref, src.stopping, 0, audio=True, video=video, realtime=False)  # type: ignore[arg-type]
    frames = round(SECONDS * FPS) - (3 if "drop_frames" in faults else 0)
    assert len(ref.frames) == (frames if video else 0)

    clock = ConsumerTime()
    sink = Arrivals(clock)
    buf = PlayoutBuffer(sink, clock, sample_rate=SR, clock=clock)
    buf.hand_over(clock.ring)
    clock.buf = buf
    deliver_handed_over(plan, buf, 0, audio=True, video=video)

    video = [(h, a) for k, h, a in sink.got if k == "video"]
    assert [h for h, _ in video] == [h for h, _ in ref.frames]  # same frames, stamps, order
    assert all(h <= a <= h + WAKE_SLACK_NS for h, a in video)  # on time, never early
    got = np.concatenate([c for _, _, c in sink.chunks])
    np.testing.assert_array_equal(got, np.concatenate([s for _, s in ref.blocks]))
    # each chunk's last sample was captured (at the scene's true rate) by its arrival
    ratio = 1.0 + float(faults.get("drift_ppm", 0.0)) * 1e-6  # type: ignore[arg-type]
    kept = [i for i, k in enumerate(plan.a_kept) if k]
    end = 0
    for _, arrival, chunk in sink.chunks:
        end += len(chunk)
        b, k = divmod(end - 1, plan.block)  # the chunk's last sample: kept block b, index k
        captured_ns = (plan.a_true[kept[b]] + (k + 1) / (SR * ratio)) * 1e9
        assert captured_ns <= arrival + 1, (end, arrival, captured_ns)
    # the scene's thread slept per burst, not per item (about 40 items a second)
    assert clock.sleeps <= SECONDS / (HIGH_S - LOW_S) + 3, clock.sleeps
    assert clock.consumer_wakes <= SECONDS * (FPS if video else 50) + 5
    assert buf.queued_bytes == 0
