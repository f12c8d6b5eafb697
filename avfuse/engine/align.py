"""Aligner: which audio belongs with a video frame, and how much of it arrived.

For a video frame at host time t (from the video clock model), the model's audio
window is the `window_s` of audio ending at ``t + av_offset``. `av_offset` is how
much LATER the audio arrives than the video it belongs with (positive: audio late,
e.g. a microphone with more buffering than the camera). The end time is mapped to
a fractional absolute sample index through the audio clock model (`SampleClock`),
then snapped DOWN to the hop grid (a multiple of `hop_length`):

    end_index   = floor(index(t + av_offset) / hop) * hop
    start_index = end_index - window_samples

Snapping costs at most one hop (10 ms at the default 160/16000) of extra lag and
buys reuse: consecutive windows share whole STFT frames, so a streaming log-mel
only computes the hops that are new. The unsnapped index is kept
(`Window.exact_end_index`) so the alignment error can be measured without the snap.

Late audio: a window is complete once the sample ring's head reaches its end. The
pipeline waits for that at most a deadline (polling; the capture thread is never
blocked); then the window is read as it is and the missing part is reported.
Audio counts as present when at least `min_coverage` of the window is valid.

Running modes (validated once by the pipeline):
    fused       video-driven: one window per video frame (this class)
    audio       audio-driven: one window every `step_s` (`AudioStepper`)
    video       no audio at all: the audio mask is 0
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from avfuse.engine.clock import SampleClock, now_ns
from avfuse.engine.ring import ReadResult, SampleRing
from avfuse.kernels.reference import AudioParams
from avfuse.kernels.waveform import WaveformParams

AnyAudio = AudioParams | WaveformParams


def audio_hop(params: AnyAudio) -> int:
    """The grid audio windows end on: the STFT hop of a log-mel, the chunk of a waveform."""
    return params.chunk if isinstance(params, WaveformParams) else params.hop_length


MODES = ("fused", "audio", "video")


@dataclass(slots=True)
class Window:
    """An audio window in absolute sample indices.

    Attributes:
        start_index: first sample.
        end_index: one past the last sample; a multiple of hop_length.
        exact_end_index: the unsnapped index the window should end at.
        target_ns: host time the window should end at (frame time + A/V offset).
    """

    start_index: int
    end_index: int
    exact_end_index: float
    target_ns: int


class Aligner:
    """Maps video frame times to audio windows in a `SampleRing`.

    Args:
        params: the model's audio parameters (window, rate, hop).
        ring: the stream's sample ring.
        clock: the stream's audio sample clock.
        av_offset_ms: audio lateness relative to video (positive: audio late).
        deadline_ms: longest wait for late audio past the window end.
        min_coverage: fraction of valid samples for audio to count as present.
    """

    def __init__(
        self,
        *,
        params: AnyAudio,
        ring: SampleRing,
        clock: SampleClock,
        av_offset_ms: float = 0.0,
        deadline_ms: float = 100.0,
        min_coverage: float = 0.5,
    ) -> None:
        if deadline_ms < 0:
            raise ValueError("deadline_ms must be >= 0")
        if not 0 < min_coverage <= 1:
            raise ValueError("min_coverage must be in (0, 1]")
        if clock.sample_rate != params.sample_rate:
            raise ValueError(
                f"audio clock rate {clock.sample_rate} differs from the model's "
                f"{params.sample_rate}"
            )
        self.params = params
        self.ring = ring
        self.clock = clock
        self.window_samples = params.window_samples
        self.hop = audio_hop(params)
        self.av_offset_ns = int(round(av_offset_ms * 1e6))
        self.deadline_ns = int(round(deadline_ms * 1e6))
        self.min_coverage = min_coverage

    def window_for(self, video_host_ns: int) -> Window | None:
        """The audio window for a frame at `video_host_ns`; None before any audio arrived."""
        fit = self.clock.fit  # one snapshot: a reset on the capture thread cannot split it
        if fit is None:
            return None
        target = video_host_ns + self.av_offset_ns
        exact = self.clock.host_to_index(target, fit)
        end = int(np.floor(exact / self.hop)) * self.hop
        return Window(
            start_index=end - self.window_samples,
            end_index=end,
            exact_end_index=exact,
            target_ns=target,
        )

    def complete(self, window: Window) -> bool:
        """True once every sample of the window has been written (or skipped as a gap)."""
        return self.ring.head >= window.end_index

    def read(self, window: Window, out: np.ndarray) -> ReadResult:
        """Copy the window into `out` (window_samples float32); missing samples read 0."""
        return self.ring.read(window.start_index, out)

    def present(self, result: ReadResult) -> bool:
        """Whether audio counts as present for the model's mask."""
        return result.coverage >= self.min_coverage

    def wait(
        self, video_host_ns: int, out: np.ndarray, *, poll_s: float = 0.001
    ) -> tuple[Window | None, ReadResult | None]:
        """Blocking convenience: wait up to the deadline for the window, then read it.

        The pipeline uses the non-blocking `window_for`/`complete`/`read` instead, so one
        stream's late audio never holds up another stream; this is for simple callers.
        """
        give_up = now_ns() + self.deadline_ns
        while True:
            w = self.window_for(video_host_ns)
            if w is not None and self.complete(w):
                break
            if now_ns() >= give_up:
                break
            time.sleep(poll_s)
        if w is None:
            return None, None
        return w, self.read(w, out)


class AudioStepper:
    """Audio-driven windows: one every `step_s`, ends on the hop grid (audio-only mode).

    A waveform model with context starts at its first chunk (the context before the
    stream's start reads as missing zeros, as the models' own packages pad it); a
    log-mel model at its first whole window.

    Args:
        params: the model's audio parameters.
        ring: the stream's sample ring.
        step_s: time between windows; rounded to whole hops (None: one hop).
    """

    def __init__(self, *, params: AnyAudio, ring: SampleRing, step_s: float | None) -> None:
        hop = audio_hop(params)
        step_samples = hop if step_s is None else step_s * params.sample_rate
        self.step = max(hop, int(round(step_samples / hop)) * hop)
        self.window_samples = params.window_samples
        self.hop = hop
        self.ring = ring
        if isinstance(params, WaveformParams):
            # the first call after the first chunk (context zero-padded), or after a
            # whole window (not rounded up to the chunk grid: the windows then start at 0)
            self.next_end = params.chunk if params.pad_start else params.window_samples
        else:
            self.next_end = -(-self.window_samples // hop) * hop
        #: windows skipped because the consumer fell more than a ring behind
        self.skipped = 0

    def poll(self) -> Window | None:
        """The next complete window, or None when its audio has not all arrived."""
        head = self.ring.head
        if head < self.next_end:
            return None
        tail = self.ring.tail
        oldest_end = tail + self.window_samples
        if tail > 0 and self.next_end < oldest_end:  # its start was overwritten already
            behind = -(-(oldest_end - self.next_end) // self.step)
            self.skipped += behind
            self.next_end += behind * self.step
            if head < self.next_end:
                return None
        end = self.next_end
        self.next_end += self.step
        return Window(
            start_index=end - self.window_samples,
            end_index=end,
            exact_end_index=float(end),
            target_ns=0,
        )


__all__ = ["MODES", "Aligner", "AnyAudio", "AudioStepper", "Window", "audio_hop"]
