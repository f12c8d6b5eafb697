"""Building a stream: open its sources, check them against the model, size its rings.

Separate from `streams.py` (what a stream does per frame) because it runs once, at
start, and is where every format contradiction is rejected with a fix. Ring sizes
left unset in the config are sized for the stream (frames wait in the ring for
their audio: offset + deadline of them, at the stream's frame rate); a size the user
set is used as it is, or refused when it is too small for the stream, never
enlarged behind their back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from avfuse.engine.control import Doorbell
from avfuse.engine.ingest import Ingest, IngestConfig
from avfuse.engine.ingest_port import IngestPort
from avfuse.engine.sources.base import Source
from avfuse.engine.streams import Stream
from avfuse.errors import StreamFormatError, UsageError
from avfuse.manifest import Manifest

if TYPE_CHECKING:
    from avfuse.engine.pipeline import PipelineConfig


def _resolve_mode(want: str, model: tuple[str, ...], has_a: bool, has_v: bool, name: str) -> str:
    if want == "auto":
        if "video" in model and has_v:
            return "fused" if "audio" in model and has_a else "video"
        if "audio" in model and has_a:
            return "audio"
    else:
        need = ("audio", "video") if want == "fused" else (want,)
        if all(m in model for m in need) and all({"audio": has_a, "video": has_v}[m] for m in need):
            return want
    given = [m for m, h in (("audio", has_a), ("video", has_v)) if h]
    raise UsageError(
        f"stream {name!r} gives {given or 'nothing'} but the model takes {list(model)} "
        f"(mode {want!r}); pass a source with the modality the model needs or another --mode"
    )


def build_stream(
    *,
    index: int,
    sources: Sequence[Source],
    manifests: Sequence[Manifest],
    config: PipelineConfig,
    bell: Doorbell | None = None,
    capture_video: bool | None = None,
) -> Stream:
    """Open the sources, check their formats against the models, and build the stream.

    `capture_video`: None captures frames only when a model reads video; True always
    (a consumer other than a model takes them, as `avfuse calibrate` does).
    """
    if not sources:
        raise UsageError(f"stream {index} has no sources")
    infos = [s.open() for s in sources]
    a_src = next((i for i, inf in enumerate(infos) if inf.audio is not None), None)
    v_src = next((i for i, inf in enumerate(infos) if inf.video is not None), None)
    name = "+".join(s.name for s in sources)
    afmt = infos[a_src].audio if a_src is not None else None
    vfmt = infos[v_src].video if v_src is not None else None
    wanted = _uses_video(manifests, config) if capture_video is None else capture_video
    if vfmt is not None and not wanted:
        # no model reads frames: they are not captured, so no ring fills up and holds
        # the source back (a file would wait for room on every frame)
        v_src, vfmt = None, None
    for m in manifests:
        want_rate = m.audio.sample_rate if m.audio is not None else None
        if afmt is not None and want_rate is not None and afmt.sample_rate != want_rate:
            raise StreamFormatError(
                f"source {name!r} delivers {afmt.sample_rate} Hz audio but model {m.name!r} "
                f"needs {want_rate} Hz; open the source with sample_rate={want_rate}"
            )
    live = any(inf.live for inf in infos)
    paced = live or config.realtime
    slots = _video_slots(config, vfmt, paced=paced, name=name)
    ring_s = _audio_ring_s(config, manifests, name=name)
    ingest = Ingest(
        name=name,
        audio=afmt,
        video=vfmt,
        live=live,
        config=IngestConfig(
            audio_ring_s=ring_s,
            video_slots=slots,
            backpressure=not paced,
            # a source that paces itself is not paced again (see SourceInfo.paced)
            realtime=config.realtime and not all(inf.paced for inf in infos),
            self_paced=not live and config.realtime and all(inf.paced for inf in infos),
            arrival_stamped=any(inf.arrival_stamped for inf in infos),
            shared_timeline=(a_src is not None and a_src == v_src and infos[a_src].arrival_stamped),
        ),
        bell=bell,
    )
    ports = [
        IngestPort(ingest, audio=i == a_src, video=i == v_src, takes_playout=True)
        for i in range(len(sources))
    ]
    return Stream(index=index, sources=list(sources), ports=ports, ingest=ingest, config=config)


def _uses_video(manifests: Sequence[Manifest], config: PipelineConfig) -> bool:
    return config.mode != "audio" and any("video" in m.modalities for m in manifests)


def resolve_mode(
    want: str,
    model: tuple[str, ...],
    *,
    has_audio: bool,
    has_video: bool,
    name: str,
    model_name: str,
) -> str:
    """How a model runs on a stream: fused, video (video-driven) or audio (audio-driven)."""
    return _resolve_mode(want, model, has_audio, has_video, f"{name}' for model '{model_name}")


def _video_slots(config: PipelineConfig, vfmt: object, *, paced: bool, name: str) -> int:
    """Frame-ring slots: enough for the frames that wait for their audio (see module)."""
    if vfmt is None:
        return config.video_slots or 8
    if paced:
        wait_s = max(config.av_offset_ms, 0.0) / 1e3 + config.audio_deadline_ms / 1e3 + 0.15
        need = math.ceil(wait_s * vfmt.fps) + config.queue_depth + 4  # type: ignore[attr-defined]
    else:
        need = 32  # files: room to read ahead while frames wait for their audio
    if config.video_slots is None:
        return max(need, 8)
    if config.video_slots < need:
        raise UsageError(
            f"video_slots={config.video_slots} is too small for stream {name!r}: frames wait "
            f"in the ring for their audio, which needs at least {need} slots here; set "
            f"video_slots >= {need} or leave it unset"
        )
    return config.video_slots


def _audio_ring_s(config: PipelineConfig, manifests: Sequence[Manifest], *, name: str) -> float:
    """Seconds of audio held: two of the longest model window plus the A/V offset plus a
    second."""
    windows = [m.audio.window_samples / m.audio.sample_rate for m in manifests if m.audio]
    window_s = max(windows, default=1.0)
    need = 2 * window_s + abs(config.av_offset_ms) / 1e3 + 1.0
    if config.audio_ring_s is None:
        return max(10.0, need)
    if config.audio_ring_s < need:
        raise UsageError(
            f"audio_ring_s={config.audio_ring_s:g} is too small for stream {name!r}: it must "
            f"hold two {window_s:g} s model windows plus the {config.av_offset_ms:g} ms A/V "
            f"offset and a second of slack; set audio_ring_s >= {need:g} or leave it unset"
        )
    return config.audio_ring_s


__all__ = ["build_stream", "resolve_mode"]
