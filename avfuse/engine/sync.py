"""A/V sync monitor: measures the residual audio delay from content, flags misalignment.

Clocks cannot see a device latency nobody configured: the samples are stamped
correctly, they simply belong to earlier video. Content can: a visual change and
the sound that goes with it start together (a clapperboard, a card shown while its
digit is spoken, lips and voice). The monitor detects visual onsets (spikes of the
mean absolute difference between consecutive pre-processed frames) and audio onsets
(a rise of the frame energy, from the log-mel columns the pipeline computed anyway),
pairs each visual onset with the first audio onset inside a search window, and keeps
the median lag of the recent pairs:

    residual_ms > 0   audio still arrives later than the configured --av-offset-ms says
    residual_ms < 0   audio arrives earlier

When |residual| exceeds `tolerance_ms` over at least `min_pairs` pairs it emits one
warning record naming the offset to configure (and again only if the estimate moves
by more than the tolerance). Streaming shape: `push(...) -> list[record]`. No per-call
allocation: state lives in preallocated arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, kw_only=True)
class SyncConfig:
    """Thresholds of the sync monitor.

    Attributes:
        tolerance_ms: residual offset beyond which a warning is raised.
        min_pairs: onset pairs needed before judging.
        window_pairs: most recent pairs the median is taken over.
        search_ms: an audio onset pairs with a visual onset if it starts within
            [-search_ms/2, +search_ms] of it.
        audio_rise_db: energy rise over the running floor that counts as an audio onset.
        video_rise: mean absolute frame difference, as a fraction of full brightness, that
            counts as a visual onset.
        refractory_ms: minimum spacing between two onsets of one modality.
        max_spread_ms: judge only when the recent lags agree: their median absolute
            deviation must be below this (spurious pairs scatter, true ones do not).
        silence_db: frame energies below this are digital silence or missing samples.
    """

    tolerance_ms: float = 80.0
    min_pairs: int = 4
    window_pairs: int = 9
    search_ms: float = 600.0
    audio_rise_db: float = 12.0
    video_rise: float = 0.04
    refractory_ms: float = 400.0
    max_spread_ms: float = 40.0
    silence_db: float = -90.0


class SyncMonitor:
    """Online estimate of the residual A/V offset of one stream.

    Args:
        configured_offset_ms: the offset the pipeline already applies (for the message).
        hop_s: time between log-mel columns.
        image_shape: (C, H, W) of the pre-processed frames.
        config: thresholds.
        source: stream name for the records.
        video_scale: brightness units per unit of the pre-processed image (the model's
            normalisation std), so thresholds are in fractions of full brightness.
    """

    def __init__(
        self,
        *,
        configured_offset_ms: float,
        hop_s: float,
        image_shape: tuple[int, ...],
        config: SyncConfig | None = None,
        source: str = "stream",
        video_scale: float = 1.0,
    ) -> None:
        self.config = cfg = config or SyncConfig()
        self.configured_offset_ms = configured_offset_ms
        self.hop_s = hop_s
        self.source = source
        self.video_scale = video_scale
        self._prev = np.zeros(image_shape, np.float32)
        self._diff = np.zeros(image_shape, np.float32)
        self._have_prev = False
        self._video_quiet = True
        self._last_video_onset = -1e9
        self._last_audio_onset = -1e9
        self._audio_t = -1e9  # time of the newest audio column seen
        self._floor = None
        self._pending = np.full(16, np.nan)  # visual onsets waiting for their audio onset
        self._audio_onsets = np.full(16, np.nan)  # recent audio onsets (a ring)
        self._ai = 0
        self._pi = 0
        self._lags = np.full(cfg.window_pairs, np.nan)
        self._li = 0
        self.pairs = 0
        self._reported: float | None = None

    # ------------------------------------------------------------------ inputs
    def push_video(self, t: float, image: np.ndarray) -> None:
        """A pre-processed frame (C, H, W) shown at stream time `t` (s)."""
        if self._have_prev:
            np.subtract(image, self._prev, out=self._diff)
            np.abs(self._diff, out=self._diff)
            activity = float(self._diff.mean()) * self.video_scale
            if activity > self.config.video_rise:
                if (
                    self._video_quiet
                    and t - self._last_video_onset > self.config.refractory_ms / 1e3
                ):
                    self._last_video_onset = t
                    self._pending[self._pi % self._pending.size] = t
                    self._pi += 1
                self._video_quiet = False
            elif activity < self.config.video_rise / 2:
                self._video_quiet = True
        np.copyto(self._prev, image)
        self._have_prev = True

    def push_audio(self, t_end: float, energy_db: np.ndarray) -> None:
        """Energy (dB) of consecutive log-mel columns; the last column ends at `t_end` (s),
        in video time (the configured offset already applied). Columns already seen are
        skipped, so overlapping windows can be pushed as they are."""
        n = energy_db.shape[0]
        for j in range(n):
            t = t_end - (n - 1 - j) * self.hop_s
            if t <= self._audio_t + 1e-9:
                continue
            self._audio_t = t
            e = float(energy_db[j])
            if e < self.config.silence_db:
                continue  # digital silence or missing samples: neither onset nor noise floor
            if self._floor is None:
                self._floor = e
            if (
                e - self._floor > self.config.audio_rise_db
                and t - self._last_audio_onset > self.config.refractory_ms / 1e3
            ):
                self._last_audio_onset = t
                self._audio_onsets[self._ai % self._audio_onsets.size] = t
                self._ai += 1
            # the floor follows quiet quickly and loud slowly (a noise-floor tracker)
            rate = 0.2 if e < self._floor else 0.01
            self._floor += rate * (e - self._floor)

    # ------------------------------------------------------------------ output
    def poll(self) -> list[dict[str, Any]]:
        """Pair onsets that can be judged now; return a warning record when misaligned."""
        cfg = self.config
        horizon = cfg.search_ms / 1e3
        for k in range(self._pending.size):
            v = self._pending[k]
            if np.isnan(v) or self._audio_t < v + horizon:
                continue  # not judgeable until audio past the search window has arrived
            lo, hi = v - horizon / 2, v + horizon
            cand = self._audio_onsets[(self._audio_onsets >= lo) & (self._audio_onsets <= hi)]
            if cand.size:
                self._lags[self._li % self._lags.size] = float(cand.min()) - v
                self._li += 1
                self.pairs += 1
            self._pending[k] = np.nan
        est = self.residual_ms
        if est is None or abs(est) <= cfg.tolerance_ms:
            return []
        if self._reported is not None and abs(est - self._reported) <= cfg.tolerance_ms:
            return []
        self._reported = est
        suggest = self.configured_offset_ms + est
        side = "later" if est > 0 else "earlier"
        return [
            {
                "type": "warning",
                "kind": "av_sync",
                "source": self.source,
                "residual_offset_ms": round(est, 1),
                "pairs": min(self.pairs, cfg.window_pairs),
                "message": f"audio arrives about {abs(est):.0f} ms {side} than the configured "
                f"--av-offset-ms {self.configured_offset_ms:g} accounts for (measured "
                f"over {min(self.pairs, cfg.window_pairs)} onset pairs): set "
                f"--av-offset-ms {suggest:.0f}",
            }
        ]

    @property
    def residual_ms(self) -> float | None:
        """Median residual offset (ms) over the recent pairs, None before `min_pairs`."""
        if self.pairs < self.config.min_pairs:
            return None
        lags = self._lags[~np.isnan(self._lags)]
        med = float(np.median(lags))
        if float(np.median(np.abs(lags - med))) * 1e3 > self.config.max_spread_ms:
            return None
        return med * 1e3

    def summary(self) -> dict[str, Any]:
        """For the run's summary record."""
        r = self.residual_ms
        return {
            "residual_offset_ms": None if r is None else round(r, 1),
            "pairs": self.pairs,
            "configured_offset_ms": self.configured_offset_ms,
        }
