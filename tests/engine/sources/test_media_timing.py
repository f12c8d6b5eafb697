"""MediaSource timing on real files: pacing, PTS gaps, audio by sample count, held frames.

The helpers are `avfuse.engine.sources.media_timing`; most tests drive them through
MediaSource on files ffmpeg writes, and check what comes out against PyAV alone.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from avfuse.engine.sources.media import MediaSource
from avfuse.engine.sources.media_timing import PtsChecker
from tests.fixtures.ffmpeg import (
    concat_files,
    needs_ffmpeg,
    write_mpegts,
    write_testsrc_file,
    write_video_shorter_than_audio,
    write_video_with_gap,
)
from tests.fixtures.sinks import RecordingFrameSink

SR = 16000

Sink = RecordingFrameSink


def read_all(src: MediaSource, timeout: float = 30.0) -> Sink:
    sink = Sink()
    src.start(sink)
    assert src.finished.wait(timeout), "source did not finish"
    src.stop()
    assert sink.statuses[-1].kind == "eos", sink.statuses
    return sink


def statuses_of(sink: Sink, kind: str) -> list:
    return [s for s in sink.statuses if s.kind == kind]


# ---------------------------------------------------------------- pacing


def test_realtime_file_is_paced_to_its_timestamps(tmp_path: Path) -> None:
    path = write_testsrc_file(tmp_path / "t.mp4", seconds=1.0)
    sink = read_all(MediaSource(path, sample_rate=SR, realtime=True))
    assert len(sink.v) == 30
    for _, _, host, arrival in sink.v:
        assert arrival >= host  # never delivered ahead of its time
    for samples, _, host, arrival in sink.a:  # a block once its last sample is captured
        assert arrival >= host + len(samples) * 1_000_000_000 // SR


# ---------------------------------------------------------------- PTS gaps and regressions
def write_gappy_mkv(path: Path) -> None:
    """Video frames 0-9 and 20-29 at 30 fps, audio blocks with 0.5 s missing after 0.256 s."""
    import av

    with av.open(str(path), "w") as out:
        vs = out.add_stream("mpeg4", rate=30)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        aus = out.add_stream("pcm_s16le", rate=16000, layout="mono")
        img = np.zeros((48, 64, 3), np.uint8)
        for k in [*range(10), *range(20, 30)]:
            f = av.VideoFrame.from_ndarray(img, format="bgr24")
            f.pts = k
            out.mux(vs.encode(f))
        out.mux(vs.encode(None))
        for pos in [*range(0, 4096, 1024), *range(12096, 16192, 1024)]:
            a = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), np.int16), format="s16", layout="mono"
            )
            a.sample_rate, a.pts = 16000, pos
            out.mux(aus.encode(a))
        out.mux(aus.encode(None))


def test_pts_gaps_in_a_file_are_reported_not_filled(tmp_path: Path) -> None:
    write_gappy_mkv(tmp_path / "gap.mkv")
    sink = read_all(MediaSource(tmp_path / "gap.mkv", sample_rate=SR))
    warnings = {s.modality: s.message for s in sink.statuses if s.kind == "warning"}
    assert "gap" in warnings["video"] and "gap" in warnings["audio"]
    vt = np.array([v[1] for v in sink.v])
    assert len(vt) == 20 and np.diff(vt).max() == pytest.approx(11 / 30, abs=1e-3)
    at = np.array([a[1] for a in sink.a])
    assert (np.diff(at) > 0).all()
    assert sum(len(a[0]) for a in sink.a) == pytest.approx(8 * 1024, abs=64)


def test_pts_checker_reports_gaps_and_regressions() -> None:
    c = PtsChecker(modality="video", nominal_step_s=1 / 30)
    assert [c.check(k / 30, None) for k in range(5)] == [None] * 5
    assert "gap" in c.check(8 / 30, None)
    assert c.check(9 / 30, None) is None
    assert "went back" in c.check(3 / 30, None)
    assert (c.gaps, c.regressions) == (1, 1)
    a = PtsChecker(modality="audio", nominal_step_s=None)
    assert a.check(0.0, 0.064) is None and a.check(0.064, 0.064) is None
    assert "gap" in a.check(0.2, 0.064)


def test_pts_checker_stops_reporting_past_its_limit() -> None:
    c = PtsChecker(modality="audio", nominal_step_s=None, report_limit=3)
    msgs = [c.check(k * 0.1, 0.05) for k in range(8)]  # every step is a 0.05 s gap
    assert msgs[0] is None and all("gap" in m for m in msgs[1:4])
    assert "counted, not reported" in msgs[4] and msgs[5:] == [None] * 3
    assert c.gaps == 7
    overlap = PtsChecker(modality="audio", nominal_step_s=None)
    overlap.check(1.0, 0.064)
    msg = overlap.check(1.012, 0.064)  # later, but inside the previous frame
    assert "starts before the previous one ends" in msg and "went back" not in msg


# ---------------------------------------------------------------- audio timed by sample count
def audio_span(path: Path) -> tuple[float, float]:
    """(first sample's time, end time) of the audio of `path`, by PyAV alone."""
    with av.open(str(path)) as c:
        frames = list(c.decode(audio=0))
    last = frames[-1]
    return float(frames[0].time), float(last.time) + last.samples / last.sample_rate


def steps(sink: Sink) -> np.ndarray:
    """Per pair of consecutive audio blocks: start of the second minus end of the first (s)."""
    starts = np.array([dev for _, dev, _, _ in sink.a])
    ends = starts + np.array([len(x) for x, _, _, _ in sink.a]) / SR
    return starts[1:] - ends[:-1]


@needs_ffmpeg
@pytest.mark.timeout(120)
def test_audio_rate_change_in_mpegts_keeps_device_times_continuous(tmp_path: Path) -> None:
    """After a 16 -> 44.1 kHz switch the demuxer still spaces AAC packets 64 ms apart (the
    opening rate) between the true timestamps: device times must follow the samples."""
    a = write_mpegts(tmp_path / "a.ts", size=None, sample_rate=16000)
    b = write_mpegts(tmp_path / "b.ts", size=None, sample_rate=44100, ts_offset_s=1.1)
    joined = concat_files(tmp_path / "ab.ts", a, b)
    assert abs(audio_span(b)[0] - audio_span(a)[1]) < 0.02  # the parts join without a hole
    sink = read_all(MediaSource(joined, sample_rate=SR))
    assert not statuses_of(sink, "warning"), sink.statuses
    assert len(statuses_of(sink, "format_changed")) == 1
    assert np.abs(steps(sink)).max() < 1e-3
    # the blocks cover the audio: 1 s + 1 s, within a block
    t0, t1 = sink.a[0][1], sink.a[-1][1] + len(sink.a[-1][0]) / SR
    assert t1 - t0 == pytest.approx(len(np.concatenate([x[0] for x in sink.a])) / SR, abs=1e-3)
    host = np.array([h for _, _, h, _ in sink.a])
    assert (np.diff(host) > 0).all()


@needs_ffmpeg
@pytest.mark.timeout(120)
@pytest.mark.parametrize("rate", [16000, 44100], ids=["same-rate", "rate-change"])
def test_audio_hole_in_mpegts_is_one_gap(tmp_path: Path, rate: int) -> None:
    """A real 2 s hole in the audio is still reported once, and the device times jump by it."""
    a = write_mpegts(tmp_path / "a.ts", size=None, sample_rate=16000)
    a_end = audio_span(a)[1]
    b = write_mpegts(tmp_path / "b.ts", size=None, sample_rate=rate, ts_offset_s=3.15)
    hole = audio_span(b)[0] - a_end
    assert hole == pytest.approx(2.0, abs=0.05)
    sink = read_all(MediaSource(concat_files(tmp_path / "ab.ts", a, b), sample_rate=SR))
    warnings = statuses_of(sink, "warning")
    assert len(warnings) == 1 and warnings[0].modality == "audio", sink.statuses
    assert "audio gap of" in warnings[0].message
    reported = float(warnings[0].message.split("audio gap of ")[1].split()[0])
    assert reported == pytest.approx(hole, abs=0.01)
    jumps = steps(sink)
    assert np.sort(np.abs(jumps))[-2] < 1e-3  # continuous but for the hole
    assert jumps.max() == pytest.approx(hole, abs=0.01)


# ---------------------------------------------------------------- frames the decoder holds
class OrderedSink(RecordingFrameSink):
    """A RecordingFrameSink that also keeps the order of deliveries across both modalities."""

    def __init__(self) -> None:
        super().__init__()
        self.order: list[tuple[str, float]] = []

    def audio(self, samples: np.ndarray, *, device_time_s: float | None, host_ns: int) -> None:
        super().audio(samples, device_time_s=device_time_s, host_ns=host_ns)
        self.order.append(("audio", device_time_s))

    def video(self, frame: np.ndarray, *, device_time_s: float | None, host_ns: int) -> None:
        super().video(frame, device_time_s=device_time_s, host_ns=host_ns)
        self.order.append(("video", device_time_s))


def read_ordered(src: MediaSource, timeout: float = 60.0) -> OrderedSink:
    sink = OrderedSink()
    src.start(sink)
    assert src.finished.wait(timeout), "source did not finish"
    src.stop()
    assert sink.statuses[-1].kind == "eos", sink.statuses
    return sink


def late_frames(sink: OrderedSink, limit_s: float) -> list[tuple[float, float]]:
    """(frame time, audio time) for each video frame delivered after audio > its time + limit."""
    newest_audio, late = -np.inf, []
    for kind, t in sink.order:
        if kind == "audio":
            newest_audio = max(newest_audio, t)
        elif newest_audio > t + limit_s:
            late.append((t, newest_audio))
    return late


def video_of(path: Path) -> tuple[list[float], list[np.ndarray], list[float]]:
    """PyAV alone: frame times from the container start, bgr24 images, keyframe times."""
    with av.open(str(path)) as c:
        start = (c.start_time or 0) / av.time_base
        frames = list(c.decode(video=0))
    with av.open(str(path)) as c:
        keys = [float(p.pts * p.time_base) - start for p in c.demux(video=0) if p.is_keyframe]
    times = [float(f.time) - start for f in frames]
    return times, [f.to_ndarray(format="bgr24") for f in frames], keys


def reorders(path: Path) -> bool:
    """True when the video packets of `path` are stored out of time order (B-frames)."""
    with av.open(str(path)) as c:
        pts = [p.pts for p in c.demux(video=0) if p.pts is not None]
    return pts != sorted(pts)


@needs_ffmpeg
@pytest.mark.timeout(120)
@pytest.mark.parametrize("preset", ["ultrafast", "veryfast"], ids=["threads", "bframes"])
def test_frames_held_in_the_decoder_come_before_later_audio(tmp_path: Path, preset: str) -> None:
    """5 s of video, 40 s of audio: the last frames must not wait for the end of the file."""
    path = write_video_shorter_than_audio(tmp_path / "short.mp4", preset=preset)
    times, _, _ = video_of(path)
    assert len(times) == 150 and times[-1] == pytest.approx(149 / 30, abs=1e-3)
    assert reorders(path) == (preset == "veryfast")
    sink = read_ordered(MediaSource(path, sample_rate=SR))
    assert [t for _, t, _, _ in sink.v] == pytest.approx(times, abs=1e-6)  # each once, in order
    assert sink.a[-1][1] > 39.0  # the audio is read to its end
    assert not late_frames(sink, 1.2)
    assert not statuses_of(sink, "warning"), sink.statuses


@needs_ffmpeg
@pytest.mark.timeout(120)
@pytest.mark.parametrize("preset", ["ultrafast", "veryfast"], ids=["threads", "bframes"])
@pytest.mark.parametrize("gap", [(2.1, 5.1), (2.0, 5.0)], ids=["pframe-after", "keyframe-after"])
def test_video_after_a_gap_in_the_video_is_decoded_in_full(
    tmp_path: Path, preset: str, gap: tuple[float, float]
) -> None:
    """Video missing for 3 s under continuous audio: the frames before the gap come in time,
    and every frame after it decodes as PyAV does, whether the first one is a keyframe or
    needs the frames before the gap."""
    path = write_video_with_gap(tmp_path / "gap.mp4", preset=preset, gap=gap)
    times, images, keys = video_of(path)
    before = round(gap[0] * 30)
    assert len(times) == 210 - 90 and times[before] == pytest.approx(gap[1], abs=1e-3)
    after_is_key = any(abs(k - gap[1]) < 1e-3 for k in keys)
    assert after_is_key == (gap[1] == 5.0)  # the 61st frame coded: a keyframe by count (-g 30)
    sink = read_ordered(MediaSource(path, sample_rate=SR))
    assert [t for _, t, _, _ in sink.v] == pytest.approx(times, abs=1e-6)
    for (got, t, _, _), ref in zip(sink.v, images, strict=True):
        assert np.array_equal(got, ref), f"frame at {t:.3f} s differs from PyAV's"
    assert not late_frames(sink, 1.2)
    gaps = [s.message for s in statuses_of(sink, "warning") if s.modality == "video"]
    assert len(gaps) == 1 and "video gap of" in gaps[0], sink.statuses
    assert float(gaps[0].split("video gap of ")[1].split()[0]) == pytest.approx(3.0, abs=0.1)
