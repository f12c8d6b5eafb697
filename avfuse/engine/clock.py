"""One host clock for the whole runtime, and a robust device-clock -> host-clock fit.

Every timestamp in avfuse is an integer nanosecond count of `time.monotonic_ns()`
(`now_ns`). Devices keep their own clocks (an audio crystal, container PTS); they
drift from the host by tens to hundreds of ppm and their arrival times jitter.
`ClockModel` fits ``host_ns = a + b * device_s`` over a sliding window so that a
device timestamp maps to host time with the jitter averaged out and the drift
followed.

The fit, per update (O(1) amortised, fixed memory):
    * points are stored relative to the first one, as ``z = host - 1e9 * device``
      residuals from the nominal rate, so the numbers stay small and exact in
      float64 over days of stream time;
    * least squares over the last `window` accepted points, from running sums
      that are recomputed from the buffer every `window` updates (bounded rounding);
    * a ridge prior pulls the drift toward 0 ppm while the window spans too little
      time to measure it, so an early fit never extrapolates a wild slope;
    * residual gating: a point further from the fit than `gate` times the running
      mean absolute residual (and than `min_gate_ms`) is rejected and counted; each
      rejection widens the gate by 2 %, so a lasting rise in jitter is followed;
    * a clock jump is a step that persists: `jump_count` rejected points in a row
      that agree with each other. The fit restarts from them and `jumps` counts it;
      nothing is reordered or hidden;
    * arrival-stamped sources (a network stream: host time is when a packet came in,
      never before it was sent, often late in a burst) use the lower envelope: the
      fitted offset is moved down to a low quantile (`envelope`) of the residuals, so
      the fit follows the earliest arrivals (the least delayed) instead of the mean
      delay, which for audio sent in bursts is half a burst late.

Threads. The capture thread that owns a source is the only writer of its
ClockModel; the pipeline thread reads it. A reader never sees a half-made fit: each
update publishes the new fit as one immutable `ClockFit` in a single assignment
(`model.fit`), and a reset publishes None. A reader takes `fit = model.fit` once and
maps every time it needs through that snapshot, so a reconnect that resets the model
between two of its reads cannot hand it a mix of old and new state.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from avfuse.errors import ClockNotReady

NS_PER_S = 1_000_000_000
_WARMUP = 16  # points accepted unchecked, then cleaned once with a robust fit


def now_ns() -> int:
    """The host clock every sample and frame is stamped in (monotonic, ns)."""
    return time.monotonic_ns()


@dataclass(frozen=True, slots=True)
class ClockFit:
    """One published state of a `ClockModel` fit: ``host = h0 + 1e9 (d - x0) + a + c (d - x0)``.

    Immutable, so a reader on another thread can keep using it while the model moves on.

    Attributes:
        x0: device seconds of the first point of the fit's timeline.
        h0: host ns of that point.
        a: fitted residual (ns) at x0.
        c: fitted drift, ns per device second.
        residual_ns: running mean absolute residual of accepted points.
        points: accepted points in the window.
    """

    x0: float
    h0: int
    a: float
    c: float
    residual_ns: float
    points: int

    def to_host(self, device_s: float) -> int:
        """Host ns of a device time."""
        x = device_s - self.x0
        return self.h0 + int(round(NS_PER_S * x + self.a + self.c * x))

    def to_device(self, host_ns: int | float) -> float:
        """Device seconds of a host time (the inverse of `to_host`)."""
        return self.x0 + (float(host_ns - self.h0) - self.a) / (NS_PER_S + self.c)


class ClockModel:
    """Robust sliding-window fit of host time against a device's clock.

    Args:
        window: accepted points kept for the fit (bounded memory).
        gate: rejection threshold in units of the running mean absolute residual.
        min_gate_ms: residuals below this are never rejected (scheduling noise floor).
        jump_count: consecutive agreeing rejections that make a clock jump.
        prior_ppm: scale of the drift prior; the prior dominates while the window
            spans less time than the noise lets the drift be measured over.
        envelope: for arrival-stamped sources, the residual quantile (e.g. 0.02) the
            published offset is moved to (None: the least-squares fit itself).
    """

    def __init__(
        self,
        *,
        window: int = 2048,
        gate: float = 6.0,
        min_gate_ms: float = 5.0,
        jump_count: int = 8,
        prior_ppm: float = 500.0,
        envelope: float | None = None,
    ) -> None:
        if window < 4 or jump_count < 2 or gate <= 0:
            raise ValueError("need window >= 4, jump_count >= 2 and gate > 0")
        if envelope is not None and not 0 <= envelope < 0.5:
            raise ValueError("envelope must be a quantile in [0, 0.5)")
        self._envelope = envelope
        self._shift = 0.0  # envelope offset below the least-squares fit, ns
        self._late = 0.0  # 95th percentile of arrivals after the envelope, ns
        self._res = np.zeros(window, np.float64)
        self._n_max = window
        self._gate = gate
        self._min_gate = min_gate_ms * 1e6
        self._jump_count = jump_count
        self._prior = prior_ppm * 1e3  # ns of drift per device second
        self._x = np.zeros(window, np.float64)
        self._z = np.zeros(window, np.float64)
        self._cand_x = np.zeros(jump_count, np.float64)
        self._cand_z = np.zeros(jump_count, np.float64)
        self.rejected = 0
        self.jumps = 0
        self.updates = 0
        #: the current fit, published whole after every change (None: no observation yet)
        self.fit: ClockFit | None = None
        self._reset(None, None)

    # ------------------------------------------------------------------ fitting
    def _reset(self, device_s: float | None, host_ns: int | None) -> None:
        self._x0 = device_s
        self._h0 = host_ns
        self._n = 0
        self._pos = 0
        self._since_recompute = 0
        self._sx = self._sz = self._sxx = self._sxz = 0.0
        self._a = 0.0  # fitted z at x = 0
        self._c = 0.0  # fitted drift, ns per device second
        self._abs_dev = 0.0  # running mean |residual| of accepted points
        self._n_cand = 0
        self._cleaned = False
        self._shift = 0.0 if not hasattr(self, "_shift") or device_s is None else self._shift
        if device_s is None:
            self.fit = None

    def _publish(self) -> None:
        assert self._x0 is not None and self._h0 is not None  # set by the first update
        if self._envelope is not None and self._n >= 32 and self.updates % 8 == 0:
            n = self._n
            np.subtract(self._z[:n], self._a, out=self._res[:n])
            self._res[:n] -= self._c * self._x[:n]
            k, k_late = int(self._envelope * (n - 1)), int(0.95 * (n - 1))
            res = self._res[:n]
            res.partition((k, k_late))  # in place: the scratch buffer, no allocation
            self._shift = float(res[k])
            self._late = float(res[k_late]) - self._shift
        self.fit = ClockFit(
            x0=self._x0,
            h0=self._h0,
            a=self._a + self._shift,
            c=self._c,
            residual_ns=self._abs_dev,
            points=self._n,
        )

    def _clean_warmup(self) -> None:
        """Once per (re)start: drop warm-up points that a robust (MAD) fit calls outliers.

        The first points are accepted unchecked (there is no fit to check them against),
        so one late arrival among them would bias the fit for a whole window. With
        `_WARMUP` points in hand, residuals against their median and MAD show which.
        Runs once per start, O(window), so updates stay O(1) amortised.
        """
        self._cleaned = True
        n = self._n
        for _ in range(2):
            x, z = self._x[:n], self._z[:n]
            r = z - (self._a + self._c * x)
            med = float(np.median(r))
            mad = float(np.median(np.abs(r - med)))
            keep = np.abs(r - med) <= max(4.0 * 1.4826 * mad, self._min_gate)
            k = int(keep.sum())
            if k == n or k < 4:
                break
            self.rejected += n - k
            xs, zs = x[keep].copy(), z[keep].copy()
            self._x[:k], self._z[:k] = xs, zs
            self._n = n = k
            self._pos = k % self._n_max
            self._recompute()
            self._abs_dev = float(np.mean(np.abs(r[keep] - med)))
            self._solve()

    def _recompute(self) -> None:
        n = self._n
        x, z = self._x[:n], self._z[:n]
        self._sx = float(x.sum())
        self._sz = float(z.sum())
        self._sxx = float(np.dot(x, x))
        self._sxz = float(np.dot(x, z))
        self._since_recompute = 0

    def _solve(self) -> None:
        n = self._n
        mx, mz = self._sx / n, self._sz / n
        sxx_c = max(self._sxx - n * mx * mx, 0.0)
        sxz_c = self._sxz - n * mx * mz
        sigma = max(1.25 * self._abs_dev, 1e5)
        ridge = (sigma / self._prior) ** 2
        self._c = sxz_c / (sxx_c + ridge)
        self._a = mz - self._c * mx

    def _accept(self, x: float, z: float) -> None:
        if self._n == self._n_max:
            ox, oz = float(self._x[self._pos]), float(self._z[self._pos])
            self._sx -= ox
            self._sz -= oz
            self._sxx -= ox * ox
            self._sxz -= ox * oz
        else:
            self._n += 1
        x, z = float(x), float(z)
        self._x[self._pos] = x
        self._z[self._pos] = z
        self._pos = (self._pos + 1) % self._n_max
        self._sx += x
        self._sz += z
        self._sxx += x * x
        self._sxz += x * z
        self._since_recompute += 1
        if self._since_recompute >= self._n_max:
            self._recompute()
        self._solve()

    def update(self, device_s: float, host_ns: int) -> bool:
        """Add one observation; returns False when it was rejected as an outlier."""
        self.updates += 1
        if self._x0 is None:
            self._reset(device_s, host_ns)
        if self._n >= _WARMUP and not self._cleaned:
            self._clean_warmup()
            self._publish()
        x = device_s - self._x0
        z = float(host_ns - self._h0) - NS_PER_S * x
        r = z - (self._a + self._c * x)
        if self._n >= _WARMUP or self._cleaned:
            limit = max(self._gate * self._abs_dev, self._min_gate)
            if abs(r) > limit:
                self.rejected += 1
                # widen the gate a little per rejection: rare outliers barely move it, but
                # a lasting rise in jitter opens it instead of freezing the fit
                self._abs_dev *= 1.02
                self._candidate(x, z, r, limit)
                return False
        self._n_cand = 0
        ar = abs(r)
        if self._n < _WARMUP:
            self._abs_dev = (self._abs_dev * self._n + ar) / (self._n + 1)
        else:
            self._abs_dev += (min(ar, 3.0 * self._abs_dev + self._min_gate) - self._abs_dev) / 64
        self._accept(x, z)
        self._publish()
        return True

    def _candidate(self, x: float, z: float, r: float, limit: float) -> None:
        """Track rejected points; enough consecutive agreeing ones are a clock jump."""
        if self._n_cand:
            prev_r = self._cand_z[self._n_cand - 1] - (
                self._a + self._c * self._cand_x[self._n_cand - 1]
            )
            if abs(r - prev_r) > limit:
                self._n_cand = 0
        self._cand_x[self._n_cand] = x
        self._cand_z[self._n_cand] = z
        self._n_cand += 1
        if self._n_cand < self._jump_count:
            return
        self.jumps += 1
        self.rejected -= self._jump_count  # they were not outliers after all
        cx = self._cand_x.copy()
        cz = self._cand_z.copy()
        abs_dev = self._abs_dev
        x0, h0 = self._x0, self._h0
        self._reset(x0, h0)
        for i in range(self._jump_count):
            self._accept(float(cx[i]), float(cz[i]))
        self._abs_dev = abs_dev
        self._publish()

    def reset(self) -> None:
        """Forget the fit (the device clock restarted, e.g. after a reconnect); counters stay."""
        self._reset(None, None)

    def restart(self) -> None:
        """Fit afresh from the next observation on, keeping the current fit until then.

        For a timeline that continues across a break (audio after a reconnect: the sample
        index goes on, the capture chain behind it is new): the old window's points belong
        to another chain, and a fit over both tilts (thousands of ppm) for a whole window.
        Readers keep mapping through the published fit until the next `update` replaces it,
        so there is no moment without one.
        """
        fit = self.fit
        self._reset(None, None)
        self.fit = fit

    # ------------------------------------------------------------------ mapping
    @property
    def ready(self) -> bool:
        """True once at least one observation has been accepted."""
        return self.fit is not None

    def _current(self) -> ClockFit:
        fit = self.fit
        if fit is None:
            raise ClockNotReady("the clock has no observation yet (or was reset by a reconnect)")
        return fit

    def to_host(self, device_s: float) -> int:
        """Host ns of a device time, through the current fit.

        Raises:
            ClockNotReady: no observation since the start or the last reset.
        """
        return self._current().to_host(device_s)

    def to_device(self, host_ns: int | float) -> float:
        """Device seconds of a host time (the inverse of `to_host`)."""
        return self._current().to_device(host_ns)

    @property
    def offset_ns(self) -> int:
        """Host ns at device time 0 (the `a` of host = a + b * device)."""
        fit = self.fit
        return 0 if fit is None else fit.to_host(0.0)

    @property
    def rate(self) -> float:
        """Host ns per device second (the `b`; 1e9 for a perfect device clock)."""
        fit = self.fit
        return NS_PER_S + (fit.c if fit is not None else 0.0)

    @property
    def drift_ppm(self) -> float:
        """How much faster the host runs than the device clock, in ppm."""
        fit = self.fit
        return 0.0 if fit is None else float(fit.c) / 1e3

    @property
    def residual_ms(self) -> float:
        """Running mean absolute residual of accepted points (the jitter left), ms."""
        fit = self.fit
        return 0.0 if fit is None else float(fit.residual_ns) / 1e6

    @property
    def late_ms(self) -> float:
        """How late the 95th percentile of arrivals comes after the earliest (envelope), ms.

        An arrival-stamped source's data is mapped to its earliest arrivals; the rest
        comes later, a network stream's audio in bursts (an MPEG-TS muxer packs ~0.3 s of
        it per packet). What waits for such data waits about this long (0 without an
        envelope).
        """
        return self._late / 1e6 if self.fit is not None else 0.0

    @property
    def points(self) -> int:
        """Accepted points in the window now."""
        fit = self.fit
        return 0 if fit is None else fit.points

    def stats(self) -> dict[str, float | int]:
        """JSON-ready state for summaries."""
        return {
            "drift_ppm": round(self.drift_ppm, 3),
            "residual_ms": round(self.residual_ms, 3),
            "rejected": self.rejected,
            "jumps": self.jumps,
            "updates": self.updates,
        }


class SampleClock:
    """Absolute audio sample index <-> host ns, through a `ClockModel` of the sample clock.

    The audio device's own clock is its sample counter: sample `i` is at device time
    ``i / sample_rate``. Ingest updates the model with (first index of a block, host ns of
    that block); the aligner asks which sample index a host time falls on.
    """

    def __init__(self, *, sample_rate: int, model: ClockModel | None = None) -> None:
        self.sample_rate = int(sample_rate)
        self.model = model or ClockModel()

    @property
    def ready(self) -> bool:
        """True once a block has been observed."""
        return self.model.ready

    @property
    def fit(self) -> ClockFit | None:
        """The model's current fit snapshot (take it once, map through it; see the module)."""
        return self.model.fit

    def update(self, index: int, host_ns: int) -> bool:
        """Observe that sample `index` was captured at `host_ns`; False when rejected."""
        return self.model.update(index / self.sample_rate, host_ns)

    def index_to_host(self, index: float, fit: ClockFit | None = None) -> int:
        """Host ns at which sample `index` was captured (through `fit`, else the current one)."""
        if fit is None:
            return self.model.to_host(index / self.sample_rate)
        return fit.to_host(index / self.sample_rate)

    def host_to_index(self, host_ns: int | float, fit: ClockFit | None = None) -> float:
        """Fractional sample index captured at `host_ns` (through `fit`, else the current one)."""
        if fit is None:
            return self.model.to_device(host_ns) * self.sample_rate
        return fit.to_device(host_ns) * self.sample_rate


def ns_to_s(ns: int | float) -> float:
    """Nanoseconds to seconds (float)."""
    return float(ns) / NS_PER_S


__all__ = ["NS_PER_S", "ClockFit", "ClockModel", "SampleClock", "now_ns", "ns_to_s"]
