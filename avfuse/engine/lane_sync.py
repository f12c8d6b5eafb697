"""What a fused lane feeds its stream's A/V sync monitor, and when.

One lane per stream feeds the monitor (the first fused lane whose model takes both
modalities). The two monitors want different input:

    onsets   (engine/sync.py) every frame as a 32x24 luma thumbnail, taken when the
             stream pulls it whatever the model's cadence, and the log-mel energy of
             each whole audio window the model decides on
    content  (engine/content_sync.py) the frames of the lane's decisions and the raw
             samples of their windows, on the audio's time line

`SyncFeed` keeps that choice and its buffers out of the lane's pre-processing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from avfuse.engine.align import Window
from avfuse.engine.content_hook import ContentSyncMonitor, content_audio, content_monitor_for
from avfuse.engine.sync import SyncConfig, SyncMonitor
from avfuse.kernels.reference import AudioParams
from avfuse.kernels.thumbnail import Thumbnail

if TYPE_CHECKING:
    from avfuse.engine.lane import Item, Lane
    from avfuse.engine.pipeline import PipelineConfig


class SyncFeed:
    """The sync monitor of one lane and what it is fed (see the module docstring)."""

    def __init__(
        self,
        monitor: SyncMonitor | ContentSyncMonitor,
        params: Any,
        thumb: Thumbnail | None = None,
    ) -> None:
        self.monitor = monitor
        #: the onset monitor takes every frame at pull time; the content monitor takes the
        #: frames of the lane's decisions, in step with their audio
        self.at_pull = isinstance(monitor, SyncMonitor)
        self._params = params
        self._thumb = thumb
        self._image: np.ndarray | None = None
        self._energy: np.ndarray | None = None
        if thumb is not None:
            self._image = np.zeros(thumb.shape, np.float32)
            self._energy = np.zeros(params.frames, np.float32)

    @classmethod
    def for_lane(cls, lane: Lane, config: PipelineConfig) -> SyncFeed | None:
        """The feed for `lane`, or None when the run has no monitor or another lane of
        the stream feeds it already."""
        stream, slot = lane.stream, lane.slot
        m, a = slot.manifest, slot.manifest.audio
        if (
            not config.sync_monitor
            or lane.mode != "fused"
            or m.video is None
            or a is None
            or lane.audio_buf is None
            or any(other.sync is not None for other in stream.lanes)
        ):
            return None
        if config.sync_method == "content":
            return cls(content_monitor_for(config, stream.name, slot.name, a.sample_rate), a)
        if config.sync_method == "onsets" and isinstance(a, AudioParams):
            thumb = Thumbnail()
            monitor = SyncMonitor(
                configured_offset_ms=config.av_offset_ms,
                hop_s=a.hop_length / a.sample_rate,
                image_shape=thumb.shape,
                config=SyncConfig(tolerance_ms=config.sync_tolerance_ms),
                source=stream.name,
                video_scale=1.0,  # the thumbnail is in fractions of full brightness
                model=slot.name,
            )
            return cls(monitor, a, thumb)
        return None

    def pulled_frame(self, lane: Lane, seq: int, t: int) -> None:
        """Every frame goes to the onset monitor, whatever the model's cadence: it times
        video onsets from frame-to-frame change, and from every 3rd frame alone they came
        up to two frames (67 ms) late. A 32x24 luma thumbnail (kernels/thumbnail.py; 46 us
        against 0.3 ms for the model's numpy image kernel) is made at pull time, in frame
        order, while the frame is still in the ring; the pipeline is not woken for it. The
        same input at any cadence keeps the monitor's state valid across a reload that
        changes the cadence."""
        st = lane.stream
        fr, thumb, image = st.ingest.frame_ring, self._thumb, self._image
        if thumb is None or image is None or fr is None or not fr.valid(seq):
            return
        fmt = st.video_format.pixel_format if st.video_format else "bgr24"
        thumb(fr.view(seq), fmt, image)
        if fr.valid(seq):  # not overwritten while we read it
            self.monitor.push_video(st.ingest.stream_time_s(t), image)

    def decided_frame(self, lane: Lane, it: Item, image: np.ndarray) -> None:
        """The pre-processed image of a decision (the content monitor's video input)."""
        if not self.at_pull:
            self.monitor.push_video(lane.stream.ingest.stream_time_s(it.time_ns), image)

    def window(self, lane: Lane, it: Item, w: Window, mel: np.ndarray) -> list[Any]:
        """A whole audio window of a decision; returns the monitor's new records."""
        mon = self.monitor
        if isinstance(mon, ContentSyncMonitor):  # raw samples on the audio's time line
            return content_audio(lane, it, w)
        a, energy = self._params, self._energy
        assert energy is not None  # made with the onset monitor
        # frame energies (dB) of the window's mel columns, timed in video time
        np.mean(mel, axis=0, out=energy)
        energy *= a.std
        energy += a.mean
        # the last column is centred n_fft/2 before the window end; the window's exact end
        # is the frame time (the configured offset is already applied by the aligner)
        t_frame = lane.stream.ingest.stream_time_s(it.time_ns)
        t_last = t_frame + (w.end_index - a.n_fft / 2 - w.exact_end_index) / a.sample_rate
        mon.push_audio(t_last, energy)
        return mon.poll()


__all__ = ["SyncFeed"]
