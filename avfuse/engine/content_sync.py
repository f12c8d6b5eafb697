"""Content sync monitor: the A/V offset from a learned picture-sound correspondence.

The onset monitor (`avfuse.engine.sync`) needs cues that start together (a clapperboard,
a card and its digit). A talking face has few such onsets but is time-locked all along:
the mouth opens as the voice gets loud. A small model (`avfuse.models.content_sync`,
bundled as ONNX) embeds a stack of frames and the 200 ms of audio around an instant so
that their dot product is high when they belong together in time. This monitor scores,
over the last `window_s` of the stream, every candidate lag `lag_min_ms`..`lag_max_ms`
(10 ms apart) around the applied offset: the mean over frames of the score of the frame
stack with the audio that lag later. A time lock makes one sharp peak.

Verdict, from the latest evaluation (every `every_s` of video); a distinct peak counts
only once `confirm` evaluations in a row put it within 20 ms of the previous one:
    "not enough cues yet"   less than a whole window of frames with audio scored;
    "no usable sync cues"   the picture is still, the sound silent, or the peak is not
                            distinct: fewer than `min_psr` sidelobe standard deviations
                            above the lags more than 100 ms away, or less than
                            `min_contrast` above their median, or at the edge of the range;
    "misaligned"            a distinct peak outside the EBU R37 tolerance (audio more than
                            `late_ms` late or more than `early_ms` early): one `av_sync`
                            warning, again only after the estimate moved by more than
                            `early_ms` or the stream was in tolerance in between;
    "ok"                    a distinct peak inside the tolerance.

The estimate is the peak refined by a parabola through its neighbours; its confidence is
the peak's height in sidelobe standard deviations (psr). With `auto_offset`, each accepted
estimate moves the applied offset towards it by at most `slew_ms_per_s` per second of
stream (deadband `deadband_ms`), so windows slide smoothly and no timestamp jumps. The
estimate is of the total audio delay (applied offset + residual): what the audio is
scored against moves with the applied offset, the content does not, so correcting does
not feed back into the measurement.

Cost. `push_video` and `push_audio` copy into preallocated rings. One evaluation runs the
model once on the frames and audio columns new since the last (about 8 and 25 at 25 fps,
4 Hz) and one matrix product over the window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avfuse.engine.content_features import (
    AUDIO_COLS,
    FRAME_SIZE,
    HOP_S,
    STACK,
    LogMel,
    gray_small,
    standardise_stacks,
)
from avfuse.engine.content_rings import AudioColumns, FrameRing
from avfuse.engine.records import WarningRecord
from avfuse.errors import UsageError

#: the bundled model (made by `python -m avfuse.models.content_sync OUT_DIR`)
DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "assets" / "content_sync" / "model.onnx"
STATES = ("ok", "misaligned", "no usable sync cues", "not enough cues yet")


@dataclass(frozen=True, kw_only=True)
class ContentSyncConfig:
    """Settings of the content sync monitor (see the module docstring).

    Attributes:
        lag_min_ms, lag_max_ms: residual lags scored around the applied offset.
        window_s: stream time the estimate is made over.
        every_s: time between evaluations.
        late_ms, early_ms: EBU R37 tolerance (audio late, audio early).
        min_psr: least peak height in sidelobe standard deviations.
        min_contrast: least peak height above the sidelobe median (score units).
        confirm: evaluations in a row whose peaks agree within 20 ms before one is accepted
            (a chance peak on content without cues comes and goes).
        min_motion: least mean absolute frame difference (fraction of the frame's spread).
        auto_offset: correct the applied offset towards the estimate.
        slew_ms_per_s: fastest change of the applied offset.
        deadband_ms: residuals this small are left alone.
        model: ONNX file (None: the bundled one).
    """

    lag_min_ms: float = -350.0
    lag_max_ms: float = 350.0
    window_s: float = 3.0
    every_s: float = 0.25
    late_ms: float = 60.0
    early_ms: float = 40.0
    min_psr: float = 4.0
    min_contrast: float = 0.1
    confirm: int = 4
    min_motion: float = 0.005
    auto_offset: bool = False
    slew_ms_per_s: float = 50.0
    deadband_ms: float = 15.0
    model: str | None = None

    def __post_init__(self) -> None:
        for ok, what in (
            (self.lag_min_ms < -100 < 100 < self.lag_max_ms, "lags must span -100..100 ms"),
            (self.lag_max_ms - self.lag_min_ms <= 2000, "the lag range must be <= 2000 ms"),
            (1.0 <= self.window_s <= 60.0, "window_s must be in 1..60"),
            (0.05 <= self.every_s <= self.window_s, "every_s must be in 0.05..window_s"),
            (self.late_ms > 0 and self.early_ms > 0, "late_ms and early_ms must be > 0"),
            (self.min_psr > 0 and self.min_contrast >= 0, "min_psr > 0, min_contrast >= 0"),
            (self.slew_ms_per_s > 0 and self.deadband_ms >= 0, "slew > 0 and deadband >= 0"),
        ):
            if not ok:
                raise UsageError(f"content sync monitor: {what}: fix ContentSyncConfig")


@dataclass(frozen=True, kw_only=True)
class ContentEstimate:
    """One evaluation over the window.

    Attributes:
        accepted: a distinct peak was found.
        residual_ms: the peak's lag beyond the applied offset (None when not accepted).
        total_ms: applied offset + residual: the audio delay the content shows.
        psr: peak height in sidelobe standard deviations (the confidence).
        contrast: peak height above the sidelobe median.
        reason: why not accepted ("" when accepted).
        frames: frames scored.
        stream_time: time of the newest frame scored (s).
    """

    accepted: bool
    residual_ms: float | None
    total_ms: float | None
    psr: float
    contrast: float
    reason: str
    frames: int
    stream_time: float


class ContentSyncMonitor:
    """Online estimate of one stream's A/V offset from time-locked content.

    Args:
        configured_offset_ms: the offset the pipeline starts with (--av-offset-ms).
        sample_rate: audio rate of `push_audio`.
        config: settings.
        source: stream name for the records.
        model: model id for the records.
    """

    def __init__(
        self,
        *,
        configured_offset_ms: float,
        sample_rate: int,
        config: ContentSyncConfig | None = None,
        source: str = "stream",
        model: str | None = None,
    ) -> None:
        import onnxruntime as ort

        self.config = cfg = config or ContentSyncConfig()
        path = Path(cfg.model) if cfg.model else DEFAULT_MODEL
        if not path.is_file():
            raise UsageError(f"content sync model {path} not found: pass an ONNX file")
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        self.configured_offset_ms = configured_offset_ms
        self.applied_offset_ms = configured_offset_ms
        self.source, self.model = source, model
        self._mel = LogMel(sample_rate)
        span = cfg.window_s + (cfg.lag_max_ms - cfg.lag_min_ms) / 1e3 + abs(configured_offset_ms)
        self._frames = FrameRing(capacity=int((cfg.window_s + 2.0) * 60) + STACK)
        self._audio = AudioColumns(
            self._mel, capacity_cols=int((span + 4.0) / HOP_S) + AUDIO_COLS, max_push_s=2.0
        )
        self._small = np.zeros((FRAME_SIZE, FRAME_SIZE), np.float32)
        self._next_eval = -math.inf
        self._t_video = -math.inf
        self.evaluations = 0
        self.last: ContentEstimate | None = None
        self._accepted: ContentEstimate | None = None
        self._reported: float | None = None
        self._t_prev_eval: float | None = None
        self.offset_changes = 0
        self._run = 0  # evaluations in a row with a distinct peak near `_run_lag`
        self._run_lag: float | None = None

    # ------------------------------------------------------------------ inputs
    def push_video(self, t: float, image: np.ndarray) -> None:
        """A frame shown at stream time `t` (s): BGR uint8 (H, W, 3), or (C, H, W) float."""
        gray_small(image, self._small)
        self._frames.push(t, self._small)
        self._t_video = t

    def push_audio(self, t_end: float, samples: np.ndarray) -> None:
        """Audio samples whose last one is at stream time `t_end` (s), no offset applied
        (the content's own time). Samples already seen are skipped, so overlapping windows
        can be pushed as they are."""
        self._audio.push(t_end, samples)

    # ------------------------------------------------------------------ evaluation
    def poll(self) -> list[WarningRecord]:
        """Evaluate if `every_s` of video passed since the last time; a warning when
        misaligned (see the module docstring)."""
        if self._t_video < self._next_eval:
            return []
        self._next_eval = self._t_video + self.config.every_s
        self._embed_new()
        est = self._estimate()
        if est is None:
            return []
        self.evaluations += 1
        self.last = est
        if est.accepted:
            self._accepted = est
            self._steer(est)
        if self._t_prev_eval is None or not est.accepted:
            self._t_prev_eval = est.stream_time
        out = self._warning(est) if self._misaligned(est) else []
        if est.accepted and not self._misaligned(est):
            self._reported = None  # back in tolerance: a later misalignment warns again
        return out

    def _embed_new(self) -> None:
        """Run the model on the frame stacks and audio columns that are new and complete."""
        fr, au = self._frames, self._audio
        au.update()
        vi = fr.pending(STACK // 2)
        ai = au.pending(AUDIO_COLS // 2)
        if vi.size == 0 and ai.size == 0:
            return
        video = fr.stacks(vi, STACK) if vi.size else np.zeros((1, STACK, FRAME_SIZE, FRAME_SIZE))
        standardise_stacks(video)
        if ai.size:
            audio = au.windows(ai)
        else:
            audio = np.full((1, self._mel.filters.shape[0], AUDIO_COLS), -2.0, np.float32)
        v, a = self._session.run(
            None, {"video": video.astype(np.float32), "audio": audio.astype(np.float32)}
        )
        if vi.size:
            fr.set_embeddings(vi, v)
        if ai.size:
            au.set_embeddings(ai, a)

    def _estimate(self) -> ContentEstimate | None:
        cfg = self.config
        fr, au = self._frames, self._audio
        times, v = fr.embedded(cfg.window_s)
        if times.size == 0:
            return None
        t_now = float(times[-1])
        lo_s = (self.applied_offset_ms + cfg.lag_min_ms) / 1e3
        hi_s = (self.applied_offset_ms + cfg.lag_max_ms) / 1e3
        col_t, a = au.embedded()
        if a.shape[0] < 2:
            return None
        first_t, last_t = float(col_t[0]), float(col_t[-1])
        ok = (times + lo_s >= first_t) & (times + hi_s <= last_t)
        times, v = times[ok], v[ok]
        fps = fr.rate()
        need = 0.75 * cfg.window_s * fps if fps > 0 else math.inf
        if times.size < need:
            return None if self.last is None else self._reject("not enough cues yet", 0, t_now)
        if fr.motion(times[0]) < cfg.min_motion:
            return self._reject("the picture is still", times.size, t_now)
        if not au.has_sound(times[0] + lo_s, times[-1] + hi_s):
            return self._reject("the sound is silent", times.size, t_now)
        lags = np.arange(cfg.lag_min_ms / 1e3, cfg.lag_max_ms / 1e3 + 1e-9, HOP_S)
        s = v @ a.T  # (frames, columns)
        tau = times[:, None] + (self.applied_offset_ms / 1e3 + lags)[None, :]
        pos = np.interp(tau, col_t, np.arange(col_t.size, dtype=np.float64))
        f = np.clip(np.floor(pos).astype(np.int64), 0, a.shape[0] - 2)
        w = pos - f
        rows = np.arange(times.size)[:, None]
        curve = ((1 - w) * s[rows, f] + w * s[rows, f + 1]).mean(axis=0)
        return self._judge(curve, lags * 1e3, times.size, t_now)

    def _judge(self, curve: np.ndarray, lags_ms: np.ndarray, n: int, t: float) -> ContentEstimate:
        cfg = self.config
        j = int(np.argmax(curve))
        side = np.abs(lags_ms - lags_ms[j]) > 100.0
        sl = curve[side]
        psr = float((curve[j] - sl.mean()) / (sl.std() + 1e-6))
        contrast = float(curve[j] - np.median(sl))
        if j == 0 or j == curve.size - 1:
            return self._reject("the peak is at the edge of the lag range", n, t, psr, contrast)
        if psr < cfg.min_psr or contrast < cfg.min_contrast:
            return self._reject("no distinct peak", n, t, psr, contrast)
        lag = float(lags_ms[j])
        near = self._run_lag is not None and abs(lag - self._run_lag) <= 20.0
        self._run = self._run + 1 if near else 1
        self._run_lag = lag
        if self._run < cfg.confirm:
            return self._reject("the peak is not yet stable", n, t, psr, contrast)
        c0, c1, c2 = curve[j - 1], curve[j], curve[j + 1]
        den = c0 - 2 * c1 + c2
        d = 0.5 * (c0 - c2) / den if den < 0 else 0.0
        residual = float(lags_ms[j] + d * (lags_ms[1] - lags_ms[0]))
        return ContentEstimate(
            accepted=True,
            residual_ms=residual,
            total_ms=self.applied_offset_ms + residual,
            psr=psr,
            contrast=contrast,
            reason="",
            frames=n,
            stream_time=t,
        )

    def _reject(
        self, reason: str, n: int, t: float, psr: float = 0.0, contrast: float = 0.0
    ) -> ContentEstimate:
        if reason != "the peak is not yet stable":
            self._run, self._run_lag = 0, None
        return ContentEstimate(
            accepted=False,
            residual_ms=None,
            total_ms=None,
            psr=psr,
            contrast=contrast,
            reason=reason,
            frames=n,
            stream_time=t,
        )

    # ------------------------------------------------------------------ verdicts
    def _steer(self, est: ContentEstimate) -> None:
        """Move the applied offset towards the estimate, bounded per second (auto_offset)."""
        cfg = self.config
        t_prev = self._t_prev_eval if self._t_prev_eval is not None else est.stream_time
        self._t_prev_eval = est.stream_time
        if not cfg.auto_offset or est.residual_ms is None:
            return
        if abs(est.residual_ms) <= cfg.deadband_ms:
            return
        dt = max(0.0, est.stream_time - t_prev)
        limit = cfg.slew_ms_per_s * dt
        step = max(-limit, min(limit, est.residual_ms))
        if step:
            self.applied_offset_ms += step
            self.offset_changes += 1

    def _misaligned(self, est: ContentEstimate) -> bool:
        r = est.residual_ms
        cfg = self.config
        return est.accepted and r is not None and (r > cfg.late_ms or r < -cfg.early_ms)

    def _warning(self, est: ContentEstimate) -> list[WarningRecord]:
        r, total = est.residual_ms, est.total_ms
        assert r is not None and total is not None  # _misaligned checked
        if self._reported is not None and abs(r - self._reported) <= self.config.early_ms:
            return []
        self._reported = r
        side = "late" if r > 0 else "early"
        fix = (
            "correcting (--auto-offset)"
            if self.config.auto_offset
            else (f"set --av-offset-ms {total:.0f}")
        )
        message = (
            f"audio is about {abs(r):.0f} ms {side} beyond --av-offset-ms "
            f"{total - r:g} (EBU R37 allows {self.config.late_ms:g} late, "
            f"{self.config.early_ms:g} early; peak {est.psr:.1f} sidelobe sd): {fix}"
        )
        return [
            WarningRecord(
                stream=self.source,
                model=self.model,
                stream_time=round(est.stream_time, 3),
                source=self.source,
                kind="av_sync",
                message=message,
                data={
                    "residual_offset_ms": round(r, 1),
                    "estimated_offset_ms": round(total, 1),
                    "confidence_psr": round(est.psr, 2),
                    "suggested_av_offset_ms": round(total, 1),
                    "method": "content",
                },
            )
        ]

    @property
    def status(self) -> str:
        """The verdict of the latest evaluation (one of `STATES`)."""
        est = self.last
        if est is None or est.reason == "not enough cues yet":
            return "not enough cues yet"
        if not est.accepted:
            return "no usable sync cues"
        return "misaligned" if self._misaligned(est) else "ok"

    @property
    def residual_ms(self) -> float | None:
        """The latest accepted residual (ms), None when none was accepted."""
        return None if self._accepted is None else self._accepted.residual_ms

    def summary(self) -> dict[str, Any]:
        """For the run's summary record."""
        est, last = self._accepted, self.last
        return {
            "method": "content",
            "status": self.status,
            "reason": "" if last is None else last.reason,
            "residual_offset_ms": None if est is None else round(est.residual_ms or 0.0, 1),
            "estimated_offset_ms": None if est is None else round(est.total_ms or 0.0, 1),
            "confidence_psr": None if last is None else round(last.psr, 2),
            "configured_offset_ms": self.configured_offset_ms,
            "applied_offset_ms": round(self.applied_offset_ms, 1),
            "evaluations": self.evaluations,
        }


__all__ = ["DEFAULT_MODEL", "STATES", "ContentEstimate", "ContentSyncConfig", "ContentSyncMonitor"]
