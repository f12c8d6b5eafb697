"""What a lane writes into its model's feeds for one item: audio window, frame, mask.

Pre-processing has its own buffers (the audio window read from the ring, a stack of
recent frames for a model that takes several, the streaming log-mel's cached hops) and
its own losses (a frame overwritten in the ring while it was read); the lane decides
which items run and when, `LaneInputs` fills a batch row for each. Everything is made
once per lane, so an item allocates nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from avfuse.engine.align import Window
from avfuse.engine.lane_item import Item
from avfuse.kernels.reference import AudioParams

if TYPE_CHECKING:
    from avfuse.engine.lane import Lane
    from avfuse.engine.pipeline import PipelineConfig


class LaneInputs:
    """The feeds of one lane's items (see the module docstring).

    Attributes:
        audio_buf: the audio window of the item being prepared (None: no audio input or
            no audio ring), read by the sync monitors after `write`.
        rate: the model's audio sample rate (0 without audio).
        torn: frames overwritten in the ring while they were read (counted as a drop).
        smel: the streaming log-mel (None: the kernel's variant cannot stream).
    """

    def __init__(self, lane: Lane, config: PipelineConfig) -> None:
        slot, ing = lane.slot, lane.stream.ingest
        m = slot.manifest
        self.mask_input = slot.mask_spec.name if slot.mask_spec is not None else None
        self._mask_order = m.mask_order
        self._model_mods = m.modalities
        self._min_cov = config.min_audio_coverage
        self.audio_buf: np.ndarray | None = None
        self.rate = 0
        self.smel: Any = None
        self._epoch = 0
        a = m.audio
        if a is not None and ing.audio_ring is not None and ing.audio_clock is not None:
            self.audio_buf = np.zeros(a.window_samples, np.float32)
            self.rate = a.sample_rate
            kernel = slot.audio_kernel
            if isinstance(a, AudioParams) and config.streaming_mel and _can_stream(kernel):
                from avfuse.kernels.streaming import StreamingLogMel

                self.smel = StreamingLogMel(kernel)
        spec = slot.video_spec
        self._stack: np.ndarray | None = None
        if spec is not None and len(spec.shape or ()) == 5:  # [batch, frames, ...]: a stack
            self._stack = np.zeros(spec.shape[1:], slot.feeds[spec.name].dtype)  # type: ignore[index]
        self.torn = 0

    def write(self, lane: Lane, it: Item, row: int) -> None:
        """Pre-process `it` into batch row `row` of the model's feeds and its mask row;
        sets the item's modalities, degradation, level and reset flag."""
        slot, st = lane.slot, lane.stream
        feeds = slot.feeds
        if lane.mode == "chain":
            for name, (ring, _frames, init) in lane.histories.items():
                ring.read(it.hist, feeds[name][row], init=init)
            return  # modalities and degradation are the source item's
        ing = st.ingest
        has_audio = has_video = False
        if lane.audio_input is not None:
            dst = feeds[lane.audio_input][row]
            if lane.aligner is not None and it.window is None:
                it.window = lane.aligner.window_for(it.time_ns)
            w = it.window
            if w is not None and st.crosses_audio_gap(lane, w):
                it.reset = True  # recurrent state must not span an audio gap
            if w is not None and self.audio_buf is not None and ing.audio_ring is not None:
                res = ing.audio_ring.read(w.start_index, self.audio_buf)
                has_audio = res.coverage >= self._min_cov
                late = lane.late_audio
                if late is not None and ing.audio_up and ing.audio_clock is not None:
                    warn = late.observe(
                        complete=res.missing == 0, late_ms=ing.audio_clock.model.late_ms,
                        stream_time=ing.stream_time_s(it.time_ns),
                    )  # fmt: skip
                    if warn is not None:
                        lane.add_record(warn)
                if has_audio:
                    self._audio_into(lane, dst, w, complete=res.missing == 0)
                    if lane.sync_feed is not None and res.missing == 0:
                        # only whole windows: a window whose end has not arrived yet
                        # (live audio comes in bursts) would show a fake rise later
                        for rec in lane.sync_feed.window(lane, it, w, dst):
                            lane.add_record(rec)
                    tenth = self.rate // 10
                    it.level_dbfs = ing.audio_ring.level_dbfs(w.end_index - tenth, w.end_index)
            if not has_audio:
                dst[...] = 0
        img = slot.image_kernel
        if lane.video_input is not None and img is not None:
            dst = feeds[lane.video_input][row]
            target = dst if self._stack is None else self._stack[-1]
            fr = ing.frame_ring
            if it.seq >= 0 and fr is not None and lane.mode != "audio":
                if fr.valid(it.seq):
                    fmt = st.video_format.pixel_format if st.video_format else "bgr24"
                    if self._stack is not None:
                        self._stack[:-1] = self._stack[1:]  # the oldest frame goes
                    img(fr.view(it.seq), fmt, target)
                    has_video = fr.valid(it.seq)  # not overwritten while we read it
                    if has_video and lane.sync_feed is not None:
                        lane.sync_feed.decided_frame(lane, it, target)
                if not has_video:
                    self.torn += 1
            if self._stack is not None:
                np.copyto(dst, self._stack)
                if not has_video:
                    dst[...] = 0
            elif not has_video:
                dst[...] = 0
        it.modalities = ("audio",) * has_audio + ("video",) * has_video
        it.degraded = any(m not in it.modalities for m in self._model_mods)
        if self.mask_input is not None:
            mask = feeds[self.mask_input][row]
            for j, m in enumerate(self._mask_order):
                mask[j] = 1.0 if m in it.modalities else 0.0

    def _audio_into(self, lane: Lane, dst: np.ndarray, w: Window, *, complete: bool) -> None:
        kernel = lane.slot.audio_kernel
        assert kernel is not None and self.audio_buf is not None  # set together
        epoch = lane.stream.ingest.audio_epoch
        if epoch != self._epoch:  # a gap was written: cached mel frames may not span it
            self._epoch = epoch
            if self.smel is not None:
                self.smel.invalidate()
        smel = self.smel
        if smel is not None and complete and w.end_index % smel.kernel.params.hop_length == 0:
            smel.window(self.audio_buf, w.end_index, dst)
        else:
            if smel is not None:
                smel.invalidate()  # zeros where samples were missing: do not cache them
            kernel(self.audio_buf, dst)


def _can_stream(kernel: Any) -> bool:
    """Whether the log-mel kernel's variant allows computing only the new hops (a centred,
    max-referenced or frames-first log-mel needs its whole window every time)."""
    from avfuse.kernels.streaming import StreamingLogMel

    return StreamingLogMel.supports(kernel.params)


__all__ = ["LaneInputs"]
