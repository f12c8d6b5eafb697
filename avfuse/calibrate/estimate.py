"""Pairing flashes with beeps and turning the pairs into one offset with its spread.

Pairing uses the pattern's code (`avfuse.calibrate.pattern.CODE`): the gaps between
events differ, so among the lags within +-`max_offset_s` only the true one puts a beep
after (nearly) every flash; any other lines up a few at most. Every difference beep -
flash within the range is a vote; the lag window (of the matching tolerance either
side) with the most votes is the pairing, each flash taking the beep nearest to it. It
is refused as ambiguous when a lag further away has more than half as many votes, and
as too thin with fewer than `MIN_PAIRS` pairs.

The offset is the median of the pairs' differences, in avfuse's sign convention: how
much later the audio arrives than the video it belongs with (positive: audio late),
which is the value `--av-offset-ms` and the config key `av_offset_ms` take. The spread
is the median absolute deviation and the 5th and 95th percentiles; the verdict says
whether the chain is in sync, needs an offset, or is too unsteady for one number.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from avfuse.calibrate.pattern import UNAMBIGUOUS_S
from avfuse.errors import AvfuseError

#: fewest pairs an estimate is made from
MIN_PAIRS = 4


class NoPatternFound(AvfuseError, LookupError):
    """The source does not show (or does not sound) the calibration pattern."""

    exit_code = 2


@dataclass(frozen=True, kw_only=True)
class Calibration:
    """A measured A/V offset.

    Attributes:
        offset_ms: median of the pairs: audio later than video (positive: audio late).
        mad_ms: median absolute deviation of the pairs from `offset_ms`.
        p5_ms, p95_ms: 5th and 95th percentiles of the pairs.
        pairs: flash/beep pairs measured.
        flashes, beeps: onsets found in each modality.
        runner_up: votes for the best lag other than the one taken (ambiguity check).
        frame_ms: the video's frame interval (the resolution of a flash's time).
        tolerance_ms: |offset| up to this counts as in sync.
        verdict: one line for a person.
        offsets_ms: every pair's difference, in stream order.
    """

    offset_ms: float
    mad_ms: float
    p5_ms: float
    p95_ms: float
    pairs: int
    flashes: int
    beeps: int
    runner_up: int
    frame_ms: float
    tolerance_ms: float
    verdict: str
    offsets_ms: tuple[float, ...]

    @property
    def in_sync(self) -> bool:
        """True when |offset| is within the tolerance."""
        return abs(self.offset_ms) <= self.tolerance_ms

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (figures rounded to 0.01 ms)."""
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, float):
                d[k] = round(v, 2)
        d["offsets_ms"] = [round(x, 2) for x in self.offsets_ms]
        d["in_sync"] = self.in_sync
        return d


def match_tolerance_s(frame_s: float) -> float:
    """Half-width of a pairing: a frame (a flash is timed to one) plus 15 ms of jitter."""
    return max(frame_s, 0.025) + 0.015


def _votes(diffs: np.ndarray, tol: float) -> tuple[int, float]:
    """Most differences in any window [d, d + 2 tol], and that window's median."""
    d = np.sort(diffs)
    hi = np.searchsorted(d, d + 2 * tol, side="right")
    counts = hi - np.arange(d.shape[0])
    k = int(np.argmax(counts))
    return int(counts[k]), float(np.median(d[k : hi[k]]))


def _verdict(offset_ms: float, spread_ms: float, frame_ms: float, tol_ms: float) -> str:
    late = "late" if offset_ms > 0 else "early"
    fix = f"--av-offset-ms {offset_ms:.0f}"
    if spread_ms > 2 * frame_ms:
        return (
            f"unsteady: the pairs spread over {spread_ms:.0f} ms (p5..p95), more than two "
            f"frames; the chain drifts or jitters, so one offset ({fix}) fits only on average"
        )
    if abs(offset_ms) <= tol_ms:
        return (
            f"in sync: audio within {tol_ms:g} ms of video ({offset_ms:+.1f} ms); no "
            "--av-offset-ms needed"
        )
    return f"audio {abs(offset_ms):.0f} ms {late}: run with {fix} (or save it with --write-config)"


@dataclass(frozen=True, kw_only=True)
class Pairing:
    """Which flash goes with which beep.

    Attributes:
        flash, beep: indices into the sorted onset arrays, one entry per pair.
        lag_s: the lag the pairs were taken at.
        votes: differences within the matching tolerance of that lag.
        runner_up: the most votes of any lag further than twice the tolerance away.
        flashes, beeps: onsets given.
    """

    flash: np.ndarray
    beep: np.ndarray
    lag_s: float
    votes: int
    runner_up: int
    flashes: int
    beeps: int


_FIX = "play `avfuse calibrate --pattern FILE` into the chain and read it back"


def pair(
    flash_s: np.ndarray, beep_s: np.ndarray, *, frame_s: float, max_offset_s: float = UNAMBIGUOUS_S
) -> Pairing:
    """Pair sorted flash and beep onsets (seconds on one clock); see the module docstring.

    Raises:
        NoPatternFound: no flash, no beep, too few pairs, or no single lag that pairs them.
    """
    v, a = np.asarray(flash_s, np.float64), np.asarray(beep_s, np.float64)
    if v.size == 0 or a.size == 0:
        missing = "flashes" if v.size == 0 else "beeps"
        raise NoPatternFound(f"no pattern found: no {missing}; {_FIX}")
    tol = match_tolerance_s(frame_s)
    diffs = (a[None, :] - v[:, None]).ravel()
    diffs = diffs[np.abs(diffs) <= max_offset_s + tol]
    if diffs.size == 0:
        raise NoPatternFound(
            f"no pattern found: {v.size} flash(es) and {a.size} beep(s), none within "
            f"{max_offset_s * 1e3:.0f} ms of each other; {_FIX}"
        )
    votes, lag = _votes(diffs, tol)
    far = diffs[np.abs(diffs - lag) > 2 * tol]
    runner_up = _votes(far, tol)[0] if far.size else 0
    fi, bi = [], []
    for i, t in enumerate(v):
        k = int(np.argmin(np.abs(a - (t + lag))))
        if abs(a[k] - t - lag) <= tol:
            fi.append(i)
            bi.append(k)
    n = len(fi)
    if n < MIN_PAIRS:
        raise NoPatternFound(
            f"no pattern found: {v.size} flash(es) and {a.size} beep(s) give only {n} "
            f"pair(s) at one lag (at least {MIN_PAIRS} needed); {_FIX}, for at least 10 s"
        )
    if runner_up * 2 > votes:
        raise NoPatternFound(
            f"no pattern found: the flashes and beeps pair as well at {lag * 1e3:+.0f} ms as at "
            f"another lag ({votes} vs {runner_up} pairs): this is not the calibration "
            f"pattern's code (a periodic clapperboard?); {_FIX}"
        )
    return Pairing(
        flash=np.asarray(fi, np.int64),
        beep=np.asarray(bi, np.int64),
        lag_s=lag,
        votes=votes,
        runner_up=runner_up,
        flashes=int(v.size),
        beeps=int(a.size),
    )


def summarise(
    offsets_ms: np.ndarray, pairing: Pairing, *, frame_s: float, tolerance_ms: float = 10.0
) -> Calibration:
    """The offset, spread and verdict of the pairs' differences (ms, positive: audio late)."""
    x = np.asarray(offsets_ms, np.float64)
    med = float(np.median(x))
    p5, p95 = (float(q) for q in np.percentile(x, [5, 95]))
    frame_ms = frame_s * 1e3
    return Calibration(
        offset_ms=med,
        mad_ms=float(np.median(np.abs(x - med))),
        p5_ms=p5,
        p95_ms=p95,
        pairs=int(x.size),
        flashes=pairing.flashes,
        beeps=pairing.beeps,
        runner_up=pairing.runner_up,
        frame_ms=frame_ms,
        tolerance_ms=tolerance_ms,
        verdict=_verdict(med, p95 - p5, frame_ms, tolerance_ms),
        offsets_ms=tuple(float(o) for o in x),
    )


def estimate(
    flash_ns: np.ndarray,
    beep_ns: np.ndarray,
    *,
    frame_s: float,
    max_offset_s: float = UNAMBIGUOUS_S,
    tolerance_ms: float = 10.0,
) -> Calibration:
    """Pair flashes with beeps (host ns on one clock) and measure the offset from their
    differences.

    Raises:
        NoPatternFound: as `pair`.
    """
    v = np.sort(np.asarray(flash_ns, np.float64))
    a = np.sort(np.asarray(beep_ns, np.float64))
    p = pair(v / 1e9, a / 1e9, frame_s=frame_s, max_offset_s=max_offset_s)
    offsets = (a[p.beep] - v[p.flash]) / 1e6
    return summarise(offsets, p, frame_s=frame_s, tolerance_ms=tolerance_ms)


__all__ = [
    "MIN_PAIRS",
    "Calibration",
    "NoPatternFound",
    "Pairing",
    "estimate",
    "match_tolerance_s",
    "pair",
    "summarise",
]
