"""Microphone capture through PortAudio (sounddevice), with disconnect and reconnect.

The PortAudio callback only copies: each block goes into one row of a preallocated
block ring, with its ADC time and host time, and a counter is published. The source's
own thread takes the rows in order, resamples when the device cannot run at the rate
the model wants, measures the input level and calls `sink.audio`. We deliver from our
thread rather than from the callback because the sink's ingest (ring write plus clock
bookkeeping) is code we do not control, and because the callback then never waits on
Python work of anyone else; the cost is one block copy. The callback rings a doorbell
(one non-blocking queue put) and the thread sleeps on it, so it wakes once per block
rather than on a timer: polling every 4 ms cost 2 points more of a core on a 2-core VM.

Time: PortAudio reports `inputBufferAdcTime` (when the block's first sample hit the
converter) and `currentTime` on the stream clock; the callback maps it onto
`time.monotonic_ns()` as `host_ns = now_ns - (currentTime - adcTime) * 1e9`, and delivers
`device_time_s = adcTime` so the pipeline's ClockModel can remove jitter and drift.

A device that stops calling back (unplugged, sound server gone) is reported once as
"disconnected"; the thread stays alive and reopens it with capped exponential back-off,
reporting "reconnected" when blocks flow again.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from avfuse.engine.control import Doorbell
from avfuse.engine.sources import devices
from avfuse.engine.sources.base import AudioFormat, FrameSink, Source, SourceInfo, SourceStatus
from avfuse.errors import SourceError, UsageError


@dataclass(frozen=True, kw_only=True)
class MicrophoneConfig:
    """How to open a microphone.

    Attributes:
        device: PortAudio index, a (substring of a) device name, or "default".
        sample_rate: rate delivered to the sink (the manifest's); the device runs at it
            when it can, otherwise at its default rate and the source resamples.
        device_rate: run the device at this rate and resample to `sample_rate` (None:
            at `sample_rate` when the device can, else at its default rate).
        channels: channels captured from the device (mixed down to mono).
        block_ms: duration of one delivered block. 20 ms matches the period of common
            sound servers (PulseAudio, PipeWire); with it the ADC times PortAudio reports
            here jitter by < 0.1 ms, with 10 ms blocks by up to 5 ms.
        latency: PortAudio latency hint ("low", "high" or seconds).
        ring_s: capacity of the callback ring; past it blocks are dropped and counted.
        stall_timeout_s: no callback for this long counts as a disconnect.
        reconnect_initial_s: first back-off delay; doubled after each failed reopen.
        reconnect_max_s: cap of the back-off delay.
    """

    device: int | str = "default"
    sample_rate: int = 16000
    device_rate: int | None = None
    channels: int = 1
    block_ms: float = 20.0
    latency: str | float = "low"
    ring_s: float = 2.0
    stall_timeout_s: float = 3.0
    reconnect_initial_s: float = 0.25
    reconnect_max_s: float = 4.0

    def __post_init__(self) -> None:
        if self.device_rate is not None and self.device_rate <= 0:
            raise UsageError("microphone device_rate must be positive (or left unset)")
        if self.sample_rate <= 0 or self.channels <= 0 or self.block_ms <= 0:
            raise UsageError("microphone sample_rate, channels and block_ms must be positive")
        if self.reconnect_initial_s <= 0 or self.reconnect_max_s < self.reconnect_initial_s:
            raise UsageError("microphone reconnect delays: need 0 < initial <= max")


class MicrophoneSource(Source):
    """Live audio from a PortAudio input device, delivered as float32 mono blocks.

    Example:
        >>> mic = MicrophoneSource(device="pulse", sample_rate=16000)  # doctest: +SKIP
        >>> mic.start(sink); ...; mic.stop()  # doctest: +SKIP

    Attributes (read from any thread):
        level_dbfs: RMS level of the last delivered block in dBFS (a property).
        overflows / underflows: PortAudio input over/underflow flags counted.
        dropped_blocks: blocks dropped because the delivering thread fell behind.
        blocks: blocks delivered to the sink.
        waits: times the delivering thread went to sleep (about one per block).
    """

    def __init__(
        self,
        *,
        config: MicrophoneConfig | None = None,
        name: str | None = None,
        audio: bool = True,
        video: bool = False,
        **fields: Any,
    ) -> None:
        """`fields` override those of `config`; `audio`/`video` are the modality selectors
        every source takes (a microphone has audio only)."""
        if not audio or video:
            raise UsageError("a microphone gives audio only: use it as the audio source")
        self.config = replace(config or MicrophoneConfig(), **fields)
        super().__init__(name=name or f"mic:{self.config.device}")
        self._level_dbfs = -math.inf
        self.overflows = 0
        self.underflows = 0
        self.dropped_blocks = 0
        self.blocks = 0
        self.waits = 0
        self.device: devices.MicrophoneInfo | None = None
        self.device_rate = 0
        self._stream: Any = None
        self._resampler: StreamResampler | None = None
        self._rows = 0
        self._channels = 0
        self._block_in = 0
        self._data = np.zeros((0, 0), np.float32)
        self._adc = np.zeros(0, np.float64)
        self._host = np.zeros(0, np.int64)
        self._gap = np.zeros(0, np.bool_)
        self._clock = BlockClock()
        self._bell = Doorbell()  # rung by the callback after each block, and by stop()
        self._written = 0  # published by the callback (one Python int store, atomic)
        self._read = 0
        self._last_cb_ns = 0
        self._dead = False
        self._running = False

    @property
    def level_dbfs(self) -> float:
        """RMS level of the last captured block in dBFS (-inf before any; silence -200),
        for level meters in sinks and UIs."""
        return self._level_dbfs

    # ---- opening -------------------------------------------------------------------
    def _open(self) -> SourceInfo:
        self._open_stream()
        block_out = self._resampler.block_out if self._resampler else self._block_in
        fmt = AudioFormat(sample_rate=self.config.sample_rate, channels=1, block_size=block_out)
        return SourceInfo(
            name=self.name,
            audio=fmt,
            video=None,
            live=True,
        )

    def _open_stream(self, *, reconnecting: bool = False) -> None:
        """Resolve the device, pick the rate, allocate the ring and open (not start) it.

        When reconnecting, PortAudio is rescanned first (a re-plugged USB device is a new
        PortAudio device) and a device first given by index is looked up by its name,
        since its index may have changed.
        """
        sd = devices.import_sounddevice()
        cfg = self.config
        spec = cfg.device
        if reconnecting:
            devices.rescan_portaudio()
            if self.device is not None and (not isinstance(spec, str) or spec.strip().isdigit()):
                spec = self.device.name
        dev = devices.resolve_microphone(spec)
        channels = min(cfg.channels, dev.channels)
        rate = cfg.device_rate or cfg.sample_rate
        try:
            sd.check_input_settings(
                device=dev.index, samplerate=rate, channels=channels, dtype="float32"
            )
        except sd.PortAudioError as e:
            if cfg.device_rate:
                raise SourceError(
                    f"microphone {dev.index} '{dev.name}' cannot run at {rate} Hz ({e}): "
                    "leave device_rate unset to use its default rate"
                ) from e
            rate = int(dev.default_sample_rate)
        self._allocate(rate, channels)
        try:
            stream = sd.InputStream(
                device=dev.index,
                samplerate=rate,
                blocksize=self._block_in,
                channels=channels,
                dtype="float32",
                latency=cfg.latency,
                callback=self._callback,
                finished_callback=self._finished,
            )
        except sd.PortAudioError as e:
            raise SourceError(
                f"cannot open microphone {dev.index} '{dev.name}' at {rate} Hz: {e}; "
                "check that it is not in use and see `avfuse devices`"
            ) from e
        devices.stream_opened()
        self._stream, self.device, self.device_rate = stream, dev, rate

    def _allocate(self, rate: int, channels: int) -> None:
        """Set up capture at `rate` Hz from `channels` channels: the resampler (when `rate`
        is not the rate asked for), the block ring, and fresh counters."""
        cfg = self.config
        if rate == cfg.sample_rate:
            self._resampler = None
            self._block_in = max(1, round(rate * cfg.block_ms / 1000))
        else:
            self._resampler = StreamResampler(
                rate_in=rate, rate_out=cfg.sample_rate, block_ms=cfg.block_ms
            )
            self._block_in = self._resampler.block_in
        rows = max(4, math.ceil(self.config.ring_s * rate / self._block_in))
        if self._data.shape != (rows, self._block_in) or self._channels != channels:
            self._data = np.zeros((rows, self._block_in), np.float32)
            self._adc = np.zeros(rows, np.float64)
            self._host = np.zeros(rows, np.int64)
            self._gap = np.zeros(rows, np.bool_)
        self._rows, self._channels, self.device_rate = rows, channels, rate
        self._written = self._read = 0
        self._dead = False
        self._dropped_since = True
        self._clock.reset(rate)

    # ---- the PortAudio callback: copy, stamp, count, return ----------------------------
    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        now = time.monotonic_ns()
        w = self._written
        self._last_cb_ns = now
        gap = False
        if status:
            if status.input_overflow:
                self.overflows += 1
                gap = True
            if status.input_underflow:
                self.underflows += 1
        if w - self._read >= self._rows or frames != self._block_in:
            self.dropped_blocks += 1
            self._dropped_since = True
            return
        row = w % self._rows
        self._gap[row] = gap or self._dropped_since
        self._dropped_since = False
        if self._channels == 1:
            self._data[row] = indata[:, 0]
        else:
            np.add.reduce(indata, axis=1, out=self._data[row])
            self._data[row] *= 1.0 / self._channels
        adc = time_info.inputBufferAdcTime
        if adc > 0.0:
            self._adc[row] = adc
            self._host[row] = now - int((time_info.currentTime - adc) * 1e9)
        else:  # host API without a stream clock: the block ended about now
            self._adc[row] = math.nan
            self._host[row] = now - frames * 1_000_000_000 // self.device_rate
        self._written = w + 1
        self._bell.ring()

    def _finished(self) -> None:
        self._dead = True
        self._bell.ring()

    def _wake(self) -> None:
        self._bell.ring()

    # ---- the delivering thread -----------------------------------------------------------
    def _run(self, sink: FrameSink) -> None:
        self._running = True
        try:
            self._loop(sink)
        finally:  # the device is released by the thread that uses it
            self._close_stream()
            self._running = False

    def _loop(self, sink: FrameSink) -> None:
        cfg = self.config
        delay = cfg.reconnect_initial_s
        outage = False
        try:
            self._start_stream()
        except SourceError:
            self._close_stream()
        while not self.stopping.is_set():
            if self._read < self._written:
                if outage:
                    outage, delay = False, cfg.reconnect_initial_s
                    sink.status(self._status("reconnected", f"microphone back: {self._dev()}"))
                self._deliver(sink)
                continue
            quiet_s = (time.monotonic_ns() - self._last_cb_ns) * 1e-9
            if self._stream is not None and not self._dead and quiet_s <= cfg.stall_timeout_s:
                # until the callback (or stop) rings, at the latest when it would be a stall
                self.waits += 1
                self._bell.wait(cfg.stall_timeout_s - quiet_s + 1e-3)
                continue
            self._close_stream()
            if not outage:
                outage = True
                msg = f"microphone lost: {self._dev()}; reconnecting"
                sink.status(self._status("disconnected", msg))
            if self.stopping.wait(delay):
                break
            delay = min(delay * 2, cfg.reconnect_max_s)
            try:
                self._open_stream(reconnecting=True)
                self._start_stream()
            except (SourceError, OSError):
                self._close_stream()

    def _deliver(self, sink: FrameSink) -> None:
        row = self._read % self._rows
        x = self._data[row]
        adc = float(self._adc[row])
        host = int(self._host[row])
        if math.isnan(adc):  # no stream clock: smooth the host arrival times instead
            host = round(self._clock.update(host * 1e-9, x.shape[0], self._gap[row]) * 1e9)
        else:  # smooth the ADC time; map it to the host by the floor of the clock offsets
            offset_s = self._clock.host_offset((host - round(adc * 1e9)) * 1e-9, x.shape[0])
            adc = self._clock.update(adc, x.shape[0], self._gap[row])
            host = round((adc + offset_s) * 1e9)
        energy = float(np.dot(x, x)) / x.shape[0]
        self._level_dbfs = 10.0 * math.log10(energy) if energy > 1e-20 else -200.0
        if self._resampler is not None:
            x = self._resampler.process(x)
            adc -= self._resampler.delay_s
            host -= self._resampler.delay_ns
        sink.audio(x, device_time_s=None if math.isnan(adc) else adc, host_ns=host)
        self._read += 1
        self.blocks += 1

    def _start_stream(self) -> None:
        if self._stream is None:
            self._open_stream()
        self._last_cb_ns = time.monotonic_ns()
        if self._resampler is not None:
            self._resampler.reset()
        try:
            self._stream.start()
        except Exception as e:  # sounddevice.PortAudioError; the module is imported lazily
            raise SourceError(f"microphone {self._dev()} does not start: {e}") from e

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            return
        try:
            stream.abort(ignore_errors=True)
            stream.close(ignore_errors=True)
        finally:
            devices.stream_closed()

    def _close(self) -> None:
        if not self._running:  # else the delivering thread closes it on its way out
            self._close_stream()
        self._info = None

    def _dev(self) -> str:
        d = self.device
        return f"{d.index} '{d.name}'" if d else str(self.config.device)

    def _status(self, kind: Any, message: str) -> SourceStatus:
        return SourceStatus(kind=kind, source=self.name, modality="audio", message=message)


class BlockClock:
    """Removes the jitter of per-block ADC times using the device's exact sample count.

    PortAudio's `inputBufferAdcTime` is `now - delay`, and the delay a driver or sound
    server reports jumps by milliseconds (measured through PulseAudio: 3-15 ms for a
    few blocks whenever another stream starts), while the samples themselves are spaced
    exactly by the device's crystal. A second-order delay-locked loop (as in JACK and
    PipeWire; bandwidth ~0.1 Hz) follows the device clock's offset and rate through
    those reports: reports off by more than `gate_s` are counted and ignored, and
    `max_misses` of them in a row (a real jump) re-anchor the loop, as does a gap
    (overflow or dropped block). Allocation-free; scalar math per block.

    The stream clock's offset to the host clock (`now - currentTime`, read in the
    callback) has one-sided noise: the callback can only read `now` late (it waits for
    the interpreter lock; measured 3.4 ms on a loaded 2-core box), never early. So
    `host_offset` keeps its floor, which rises by at most `offset_drift` per second of
    samples to follow a slow drift between the two clocks.
    """

    def __init__(
        self, *, bandwidth_hz: float = 0.1, gate_s: float = 0.002, max_misses: int = 25
    ) -> None:
        self.bandwidth_hz = bandwidth_hz
        self.gate_s = gate_s
        self.offset_drift = 100e-6
        self.max_misses = max_misses
        self.outliers = 0
        self.resets = 0
        self._nominal_period = 1.0 / 16000
        self.reset()

    def reset(self, rate: float | None = None) -> None:
        """Forget the lock (a new stream at `rate` samples per second)."""
        if rate:
            self._nominal_period = 1.0 / rate
        self._t = math.nan  # smoothed time of the next block's first sample
        self._period = math.nan  # seconds per sample
        self._misses = 0
        self._offset = math.nan  # floor of the stream clock -> host clock offset

    def host_offset(self, raw_s: float, n_samples: int) -> float:
        """The stream -> host clock offset for this block: the floor of the raw ones."""
        floor = self._offset + n_samples * self._nominal_period * self.offset_drift
        self._offset = raw_s if not raw_s >= floor else floor
        return self._offset

    def update(self, raw_s: float, n_samples: int, gap: bool = False) -> float:
        """Smoothed time of this block's first sample, given its raw time."""
        if gap or math.isnan(self._t):
            if not math.isnan(self._t):
                self.resets += 1
            return self._anchor(raw_s, n_samples)
        pred = self._t
        err = raw_s - pred
        if abs(err) > self.gate_s:
            self.outliers += 1
            self._misses += 1
            if self._misses >= self.max_misses:
                self.resets += 1
                return self._anchor(raw_s, n_samples)
            self._t = pred + n_samples * self._period
            return pred
        self._misses = 0
        w = 2.0 * math.pi * self.bandwidth_hz * n_samples * self._period
        out = pred + math.sqrt(2.0) * w * err
        self._period += w * w * err / n_samples
        self._t = out + n_samples * self._period
        return out

    def _anchor(self, raw_s: float, n_samples: int) -> float:
        if math.isnan(self._period):
            self._period = self._nominal_period
        self._misses = 0
        self._t = raw_s + n_samples * self._period
        return raw_s


class StreamResampler:
    """Rational polyphase resampler for fixed-size blocks, allocation-free per block.

    The input block holds `q * M` samples and the output `q * L` (rate_out / rate_in =
    L / M), so every block has the same phase pattern: the gather indices and filter taps
    are computed once. A Kaiser-windowed sinc low-pass (cut at 0.92 of the lower Nyquist)
    prevents aliasing. Output sample 0 of a block represents the instant `delay_s` before
    input sample 0 of that block (the filter's group delay), which the caller subtracts
    from the block's timestamps.
    """

    def __init__(self, *, rate_in: int, rate_out: int, block_ms: float = 10.0, zeros: int = 16):
        g = math.gcd(rate_in, rate_out)
        up, down = rate_out // g, rate_in // g
        q = max(1, round(rate_out * block_ms / 1000 / up))
        self.block_in, self.block_out = q * down, q * up
        taps = math.ceil(2 * zeros * max(1.0, down / up))
        n = taps * up
        fc = 0.5 * min(1.0 / up, 1.0 / down) * 0.92  # cycles per upsampled sample
        t = np.arange(n) - (n - 1) / 2
        h = 2 * fc * np.sinc(2 * fc * t) * np.kaiser(n, 8.0) * up
        k = np.arange(self.block_out)
        base, phase = (k * down) // up, (k * down) % up
        tt = np.arange(taps)
        self._idx = (taps - 1 + base[:, None] - tt[None, :]).astype(np.intp)
        self._h = h[phase[:, None] + tt[None, :] * up].astype(np.float32)
        self._buf = np.zeros(taps - 1 + self.block_in, np.float32)
        self._gather = np.zeros_like(self._h)
        self._out = np.zeros(self.block_out, np.float32)
        self._hist = taps - 1
        self.delay_s = (n - 1) / 2 / (up * rate_in)
        self.delay_ns = round(self.delay_s * 1e9)

    def reset(self) -> None:
        """Forget the history (after a gap)."""
        self._buf[:] = 0.0

    def process(self, block: np.ndarray) -> np.ndarray:
        """Resample one block of `block_in` samples; returns a view valid until the next call."""
        hist = self._hist
        self._buf[hist:] = block
        np.take(self._buf, self._idx, out=self._gather, mode="clip")  # "raise" buffers
        np.multiply(self._gather, self._h, out=self._gather)
        np.add.reduce(self._gather, axis=1, out=self._out)
        if hist:
            self._buf[:hist] = self._buf[-hist:]
        return self._out
