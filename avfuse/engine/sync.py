"""A/V sync monitor: measures the residual audio delay from content, and warns only when sure.

Clocks cannot see a device latency nobody configured; content can, when it has
time-locked cues: a visual change and a sound that start together (a clapperboard, a
card shown while its digit is spoken). Much content has none: a speaker starts 150-400 ms
after the picture changes, and no fixed lag relates the two. Pairing each visual onset
with the next sound and taking a median (the earlier design) reported whatever lag such
speech had, and advised an offset (``--av-offset-ms 526``) that breaks a synchronised file.

Onsets. Visual: the mean absolute difference of consecutive frames (fraction of full
brightness; the pipeline feeds a 32x24 luma thumbnail of every frame,
kernels/thumbnail.py) rises past `video_rise`; not after a gap in the frames (not timed). Audio: a
mel column's energy rises `audio_rise_db` over a running floor, timed at the column where
the rise began. Both have hysteresis (the sound must fall to within a quarter of the rise,
so a tone that ends in a click is one onset) and a refractory time.

Estimate. A pair is timed to about w = max(match_ms, (frame interval + mel hop) / 2).
Over lags `lag_min_ms`..`lag_max_ms` the monitor counts how many of the last
`window_onsets` judged visual onsets have an audio onset within +-w, and accepts the best
lag L only when (1) at least `min_pairs` match, and `min_fraction` of the visual onsets
with any sound in the lag range (a card taken away has none); (2) that many matches are
unlikely without a time lock (<= `chance_alpha`) under the likelier of: audio onsets as
dense as they are but independent of the picture (binomial, over the lag cells), and the
pairs within +-`flank_ms` of L spread evenly there (scan statistic, Naus 1982) - speech
at a random 150-400 ms packs pairs near those lags without a sharp peak and fails this;
(3) no lag further than 2w away has more than `ambiguity` times the matches (a periodic
cue). The price is evidence: about nine time-locked cards of ten on the demo scene, seven
flashes of a clean clapperboard.

The estimate is the median matched lag (the summary keeps the last accepted one). Its
95 % interval is the median's standard error (1.96 * 1.2533 * 1.4826 * MAD / sqrt(n)) and
a hop either side, plus a frame interval above: a cue between frames is seen up to a
frame late. The median is not shifted by half a frame: a cue that starts with its frame
(a rendered clapperboard) is seen on time.

Verdict. "misaligned" (one `av_sync` warning, again only if the estimate moves by more
than the tolerance) when |estimate| > `tolerance_ms` and the interval lies wholly
outside +-`tolerance_ms`; "ok" for any other accepted estimate; "no usable sync cues"
when `min_pairs` visual onsets had sounds in their lag range and no lag passed; "not
enough cues yet" before.

Cost. `push_video` / `push_audio` allocate nothing (preallocated arrays; seen columns are
skipped by arithmetic). `poll` is O(1) unless a visual onset became judgeable (audio to
the end of its lag range arrived), at most four times a second; then an estimate over at
most `window_onsets` onsets costs about 0.2 ms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from avfuse.engine.records import WarningRecord
from avfuse.errors import UsageError


@dataclass(frozen=True, kw_only=True)
class SyncConfig:
    """Thresholds of the sync monitor (see the module docstring for how they are used).

    Attributes:
        tolerance_ms: residual offset beyond which the stream is misaligned.
        match_ms: least half-width of the window in which an audio onset matches a lag.
        lag_min_ms, lag_max_ms: lags searched (audio later than video is positive).
        lag_step_ms: spacing of the lag grid.
        min_pairs: matched onsets needed before an estimate is accepted.
        min_fraction: share of the visual onsets with an audio onset in the lag range
            that must match the accepted lag.
        chance_alpha: largest accepted probability that the matches are chance.
        flank_ms: width of the lags on each side of the peak that measure the local
            density of audio onsets after visual ones.
        ambiguity: largest ratio of the second peak's matches to the first's.
        window_onsets: most recent visual onsets the estimate is made over.
        audio_rise_db: energy rise over the running floor that is an audio onset.
        video_rise: mean absolute frame difference (fraction of full brightness) that
            is a visual onset.
        audio_refractory_ms, video_refractory_ms: least spacing of two onsets.
        silence_db: frame energies below this are digital silence or missing samples.
    """

    tolerance_ms: float = 80.0
    match_ms: float = 20.0
    lag_min_ms: float = -300.0
    lag_max_ms: float = 600.0
    lag_step_ms: float = 2.0
    min_pairs: int = 6
    min_fraction: float = 0.6
    chance_alpha: float = 1e-4
    flank_ms: float = 150.0
    ambiguity: float = 0.5
    window_onsets: int = 32
    audio_rise_db: float = 12.0
    video_rise: float = 0.015
    audio_refractory_ms: float = 100.0
    video_refractory_ms: float = 250.0
    silence_db: float = -90.0

    def __post_init__(self) -> None:
        for ok, what in (
            (self.tolerance_ms > 0, "tolerance_ms must be > 0"),
            (self.match_ms > 0 and self.lag_step_ms > 0, "match_ms and lag_step_ms must be > 0"),
            (self.lag_min_ms < self.lag_max_ms, "lag_min_ms must be < lag_max_ms"),
            (self.min_pairs >= 2, "min_pairs must be >= 2"),
            (0 < self.min_fraction <= 1, "min_fraction must be in (0, 1]"),
            (0 < self.chance_alpha < 1, "chance_alpha must be in (0, 1)"),
            (0 < self.ambiguity <= 1, "ambiguity must be in (0, 1]"),
            (self.window_onsets >= self.min_pairs, "window_onsets must be >= min_pairs"),
        ):
            if not ok:
                raise UsageError(f"sync monitor: {what}: fix SyncConfig")


def _binomial_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    if k <= 0:
        return 1.0
    if p <= 0.0:
        return 0.0
    return min(1.0, sum(math.comb(n, j) * p**j * (1.0 - p) ** (n - j) for j in range(k, n + 1)))


def _scan_p(k: int, n: int, p: float) -> float:
    """P(some window of length p holds >= k of n points uniform on [0, 1]) (Naus 1982)."""
    if k <= n * p + 1 or p >= 1.0:
        return 1.0
    pmf = math.comb(n, k) * p**k * (1.0 - p) ** (n - k)
    return min(1.0, (k / p - n + 1) * pmf + 2 * _binomial_sf(k + 1, n, p))


@dataclass(frozen=True, kw_only=True)
class LagEstimate:
    """The outcome of one estimate over the recent onsets.

    Attributes:
        accepted: whether the best lag passed every test.
        lag_ms: median matched lag (ms); None when no lag was found at all.
        ci_ms: 95 % interval of `lag_ms`.
        pairs: onsets matched at the best lag.
        candidates: visual onsets with an audio onset anywhere in the lag range.
        p_chance: probability of so many matches without a time lock (the likelier null).
        second: matches at the best lag further than 2w from this one.
    """

    accepted: bool
    lag_ms: float | None
    ci_ms: tuple[float, float] | None
    pairs: int
    candidates: int
    p_chance: float
    second: int


def match_half_width(cfg: SyncConfig, frame_s: float, hop_s: float) -> float:
    """Half-width (s) of the window in which an audio onset matches a lag: the timing
    resolution of one pair (a visual onset is known to a frame, an audio one to a hop)."""
    return max(cfg.match_ms / 1e3, 0.5 * (frame_s + hop_s))


def estimate_lag(
    video: np.ndarray,
    audio: np.ndarray,
    *,
    frame_s: float,
    hop_s: float,
    span_s: float,
    cfg: SyncConfig,
) -> LagEstimate:
    """Find the lag at which the visual onsets `video` meet the audio onsets `audio` (s).

    Args:
        video: visual onset times, increasing.
        audio: audio onset times, increasing, covering every lag of every visual onset.
        frame_s: video frame interval.
        hop_s: mel hop.
        span_s: length of audio (s) `audio` was found in (for the onset density).
        cfg: thresholds.
    """
    w_s = match_half_width(cfg, frame_s, hop_s)
    lo, hi = cfg.lag_min_ms / 1e3, cfg.lag_max_ms / 1e3
    flank = cfg.flank_ms / 1e3
    audio = _thinned(audio, 2 * w_s)
    d = audio[None, :] - video[:, None]
    near = (d >= lo - w_s - flank) & (d <= hi + w_s + flank)
    vi, ai = np.nonzero(near)  # row-major: vi increases
    dd = d[vi, ai]
    in_range = (dd >= lo - w_s) & (dd <= hi + w_s)
    vr, lags_r = vi[in_range], dd[in_range]
    candidates = int(np.count_nonzero(np.diff(vr))) + 1 if vr.size else 0
    if candidates == 0:
        return LagEstimate(
            accepted=False, lag_ms=None, ci_ms=None, pairs=0, candidates=0, p_chance=1.0, second=0
        )
    # audio onsets are more than 2w apart, so a visual onset has at most one partner within
    # +-w of any lag, and the matches at a lag are the pairs within +-w of it
    grid = np.arange(lo, hi + 1e-9, cfg.lag_step_ms / 1e3)
    srt = np.sort(lags_r)
    counts = np.searchsorted(srt, grid + w_s, "right") - np.searchsorted(srt, grid - w_s, "left")
    peak = np.flatnonzero(counts == counts.max())
    centre = float(grid[peak[peak.size // 2]])
    lags = lags_r[np.abs(lags_r - centre) <= w_s]
    centre = _median(lags)  # re-centre the window on the data, match once more
    lags = lags_r[np.abs(lags_r - centre) <= w_s]
    n = int(lags.size)
    med = _median(lags)
    mad = _median(np.abs(lags - med))
    # a cue between two frames is seen up to one frame late, so the lag can be up to one
    # frame longer than measured (none for a cue that starts with its frame)
    sem = 1.96 * 1.2533 * 1.4826 * mad / math.sqrt(n)
    ci = (med - sem - hop_s, med + sem + frame_s + hop_s)
    # chance of so many matches without a time lock: (a) audio onsets as dense as they are
    # overall but independent of the picture, over the independent lag cells; (b) the pairs
    # within +-flank of the peak spread evenly there (speech that starts a random while after
    # each visual change is dense near its lags), a scan for the densest window of 2w
    rate = audio.size / max(span_s, 1e-9)
    cells = (hi - lo) / (2 * w_s) + 1.0
    p_global = _binomial_sf(n, candidates, 1.0 - math.exp(-rate * 2 * w_s)) * cells
    local = int(np.count_nonzero(np.abs(dd - med) <= flank))
    p_local = _scan_p(n, local, w_s / flank)
    p_chance = min(1.0, max(p_global, p_local))
    far = np.abs(grid - med) > 2 * w_s
    second = int(counts[far].max()) if far.any() else 0
    accepted = (
        n >= cfg.min_pairs
        and n >= cfg.min_fraction * candidates
        and p_chance <= cfg.chance_alpha
        and second <= cfg.ambiguity * n
    )
    return LagEstimate(
        accepted=accepted,
        lag_ms=med * 1e3,
        ci_ms=(ci[0] * 1e3, ci[1] * 1e3),
        pairs=n,
        candidates=candidates,
        p_chance=p_chance,
        second=second,
    )


def _median(x: np.ndarray) -> float:
    """Median of a small non-empty array (np.median costs more than the sort)."""
    s = np.sort(x)
    return 0.5 * (float(s[(s.size - 1) // 2]) + float(s[s.size // 2]))


def _thinned(onsets: np.ndarray, spacing: float) -> np.ndarray:
    """`onsets` without those closer than `spacing` to the previous one kept."""
    if onsets.size < 2 or float(np.diff(onsets).min()) > spacing:
        return onsets
    keep = [float(onsets[0])]
    for t in onsets[1:]:
        if t - keep[-1] > spacing:
            keep.append(float(t))
    return np.asarray(keep)


class SyncMonitor:
    """Online estimate of the residual A/V offset of one stream.

    Args:
        configured_offset_ms: the offset the pipeline already applies (for the advice).
        hop_s: time between log-mel columns.
        image_shape: (C, H, W) of the pre-processed frames.
        config: thresholds.
        source: stream name for the records.
        video_scale: brightness units per unit of the pre-processed image (the model's
            normalisation std), so thresholds are in fractions of full brightness.
        model: model id for the records.
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
        model: str | None = None,
    ) -> None:
        if hop_s <= 0:
            raise UsageError(f"sync monitor: hop_s={hop_s} must be > 0: pass the mel hop in s")
        self.config = cfg = config or SyncConfig()
        self.configured_offset_ms = configured_offset_ms
        self.hop_s = hop_s
        self.source = source
        self.model = model
        self.video_scale = video_scale
        self._prev = np.zeros(image_shape, np.float32)
        self._diff = np.zeros(image_shape, np.float32)
        # sum |diff| as a dot product into a 0-d array: a ufunc reduction allocates per call
        self._flat = self._diff.reshape(-1)
        self._ones = np.ones(self._flat.size, np.float32)
        self._acc = np.zeros((), np.float32)
        self._inv_size = video_scale / max(1, self._diff.size)
        self._t_prev = math.nan
        self._frame_dt = math.nan  # running estimate of the frame interval
        self._video_quiet = True
        self._last_video_onset = -math.inf
        self._video = np.zeros(2 * cfg.window_onsets)  # visual onset times (a ring)
        self._nv = 0  # visual onsets seen
        self._nj = 0  # of which judgeable (audio past their lag range has arrived)
        self._judged = 0  # _nj at the last estimate
        self._audio = np.zeros(1024)  # audio onset times (a ring)
        self._na = 0
        self._audio_t = -math.inf  # time of the newest audio column seen
        self._audio_t0 = math.nan  # time of the first column with sound (not silence)
        self._floor = math.nan
        self._audio_loud = False
        self._rise_t = math.inf  # first column of the current rise above the floor
        self._last_audio_onset = -math.inf
        self.estimates = 0  # estimates made (poll does none when nothing new is judgeable)
        self.last: LagEstimate | None = None  # the newest estimate
        self._accepted: LagEstimate | None = None  # the newest accepted one
        self._reported: float | None = None

    # ------------------------------------------------------------------ inputs
    def push_video(self, t: float, image: np.ndarray) -> None:
        """A frame of `image_shape` (a thumbnail, or a model's input scaled by
        `video_scale`) shown at stream time `t` (s)."""
        cfg = self.config
        dt = t - self._t_prev  # nan for the first frame
        if dt > 0:
            np.subtract(image, self._prev, out=self._diff)
            np.abs(self._diff, out=self._diff)
            np.dot(self._flat, self._ones, out=self._acc)
            activity = self._acc.item() * self._inv_size
            fd = self._frame_dt
            if fd != fd:  # first interval
                self._frame_dt = dt
            else:  # the nominal interval: a dropped frame moves it little, a new rate slowly
                rate = 0.05 if dt < 1.5 * fd else 0.002
                self._frame_dt = fd + rate * (min(dt, 4 * fd) - fd)
            if activity > cfg.video_rise:
                if (
                    self._video_quiet
                    and t - self._last_video_onset > cfg.video_refractory_ms / 1e3
                    and dt < 1.5 * self._frame_dt  # after a gap the change is not timed
                ):
                    self._last_video_onset = t
                    self._video[self._nv % self._video.size] = t
                    self._nv += 1
                self._video_quiet = False
            elif activity < cfg.video_rise / 2:
                self._video_quiet = True
        np.copyto(self._prev, image)
        self._t_prev = t

    def push_audio(self, t_end: float, energy_db: np.ndarray) -> None:
        """Energy (dB) of consecutive log-mel columns, the last one at `t_end` (s).

        Times are video time (the configured offset already applied). Columns already
        seen are skipped, so overlapping windows can be pushed as they are.
        """
        cfg = self.config
        n = energy_db.shape[0]
        new = (t_end - self._audio_t - 1e-9) / self.hop_s
        if not new > 0:
            return
        k = n if new >= n else math.ceil(new)
        rise, refractory = cfg.audio_rise_db, cfg.audio_refractory_ms / 1e3
        for j in range(n - k, n):
            t = t_end - (n - 1 - j) * self.hop_s
            e = energy_db.item(j)
            if e < cfg.silence_db:
                # digital silence or missing samples: never an onset, but the sound has
                # stopped, so the next one rises from the quiet, not from the last sound
                self._audio_loud = False
                self._rise_t = math.inf
                if self._floor != self._floor:
                    self._floor = cfg.silence_db  # a sound after silence is an onset
                elif self._floor > cfg.silence_db:
                    self._floor += 0.2 * (cfg.silence_db - self._floor)
                continue
            if self._audio_t0 != self._audio_t0:
                self._audio_t0 = t  # the first column with sound
            floor = self._floor
            if floor != floor:  # the first sound, with no silence before: the floor starts here
                floor = e
            above = e - floor
            if above < rise / 4:
                self._audio_loud = False
                self._rise_t = math.inf
            elif self._rise_t == math.inf:
                self._rise_t = t  # a soft onset is timed where it starts rising, not later
            if above > rise:
                if not self._audio_loud and t - self._last_audio_onset > refractory:
                    onset = self._rise_t if t - self._rise_t <= 5 * self.hop_s else t
                    self._last_audio_onset = t
                    self._audio[self._na % self._audio.size] = onset
                    self._na += 1
                self._audio_loud = True
            # the floor follows quiet quickly and loud slowly (a noise-floor tracker)
            self._floor = floor + (0.2 if e < floor else 0.01) * (e - floor)
        self._audio_t = float(t_end)

    # ------------------------------------------------------------------ output
    @property
    def frame_s(self) -> float:
        """The frame interval seen so far (0 before two frames)."""
        return self._frame_dt if self._frame_dt == self._frame_dt else 0.0

    @property
    def match_s(self) -> float:
        """Half-width (s) of the window in which an audio onset matches a lag."""
        return match_half_width(self.config, self.frame_s, self.hop_s)

    def poll(self) -> list[WarningRecord]:
        """Estimate again if a visual onset became judgeable; a warning when misaligned.

        O(1) when nothing new can be judged since the last call (call it after each
        `push_audio`: only new audio makes a visual onset judgeable).
        """
        nj = self._nj
        if nj >= self._nv:  # no visual onset waits to be judged
            return []
        cfg = self.config
        w = self.match_s
        horizon = cfg.lag_max_ms / 1e3 + 3 * w + cfg.flank_ms / 1e3
        vs = self._video.size
        nj = max(nj, self._nv - vs)  # onsets overwritten while no audio came are lost
        while nj < self._nv and self._video[nj % vs] + horizon <= self._audio_t:
            nj += 1
        self._nj = nj
        if nj == self._judged:
            return []
        self._judged = nj
        est = self._estimate(w, horizon)
        if est is None:
            return []
        self.estimates += 1
        self.last = est
        if est.accepted:
            self._accepted = est
        return self._warning(est) if self._misaligned(est) else []

    def _estimate(self, w: float, horizon: float) -> LagEstimate | None:
        """The estimate over the newest judgeable visual onsets, None when there are none."""
        cfg = self.config
        vs, asz = self._video.size, self._audio.size
        reach = cfg.lag_min_ms / 1e3 - 3 * w - cfg.flank_ms / 1e3  # earliest lag looked at
        known = self._audio_t0  # no sound came before this
        if self._na > asz:  # older audio onsets were overwritten
            known = max(known, float(self._audio[self._na % asz]))
        if known != known:
            return None
        v = self._video[
            np.arange(max(0, self._nv - vs, self._nj - cfg.window_onsets), self._nj) % vs
        ]
        v = v[v + cfg.lag_min_ms / 1e3 - w >= known]  # their whole lag range was heard
        if v.size == 0:
            return None
        start, end = max(known, float(v[0]) + reach), float(v[-1]) + horizon
        a = self._audio[np.arange(max(0, self._na - asz), self._na) % asz]
        a = a[(a >= start) & (a <= end)]
        return estimate_lag(
            v, a, frame_s=self.frame_s, hop_s=self.hop_s, span_s=end - start, cfg=cfg
        )

    def _misaligned(self, est: LagEstimate) -> bool:
        """Accepted, beyond the tolerance, and the interval excludes the tolerance band."""
        tol = self.config.tolerance_ms
        if not est.accepted or est.lag_ms is None or est.ci_ms is None:
            return False
        return abs(est.lag_ms) > tol and (est.ci_ms[0] > tol or est.ci_ms[1] < -tol)

    def _warning(self, est: LagEstimate) -> list[WarningRecord]:
        assert est.lag_ms is not None and est.ci_ms is not None  # _misaligned checked
        tol = self.config.tolerance_ms
        if self._reported is not None and abs(est.lag_ms - self._reported) <= tol:
            return []
        self._reported = lag = est.lag_ms
        lo, hi = est.ci_ms
        suggest = self.configured_offset_ms + lag
        side = "later" if lag > 0 else "earlier"
        message = (
            f"audio arrives about {abs(lag):.0f} ms {side} than --av-offset-ms "
            f"{self.configured_offset_ms:g} accounts for (95% interval {lo:.0f}..{hi:.0f} ms, "
            f"{est.pairs} of {est.candidates} onset pairs time-locked): set --av-offset-ms "
            f"{suggest:.0f}"
        )
        return [
            WarningRecord(
                stream=self.source,
                model=self.model,
                stream_time=round(self._audio_t, 3),
                source=self.source,
                kind="av_sync",
                message=message,
                data={
                    "residual_offset_ms": round(lag, 1),
                    "ci_low_ms": round(lo, 1),
                    "ci_high_ms": round(hi, 1),
                    "pairs": est.pairs,
                    "suggested_av_offset_ms": round(suggest, 1),
                },
            )
        ]

    @property
    def status(self) -> str:
        """The verdict: "ok", "misaligned", "no usable sync cues" or "not enough cues yet"."""
        if self._accepted is not None:
            return "misaligned" if self._misaligned(self._accepted) else "ok"
        if self.last is not None and self.last.candidates >= self.config.min_pairs:
            return "no usable sync cues"
        return "not enough cues yet"

    @property
    def residual_ms(self) -> float | None:
        """The last accepted estimate (ms), None when no estimate was ever accepted."""
        return None if self._accepted is None else self._accepted.lag_ms

    def summary(self) -> dict[str, Any]:
        """For the run's summary record."""
        est = self._accepted
        shown = est or self.last
        return {
            "status": self.status,
            "residual_offset_ms": None if est is None else round(est.lag_ms or 0.0, 1),
            "ci_ms": None if est is None or est.ci_ms is None else [round(x, 1) for x in est.ci_ms],
            "pairs": 0 if shown is None else shown.pairs,
            "configured_offset_ms": self.configured_offset_ms,
        }


__all__ = ["LagEstimate", "SyncConfig", "SyncMonitor", "estimate_lag", "match_half_width"]
