"""How a lane runs the content sync monitor (`--sync-monitor content`, `--auto-offset`).

The lane hands the monitor what it already has: the pre-processed frame of each item and
the item's whole audio window (samples already seen are skipped by the monitor). The
window's samples are timed on the audio's own time line - the applied offset taken back
out - because the monitor measures the total delay. With `auto_offset` the monitor's
applied offset (slewed, never stepped) becomes the lane's aligner offset, so the next
windows slide towards the measured one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from avfuse.engine.content_sync import ContentSyncConfig, ContentSyncMonitor
from avfuse.engine.records import Record

if TYPE_CHECKING:
    from avfuse.engine.align import Window
    from avfuse.engine.pipeline_config import PipelineConfig


def content_monitor_for(
    config: PipelineConfig, stream: str, model: str, sample_rate: int
) -> ContentSyncMonitor:
    """The monitor for one fused stream under `config`."""
    cfg = ContentSyncConfig(auto_offset=config.auto_offset)
    return ContentSyncMonitor(
        configured_offset_ms=config.av_offset_ms,
        sample_rate=sample_rate,
        config=cfg,
        source=stream,
        model=model,
    )


def content_audio(lane: Any, it: Any, w: Window) -> list[Record]:
    """Push the item's window (complete, in `lane.audio_buf`), poll, steer the aligner."""
    mon: ContentSyncMonitor = lane.sync
    ing = lane.stream.ingest
    rate = lane._rate
    # the window's last sample is (exact end - end index + 1) samples before its target
    t_end = ing.stream_time_s(w.target_ns) - (w.exact_end_index - (w.end_index - 1)) / rate
    mon.push_audio(t_end, lane.audio_buf)
    out = mon.poll()
    if mon.config.auto_offset and lane.aligner is not None:
        ns = int(round(mon.applied_offset_ms * 1e6))
        lane.aligner.av_offset_ns = ns
        lane._av_offset_ns = ns
    return out


__all__ = ["ContentSyncMonitor", "content_audio", "content_monitor_for"]
