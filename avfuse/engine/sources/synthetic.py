"""SyntheticSource: a scripted scene of digit cards shown and the same digits spoken.

The scene is what a camera and a microphone in front of someone holding up digit
cards would capture, with known ground truth, so the whole runtime can be measured
without devices. A `SceneScript` says what happens when (in scene time, seconds);
a `SyntheticSource` delivers it as a device pair would, with configurable faults:
audio later than video (`av_offset_ms`), an audio clock that runs fast or slow
(`drift_ppm`), arrival jitter, dropped video frames and gaps where no audio arrives.

Timing model (true time t from the start of the scene, origin = monotonic ns at start):
    video frame k     t = k / fps;  device_time_s = t;  host_ns = origin + t + jitter
    audio sample n    t = n / (rate * (1 + drift));  device_time_s = n / rate;
                      host_ns (first sample of a block) = origin + t + jitter;
                      the sample holds what was heard at scene time t - av_offset
Everything is precomputed at `open()` (`ScenePlan`): each frame is a view of one of a
few pre-composed images and each audio block a view of one precomputed track, so
delivery allocates nothing per frame. Jitter and drops come from the seed. In real time
into a pipeline, the pipeline's own thread lets the items in when they are due, as for
a file (`synthetic_delivery`); into any other sink the source's thread delivers each.
"""

from __future__ import annotations

import json
import math
import numbers
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from avfuse.engine.sources.base import (
    AudioFormat,
    FrameSink,
    Source,
    SourceInfo,
    VideoFormat,
)
from avfuse.engine.sources.playout import PlayoutBuffer
from avfuse.engine.sources.synthetic_delivery import (
    ScenePlan,
    deliver_handed_over,
    deliver_paced,
)
from avfuse.errors import UsageError


class SceneMaterial(Protocol):
    """What a scene is drawn from (`avfuse.assets.demo.DemoAssets` is one)."""

    cards: dict[int, list[np.ndarray]]
    utterances: dict[int, list[np.ndarray]]
    backgrounds: list[np.ndarray]
    sample_rate: int


@dataclass(frozen=True, kw_only=True)
class SceneItem:
    """One digit in the scene: its card on screen and its utterance, in scene seconds.

    Attributes:
        label: the digit, "0".."9".
        card_start: when the card appears.
        card_end: when it goes away.
        speech_start: when the utterance begins (it lasts as long as the recording).
        variant: which card and utterance of the material to use (modulo what exists).
        center: card centre as fractions (x, y) of the frame.
        height_frac: card height as a fraction of the frame height.
        speech_label: the digit spoken, when it is not the card's (a mismatched scene, where
            the camera and the microphone disagree); None: the card's.
    """

    label: str
    card_start: float
    card_end: float
    speech_start: float
    variant: int = 0
    center: tuple[float, float] = (0.5, 0.5)
    height_frac: float = 0.55
    speech_label: str | None = None

    @property
    def spoken(self) -> str:
        """The digit spoken."""
        return self.label if self.speech_label is None else self.speech_label


@dataclass(frozen=True, kw_only=True)
class SceneScript:
    """What happens in the scene and when; `duration_s` is its total length."""

    items: tuple[SceneItem, ...]
    duration_s: float
    background: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        for it in self.items:
            if not (0 <= it.card_start < it.card_end <= self.duration_s):
                raise UsageError(
                    f"scene item '{it.label}' card [{it.card_start}, {it.card_end}] is outside "
                    f"the scene [0, {self.duration_s}]: fix the script times"
                )
            for label in (it.label, it.spoken):
                if label not in "0123456789" or len(label) != 1:
                    raise UsageError(f"scene item label '{label}' is not a digit: use '0'..'9'")

    @classmethod
    def default(
        cls,
        *,
        seed: int = 0,
        digits: str = "0123456789",
        card_s: float = 1.5,
        pause_s: tuple[float, float] = (0.6, 1.0),
        speech_delay_s: tuple[float, float] = (0.0, 0.0),
        lead_s: float = 0.6,
    ) -> SceneScript:
        """The demo scene: each digit once, in a seeded random order (~22 s for ten).

        Each card is shown `card_s` seconds, its utterance starts `speech_delay_s` after
        the card appears, and `pause_s` of background only separates the digits. By
        default speech starts with the card, as a clapperboard's sound starts with its
        picture: that is what the pipeline's A/V sync monitor measures an offset against.
        """
        rng = np.random.default_rng(seed)
        order = [digits[i] for i in rng.permutation(len(digits))]
        items = []
        t = lead_s
        for label in order:
            items.append(
                SceneItem(
                    label=label,
                    card_start=round(t, 3),
                    card_end=round(t + card_s, 3),
                    speech_start=round(t + rng.uniform(*speech_delay_s), 3),
                    variant=int(rng.integers(0, 1 << 16)),
                    center=(float(rng.uniform(0.35, 0.65)), float(rng.uniform(0.4, 0.6))),
                    height_frac=float(rng.uniform(0.45, 0.65)),
                )
            )
            t += card_s + rng.uniform(*pause_s)
        duration = round(t - pause_s[0] + lead_s, 3)
        return cls(items=tuple(items), duration_s=duration, background=int(seed), seed=seed)


def load_default_material() -> SceneMaterial:
    """The bundled demo material (held-out cards, voices and backgrounds)."""
    from avfuse.assets.demo import load_demo_assets

    return load_demo_assets()


def _resample_linear(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    if rate_in == rate_out:
        return x.astype(np.float32)
    n_out = int(round(len(x) * rate_out / rate_in))
    pos = np.arange(n_out) * (rate_in / rate_out)
    return np.interp(pos, np.arange(len(x)), x).astype(np.float32)


class SceneRender:
    """A script drawn with material: the distinct frames, the frame table and the audio."""

    def __init__(
        self,
        script: SceneScript,
        material: SceneMaterial,
        *,
        width: int = 320,
        height: int = 240,
        fps: float = 30.0,
        sample_rate: int = 16000,
        noise_dbfs: float = -55.0,
    ) -> None:
        import cv2

        from avfuse.data.scene import compose_frame

        self.script, self.fps, self.sample_rate = script, fps, sample_rate
        rng = np.random.default_rng([script.seed, 7])
        bg = material.backgrounds[script.background % len(material.backgrounds)]
        bg = cv2.resize(bg, (width, height), interpolation=cv2.INTER_AREA)
        self.frames = [bg]
        for it in script.items:
            cards = material.cards[int(it.label)]
            card = cards[it.variant % len(cards)]
            out = np.empty_like(bg)
            compose_frame(bg, card, center=it.center, height_frac=it.height_frac, out=out)
            self.frames.append(out)
        for f in self.frames:
            f.setflags(write=False)
        self.n_frames = int(math.floor(script.duration_s * fps + 1e-9))
        t = np.arange(self.n_frames) / fps
        self.frame_image = np.zeros(self.n_frames, np.int32)  # index into self.frames
        for i, it in enumerate(script.items):
            self.frame_image[(t >= it.card_start) & (t < it.card_end)] = i + 1
        # Scene audio at the nominal rate, in scene time: low noise plus the utterances.
        n = int(round(script.duration_s * sample_rate))
        self.audio = (rng.standard_normal(n) * 10 ** (noise_dbfs / 20)).astype(np.float32)
        self.speech: list[tuple[float, float]] = []
        for it in script.items:
            utts = material.utterances[int(it.spoken)]
            u = _resample_linear(utts[it.variant % len(utts)], material.sample_rate, sample_rate)
            s0 = int(round(it.speech_start * sample_rate))
            u = u[: max(0, n - s0)]
            self.audio[s0 : s0 + len(u)] += u
            self.speech.append((s0 / sample_rate, (s0 + len(u)) / sample_rate))

    def truth(self) -> list[dict[str, Any]]:
        """Ground truth: one record per digit, start/end in scene (stream) seconds; a
        mismatched item also has the spoken digit as ``speech_label``."""
        out = []
        for it, (s0, s1) in zip(self.script.items, self.speech, strict=True):
            rec: dict[str, Any] = {
                "label": it.label,
                "start": round(min(it.card_start, s0), 4),
                "end": round(max(it.card_end, s1), 4),
                "card": [it.card_start, it.card_end],
                "speech": [round(s0, 4), round(s1, 4)],
            }
            if it.spoken != it.label:  # a mismatched item: "label" is the card's
                rec["speech_label"] = it.spoken
            out.append(rec)
        return out

    def device_track(self, *, av_offset_s: float, drift_ppm: float) -> np.ndarray:
        """The audio as the (possibly drifting, late) device records it, one value a sample."""
        ratio = 1.0 + drift_ppm * 1e-6
        n = int(math.floor(self.script.duration_s * self.sample_rate * ratio))
        pos = np.arange(n) / ratio - av_offset_s * self.sample_rate
        track = np.interp(pos, np.arange(len(self.audio)), self.audio, left=0.0, right=0.0)
        if av_offset_s > 0:  # the late device hears background noise before the scene starts
            k = min(n, int(math.ceil(av_offset_s * self.sample_rate)))
            track[:k] = self.audio[:k]
        track = track.astype(np.float32)
        track.setflags(write=False)
        return track


def write_truth(truth: list[dict[str, Any]], path: str | Path) -> Path:
    """Write ground truth as a JSON list; returns the path."""
    path = Path(path)
    path.write_text(json.dumps(truth, indent=1) + "\n")
    return path


@dataclass(frozen=True, kw_only=True)
class SyntheticConfig:
    """How the scene is delivered (see the module docstring for the timing model).

    Attributes:
        sample_rate: audio rate delivered.
        width, height, fps: video frames delivered (bgr24).
        block_ms: audio block length.
        av_offset_ms: how much later the audio arrives than the video it belongs with.
        drift_ppm: audio device clock error; positive: the device samples fast.
        jitter_ms: largest arrival delay added to each host timestamp (uniform 0..jitter).
        drop_video: probability that a video frame is lost.
        drop_frames: indices of video frames that are lost.
        audio_gaps: scene-time intervals (s) in which no audio block is delivered.
        realtime: pace delivery to wall time (live=True) instead of as fast as possible.
        audio, video: deliver that modality.
        noise_dbfs: level of the background noise in the audio.
    """

    sample_rate: int = 16000
    width: int = 320
    height: int = 240
    fps: float = 30.0
    block_ms: float = 20.0
    av_offset_ms: float = 0.0
    drift_ppm: float = 0.0
    jitter_ms: float = 0.0
    drop_video: float = 0.0
    drop_frames: tuple[int, ...] = ()
    audio_gaps: tuple[tuple[float, float], ...] = ()
    realtime: bool = False
    audio: bool = True
    video: bool = True
    noise_dbfs: float = -55.0


#: accepted ranges of the SyntheticConfig disturbances (the same as the demo's options)
MAX_AV_OFFSET_MS = 10000.0
MAX_DRIFT_PPM = 10000.0
MAX_JITTER_MS = 1000.0


def _check_config(cfg: SyntheticConfig) -> None:
    """Refuse settings the scene cannot be delivered with (UsageError naming the field)."""
    for name in ("sample_rate", "width", "height"):
        v = getattr(cfg, name)
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v <= 0:
            raise UsageError(f"{name}={v!r} is not a positive integer: fix the option")
    reals = ("fps", "block_ms", "av_offset_ms", "drift_ppm", "jitter_ms", "drop_video")
    for name in (*reals, "noise_dbfs"):
        v = getattr(cfg, name)
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise UsageError(f"{name}={v!r} is not a finite number: fix the option")
    if cfg.fps <= 0 or cfg.block_ms <= 0:
        raise UsageError(f"fps={cfg.fps} and block_ms={cfg.block_ms} must be positive")
    ranges = (
        ("av_offset_ms", -MAX_AV_OFFSET_MS, MAX_AV_OFFSET_MS),
        ("drift_ppm", -MAX_DRIFT_PPM, MAX_DRIFT_PPM),
        ("jitter_ms", 0.0, MAX_JITTER_MS),
    )
    for name, lo, hi in ranges:
        v = getattr(cfg, name)
        if not lo <= v <= hi:
            raise UsageError(f"{name}={v:g} is not in [{lo:g}, {hi:g}]: fix the option")
    if not 0.0 <= cfg.drop_video < 1.0:
        raise UsageError(f"drop_video={cfg.drop_video} is not in [0, 1): give a probability")
    for gap in cfg.audio_gaps:
        if (
            not isinstance(gap, (tuple, list))
            or len(gap) != 2
            or not all(isinstance(t, numbers.Real) and math.isfinite(t) for t in gap)
            or not gap[0] < gap[1]
        ):
            raise UsageError(f"audio gap {gap!r} is not (start, end) with start < end, in seconds")
    frames = cfg.drop_frames
    if not all(isinstance(k, numbers.Integral) and not isinstance(k, bool) for k in frames):
        raise UsageError(f"drop_frames={cfg.drop_frames!r}: give frame indices (integers)")
    if not (cfg.audio or cfg.video):
        raise UsageError("audio=False and video=False: enable at least one modality")


class SyntheticSource(Source):
    """Delivers a `SceneScript` as a camera + microphone would (see module docstring)."""

    def __init__(
        self,
        *,
        script: SceneScript | None = None,
        material: SceneMaterial | None = None,
        name: str = "synthetic",
        **kw: Any,
    ) -> None:
        """Create the source; the scene is drawn at `open()`.

        Args:
            script: the scene; default `SceneScript.default(seed=0)`.
            material: cards, utterances and backgrounds; default the bundled demo assets.
            name: name used in status records.
            **kw: `SyntheticConfig` fields (sample_rate, av_offset_ms, drift_ppm, ...).
        """
        super().__init__(name=name)
        self.script = script or SceneScript.default()
        try:
            self.config = cfg = SyntheticConfig(**kw)
        except TypeError as e:
            raise UsageError(f"synthetic source: {e}: use the fields of SyntheticConfig") from None
        _check_config(cfg)
        self._material = material
        self.render: SceneRender | None = None
        #: host ns of scene time 0 (set when delivery starts)
        self.origin_ns: int | None = None
        #: the playout buffer a pipeline's thread delivers (realtime), once delivery started
        self.playout: PlayoutBuffer | None = None

    def _open(self) -> SourceInfo:
        cfg = self.config
        material = self._material if self._material is not None else load_default_material()
        self.render = SceneRender(
            self.script,
            material,
            width=cfg.width,
            height=cfg.height,
            fps=cfg.fps,
            sample_rate=cfg.sample_rate,
            noise_dbfs=cfg.noise_dbfs,
        )
        self._plan()
        block = self._block
        return SourceInfo(
            name=self.name,
            audio=AudioFormat(sample_rate=cfg.sample_rate, block_size=block) if cfg.audio else None,
            video=VideoFormat(width=cfg.width, height=cfg.height, fps=cfg.fps)
            if cfg.video
            else None,
            live=cfg.realtime,
        )

    def _plan(self) -> None:
        """Precompute the audio track, every timestamp, jitter and drop (all seeded)."""
        cfg, r = self.config, self.render
        assert r is not None  # _open built it; internal invariant
        rng = np.random.default_rng([self.script.seed, 11])
        ratio = 1.0 + cfg.drift_ppm * 1e-6
        self._block = max(1, int(round(cfg.block_ms * cfg.sample_rate / 1000)))
        self._track = r.device_track(av_offset_s=cfg.av_offset_ms / 1000, drift_ppm=cfg.drift_ppm)
        n_blocks = len(self._track) // self._block
        first = np.arange(n_blocks) * self._block
        self.audio_true_s = first / (cfg.sample_rate * ratio)  # first sample's true time
        self.audio_device_s = first / cfg.sample_rate
        keep = np.ones(n_blocks, bool)
        for g0, g1 in cfg.audio_gaps:
            keep &= ~(
                (self.audio_true_s + self._block / cfg.sample_rate > g0) & (self.audio_true_s < g1)
            )
        self.audio_kept = keep
        self.video_true_s = np.arange(r.n_frames) / cfg.fps
        drop = rng.random(r.n_frames) < cfg.drop_video
        drop[[k for k in cfg.drop_frames if 0 <= k < r.n_frames]] = True
        self.video_dropped = drop
        jit = cfg.jitter_ms * 1e6
        self._audio_jitter = rng.uniform(0, jit, n_blocks) if jit > 0 else np.zeros(n_blocks)
        self._video_jitter = rng.uniform(0, jit, r.n_frames) if jit > 0 else np.zeros(r.n_frames)
        # Made here, not when delivery starts: several scenes started together must
        # start their clocks together (their frames then share the pipeline's wake-ups)
        self._scene_plan = ScenePlan(
            block=self._block,
            block_s=self._block / (cfg.sample_rate * ratio),
            a_true=self.audio_true_s.tolist(),
            a_jit=self._audio_jitter.tolist(),
            a_dev=self.audio_device_s.tolist(),
            a_kept=self.audio_kept.tolist(),
            v_true=self.video_true_s.tolist(),
            v_jit=self._video_jitter.tolist(),
            v_dropped=self.video_dropped.tolist(),
            v_image=r.frame_image.tolist(),
            track=self._track,
            frames=r.frames,
        )

    def truth(self) -> list[dict[str, Any]]:
        """Ground truth of the scene ({label, start, end, card, speech} in scene seconds)."""
        self.open()
        assert self.render is not None  # set by open(); internal invariant
        return self.render.truth()

    def write_truth(self, path: str | Path) -> Path:
        """Write `truth()` as JSON to `path`."""
        return write_truth(self.truth(), path)

    def _run(self, sink: FrameSink) -> None:
        cfg, plan = self.config, self._scene_plan
        self.origin_ns = origin = time.monotonic_ns()
        if cfg.realtime:
            playout = self._offer_playout(sink)
            if playout is not None:
                deliver_handed_over(plan, playout, origin, audio=cfg.audio, video=cfg.video)
                return
        deliver_paced(
            plan,
            sink,
            self.stopping,
            origin,
            audio=cfg.audio,
            video=cfg.video,
            realtime=cfg.realtime,
        )

    def _offer_playout(self, sink: FrameSink) -> PlayoutBuffer | None:
        """A playout buffer the sink's consumer delivers from its own thread (a pipeline's
        stream takes it), or None: this thread then delivers each item itself."""
        take = getattr(sink, "take_playout", None)
        if take is None:
            return None
        playout = PlayoutBuffer(
            sink,
            self.stopping,
            sample_rate=self.config.sample_rate,
            not_awaited=getattr(sink, "frames_not_awaited", None),
        )
        if not take(playout):
            return None
        self.playout = playout
        return playout


def render_scene_to_file(
    script: SceneScript,
    path: str | Path,
    *,
    av_offset_ms: float = 0.0,
    material: SceneMaterial | None = None,
    width: int = 320,
    height: int = 240,
    fps: int = 30,
    sample_rate: int = 48000,
    noise_dbfs: float = -55.0,
) -> list[dict[str, Any]]:
    """Encode the scene to a media file (H.264 + AAC in mp4) with its truth beside it.

    The audio content is `av_offset_ms` later than the video it belongs with (both
    streams start at PTS 0), as a recording from a late microphone would be. The
    truth (scene seconds) is written to `path` with the suffix ".json".

    Returns:
        The ground truth.
    """
    import av

    path = Path(path)
    render = SceneRender(
        script,
        material if material is not None else load_default_material(),
        width=width,
        height=height,
        fps=fps,
        sample_rate=sample_rate,
        noise_dbfs=noise_dbfs,
    )
    track = render.device_track(av_offset_s=av_offset_ms / 1000, drift_ppm=0.0)
    with av.open(str(path), mode="w") as out:
        # a keyframe every second, as live streams have: a receiver that joins (or loses
        # packets) mid-stream can decode again within a second
        vs = out.add_stream(
            "libx264", rate=fps, options={"preset": "ultrafast", "crf": "20", "g": str(fps)}
        )
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        aus = out.add_stream("aac", rate=sample_rate, layout="mono")
        step = 1024
        na = 0
        for k in range(render.n_frames):
            frame = av.VideoFrame.from_ndarray(render.frames[render.frame_image[k]], format="bgr24")
            frame.pts = k
            out.mux(vs.encode(frame))
            while na * step < len(track) and na * step / sample_rate <= (k + 1) / fps:
                chunk = np.ascontiguousarray(track[na * step : (na + 1) * step])[None, :]
                af = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
                af.sample_rate, af.pts = sample_rate, na * step
                out.mux(aus.encode(af))
                na += 1
        out.mux(vs.encode(None))
        out.mux(aus.encode(None))
    truth = render.truth()
    write_truth(truth, path.with_suffix(".json"))
    return truth
