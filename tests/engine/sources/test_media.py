"""MediaSource on real files and a real live UDP stream served by ffmpeg on 127.0.0.1."""

from __future__ import annotations

import threading
import time
import wave
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from av.codec.context import ThreadType

from avfuse.engine.sources.media import MediaSource
from avfuse.engine.sources.synthetic import (
    SceneRender,
    SceneScript,
    load_default_material,
    render_scene_to_file,
)
from tests.fixtures.ffmpeg import (
    closed_tcp_port,
    concat_files,
    free_port,
    lavfi_args,
    needs_ffmpeg,
    push_rtsp,
    serve_http,
    serve_udp,
    udp_testsrc,  # noqa: F401 - pytest fixture
    write_mpegts,
    write_testsrc_file,
)
from tests.fixtures.sinks import RecordingFrameSink

SR = 16000
SCRIPT = SceneScript.default(seed=3, digits="164")


Sink = RecordingFrameSink


def read_all(src: MediaSource, timeout: float = 30.0) -> Sink:
    sink = Sink()
    src.start(sink)
    assert src.finished.wait(timeout), "source did not finish"
    src.stop()
    assert sink.statuses[-1].kind == "eos", sink.statuses
    return sink


@pytest.fixture(scope="module")
def scene_mp4(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    """A 3-digit scene encoded to mp4 (48 kHz AAC) with the audio 100 ms late."""
    path = tmp_path_factory.mktemp("media") / "scene.mp4"
    truth = render_scene_to_file(SCRIPT, path, av_offset_ms=100, sample_rate=48000)
    return path, truth


def test_rendered_file_keeps_the_av_offset(scene_mp4: tuple[Path, list[dict]]) -> None:
    path, truth = scene_mp4
    assert path.with_suffix(".json").is_file()
    src = MediaSource(path, sample_rate=SR)
    info = src.open()
    assert not info.live and info.audio is not None and info.video is not None
    assert (info.video.width, info.video.height, info.video.fps) == (320, 240, 30.0)
    sink = read_all(src)
    origin = sink.v[0][2]
    assert sink.v[0][1] == 0.0
    # virtual clock: host = origin + PTS offset, for both modalities
    for _, dev, host, _ in sink.a + sink.v:
        assert host - origin == pytest.approx(dev * 1e9, abs=1e3)
    vt = np.array([v[1] for v in sink.v])
    assert (np.diff(vt) > 0).all()
    assert len(vt) == int(SCRIPT.duration_s * 30)
    audio = np.concatenate([a[0] for a in sink.a])
    assert audio.dtype == np.float32
    at = np.array([a[1] for a in sink.a])
    assert (np.diff(at) > 0).all()
    assert len(audio) == pytest.approx(vt[-1] * SR, abs=0.1 * SR)  # resampled 48k -> 16k
    # The offset baked into the file comes back: speech onset relative to what was said,
    # minus card onset relative to the frame the card was put on, within one frame.
    said = SceneRender(SCRIPT, load_default_material(), sample_rate=SR).audio
    background = sink.v[0][0].astype(np.int16)
    for t in truth:
        card_seen = next(
            dev
            for f, dev, _, _ in sink.v
            if dev >= t["card"][0] - 0.1 and np.abs(f - background).mean() > 8
        )
        card_put = np.ceil(t["card"][0] * 30 - 1e-6) / 30
        s0 = int((t["speech"][0] - 0.05) * SR)
        said_at = (s0 + np.flatnonzero(np.abs(said[s0:]) > 0.05)[0]) / SR
        heard_at = onset(sink, t["speech"][0] - 0.05)
        measured = (heard_at - said_at) - (card_seen - card_put)
        assert measured == pytest.approx(0.100, abs=1 / 30), t


def onset(sink: Sink, after_s: float, thr: float = 0.05) -> float:
    """Device time of the first delivered audio sample above `thr` after `after_s`."""
    for samples, dev, _, _ in sink.a:
        t = dev + np.arange(len(samples)) / SR
        hit = np.flatnonzero((np.abs(samples) > thr) & (t >= after_s))
        if hit.size:
            return float(t[hit[0]])
    raise AssertionError("no onset")


def test_video_only_and_audio_only(scene_mp4: tuple[Path, list[dict]]) -> None:
    path, _ = scene_mp4
    v = MediaSource(path, sample_rate=SR, audio=False)
    assert v.open().audio is None
    sink = read_all(v)
    assert sink.v and not sink.a
    a = MediaSource(path, sample_rate=SR, video=False)
    assert a.open().video is None
    sink = read_all(a)
    assert sink.a and not sink.v


def write_wav(path: Path, x: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())


@pytest.mark.parametrize("rate", [44100, 48000])
def test_wav_is_resampled_and_keeps_time(tmp_path: Path, rate: int) -> None:
    t = np.arange(2 * rate) / rate
    x = np.where((t >= 1.0) & (t < 1.5), 0.5 * np.sin(2 * np.pi * 1000 * t), 0.0)
    write_wav(tmp_path / "a.wav", x, rate)
    src = MediaSource(tmp_path / "a.wav", sample_rate=SR)
    info = src.open()
    assert info.video is None and info.audio is not None and info.audio.sample_rate == SR
    sink = read_all(src)
    y = np.concatenate([a[0] for a in sink.a])
    assert abs(len(y) - 2 * SR) <= 32
    loud = np.flatnonzero(np.abs(y) > 0.25)
    assert loud[0] / SR == pytest.approx(1.0, abs=0.002)
    assert loud[-1] / SR == pytest.approx(1.5, abs=0.002)
    # a 1 kHz tone stays 1 kHz at the new rate
    seg = y[int(1.1 * SR) : int(1.4 * SR)]
    freq = np.argmax(np.abs(np.fft.rfft(seg))) * SR / len(seg)
    assert freq == pytest.approx(1000, abs=5)


@needs_ffmpeg
def test_live_udp_stream_timestamps_increase(udp_testsrc: str) -> None:  # noqa: F811
    src = MediaSource(udp_testsrc, sample_rate=SR, open_timeout_s=10, reconnect_s=0)
    info = src.open()
    assert info.live and info.video is not None and info.audio is not None
    assert (info.video.width, info.video.height) == (320, 240)
    sink = Sink()
    src.start(sink)
    deadline = time.monotonic() + 15
    while (len(sink.v) < 30 or len(sink.a) < 20) and time.monotonic() < deadline:
        time.sleep(0.1)
    src.stop()
    assert len(sink.v) >= 30 and len(sink.a) >= 20, sink.statuses
    for items in (sink.a, sink.v):
        dev = np.array([x[1] for x in items])
        host = np.array([x[2] for x in items])
        assert (np.diff(dev) > 0).all()
        assert (np.diff(host) >= 0).all()
        assert all(x[2] == x[3] or x[2] <= x[3] for x in items)  # stamped at arrival
    assert sink.v[0][0].shape == (240, 320, 3)
    # both modalities share one origin: their device times are close at the start
    assert abs(sink.a[0][1] - sink.v[0][1]) < 1.0
    assert not [s for s in sink.statuses if s.kind == "error"]


@needs_ffmpeg
def test_live_stream_end_is_reported_as_disconnect(tmp_path: Path) -> None:
    path = write_testsrc_file(tmp_path / "t.mp4", seconds=2.0)
    with serve_udp(["-re", "-i", str(path)], copy=True) as url:
        src = MediaSource(url, sample_rate=SR, read_timeout_s=1.0, reconnect_s=0)
        sink = Sink()
        src.start(sink)
        assert src.finished.wait(15)
    src.stop()
    kinds = [s.kind for s in sink.statuses]
    assert "disconnected" in kinds and sink.v
    assert kinds[-1] == "eos"


def wait_for(cond, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.05)
    return bool(cond())


@needs_ffmpeg
def test_udp_sender_restart_is_reported_as_reconnect() -> None:
    port = free_port()
    src = MediaSource(
        f"udp://127.0.0.1:{port}",
        sample_rate=SR,
        read_timeout_s=1,
        open_timeout_s=3,
        reconnect_s=10,
    )
    sink = Sink()
    with serve_udp(lavfi_args(seconds=2), port=port):
        src.open()
        src.start(sink)
        assert wait_for(lambda: len(sink.v) > 5, 10)
        assert wait_for(lambda: any(s.kind == "disconnected" for s in sink.statuses), 10)
    n_before = len(sink.v)
    with serve_udp(lavfi_args(seconds=4), port=port):
        assert wait_for(lambda: any(s.kind == "reconnected" for s in sink.statuses), 10)
        assert wait_for(lambda: len(sink.v) > n_before + 5, 10)
        src.stop()
    kinds = [s.kind for s in sink.statuses if s.kind != "warning"]
    assert kinds[:2] == ["disconnected", "reconnected"], sink.statuses
    assert sink.statuses[0].recoverable


@needs_ffmpeg
def test_rtsp_stream_pushed_to_a_listening_source() -> None:
    url = f"rtsp://127.0.0.1:{closed_tcp_port()}/live"
    src = MediaSource(
        url, sample_rate=SR, options={"rtsp_flags": "listen"}, open_timeout_s=10, reconnect_s=0
    )
    opened: list = []
    opener = threading.Thread(target=lambda: opened.append(src.open()))
    opener.start()  # the source listens; the ffmpeg below connects to it
    time.sleep(0.3)
    with push_rtsp(url, seconds=5):
        opener.join(12)
        assert opened and opened[0].live and opened[0].video is not None
        sink = Sink()
        src.start(sink)
        assert wait_for(lambda: len(sink.v) >= 15 and len(sink.a) >= 10, 10)
        src.stop()
    for items in (sink.a, sink.v):
        assert (np.diff([x[1] for x in items]) > 0).all()


# ---------------------------------------------------------------- format changes
def frames_of(path: Path) -> list[np.ndarray]:
    """Every video frame of `path` as bgr24, decoded by PyAV alone (the reference)."""
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]


def samples_of(path: Path) -> tuple[int, int]:
    """(decoded samples, sample rate) of the audio of `path`, by PyAV alone."""
    with av.open(str(path)) as c:
        frames = list(c.decode(audio=0))
    return sum(f.samples for f in frames), frames[0].sample_rate


def statuses_of(sink: Sink, kind: str) -> list:
    return [s for s in sink.statuses if s.kind == kind]


@needs_ffmpeg
@pytest.mark.timeout(120)
def test_resolution_change_mid_stream_is_scaled_to_the_opened_size(tmp_path: Path) -> None:
    small = write_mpegts(tmp_path / "a.ts", size="320x240")
    big = write_mpegts(tmp_path / "b.ts", size="640x480", ts_offset_s=1.0)
    joined = concat_files(tmp_path / "ab.ts", small, big)
    src = MediaSource(joined, sample_rate=SR)
    info = src.open()
    assert info.video is not None and (info.video.width, info.video.height) == (320, 240)
    sink = read_all(src)
    assert not statuses_of(sink, "error"), sink.statuses
    assert len(sink.v) == 60
    assert {f.shape for f, *_ in sink.v} == {(240, 320, 3)}
    assert {f.dtype for f, *_ in sink.v} == {np.dtype(np.uint8)}
    changed = statuses_of(sink, "format_changed")
    assert len(changed) == 1 and changed[0].modality == "video"
    msg = changed[0].message
    assert "320x240" in msg and "640x480" in msg and "the size the stream opened with" in msg
    # the big frames are scaled (not cropped): close to an area resize of the reference
    for k, ref in enumerate(frames_of(big)):
        got = sink.v[30 + k][0].astype(np.float32)
        scaled = cv2.resize(ref, (320, 240), interpolation=cv2.INTER_AREA)
        assert np.abs(got - scaled).mean() < 6.0, k
        assert np.abs(got - ref[:240, :320]).mean() > 30.0, k


@needs_ffmpeg
@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("first", "second"),
    [((16000, 1), (44100, 1)), ((16000, 1), (16000, 2)), ((44100, 2), (16000, 1))],
    ids=["16k-to-44k", "mono-to-stereo", "44k-stereo-to-16k-mono"],
)
def test_audio_format_change_mid_stream_keeps_the_requested_rate(
    tmp_path: Path, first: tuple[int, int], second: tuple[int, int]
) -> None:
    a = write_mpegts(tmp_path / "a.ts", size=None, sample_rate=first[0], channels=first[1])
    b = write_mpegts(
        tmp_path / "b.ts",
        size=None,
        sample_rate=second[0],
        channels=second[1],
        ts_offset_s=1.1,
        frequency=1000,
    )
    joined = concat_files(tmp_path / "ab.ts", a, b)
    (na, ra), (nb, rb) = samples_of(a), samples_of(b)
    assert (ra, rb) == (first[0], second[0])  # the parts really have these rates
    src = MediaSource(joined, sample_rate=SR)
    assert src.open().audio.sample_rate == SR
    sink = read_all(src)
    assert not statuses_of(sink, "error"), sink.statuses
    changed = statuses_of(sink, "format_changed")
    assert len(changed) == 1 and changed[0].modality == "audio", sink.statuses
    layouts = {1: "mono", 2: "stereo"}
    for rate, ch in (first, second):
        assert f"{rate} Hz {layouts[ch]}" in changed[0].message
    assert {x[0].dtype for x in sink.a} == {np.dtype(np.float32)}
    assert {x[0].ndim for x in sink.a} == {1}
    y = np.concatenate([x[0] for x in sink.a])
    assert abs(len(y) - (na / ra + nb / rb) * SR) <= 1024  # duration * rate, within a block
    # the second part's 1 kHz tone is 1 kHz at the requested rate: really resampled
    tail = y[-SR // 2 :]
    freq = np.argmax(np.abs(np.fft.rfft(tail))) * SR / len(tail)
    assert freq == pytest.approx(1000, abs=5)


# ---------------------------------------------------------------- credentials
@needs_ffmpeg
@pytest.mark.timeout(60)
def test_url_credentials_are_used_to_open_but_never_shown(tmp_path: Path) -> None:
    write_mpegts(tmp_path / "clip.ts", seconds=1.0)
    with serve_http(tmp_path, user="cam", password="Pa55-w0rd") as base:
        url = base.replace("http://", "http://cam:Pa55-w0rd@") + "/clip.ts?token=T0k3n"
        # live=False: read the whole file (a live input drops what probing read)
        src = MediaSource(url, sample_rate=SR, live=False)
        assert src.name == base.replace("http://", "http://cam:***@") + "/clip.ts?token=***"
        info = src.open()  # the server answers 401 unless the real password is sent
        assert info.name == src.name and info.video is not None
        sink = Sink()
        src.start(sink)
        assert src.finished.wait(20)
        src.stop()
    assert len(sink.v) == 30
    shown = [repr(src.config), *(repr(s) for s in sink.statuses)]
    assert not [t for t in shown if "Pa55-w0rd" in t or "T0k3n" in t], shown
    assert {s.source for s in sink.statuses} == {src.name}


@needs_ffmpeg
def test_a_live_decoder_holds_no_frames_back_on_any_connection() -> None:
    """Frame threading holds N - 1 decoded frames back (~67 ms on two cores): a live
    input decodes with slice threads only, on its first connection and after a reconnect
    alike (before, only the first connection had frame threads, so the stream's latency
    changed with each reconnect)."""
    port = free_port()
    src = MediaSource(f"udp://127.0.0.1:{port}", sample_rate=SR, read_timeout_s=1,
                      open_timeout_s=3, reconnect_s=10)  # fmt: skip
    sink = Sink()
    seen = []
    with serve_udp(lavfi_args(seconds=2), port=port):
        src.open()
        seen.append(src._vstream.thread_type)
        src.start(sink)
        assert wait_for(lambda: any(s.kind == "disconnected" for s in sink.statuses), 10)
    with serve_udp(lavfi_args(seconds=4), port=port):
        assert wait_for(lambda: any(s.kind == "reconnected" for s in sink.statuses), 10)
        seen.append(src._vstream.thread_type)
        src.stop()
    assert seen == [ThreadType.SLICE, ThreadType.SLICE], seen


def test_a_file_decoder_keeps_frame_threads(scene_mp4: tuple[Path, list[dict]]) -> None:
    src = MediaSource(scene_mp4[0], sample_rate=SR)
    src.open()
    try:
        assert src._vstream.thread_type == ThreadType.AUTO  # frame and slice threads
    finally:
        src.stop()


def test_a_realtime_file_resamples_its_audio_in_batches_with_the_same_samples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Played in real time, a file is decoded ahead, so its audio is resampled 8 frames
    at a time (one resampler call instead of 8): the samples and their times must be
    exactly those of the frame-by-frame path a file read at full speed takes."""
    from avfuse.engine.sources import media_reader

    path = write_testsrc_file(tmp_path / "t.mp4", seconds=1.5, sample_rate=48000)
    calls = {"n": 0}
    make = media_reader.MediaReader._new_resampler

    class Counting:
        def __init__(self, inner: av.AudioResampler) -> None:
            self.inner = inner

        def resample(self, frame):  # noqa: ANN001 - av.AudioFrame | None
            calls["n"] += frame is not None
            return self.inner.resample(frame)

    monkeypatch.setattr(
        media_reader.MediaReader, "_new_resampler", lambda self: Counting(make(self))
    )
    fast = read_all(MediaSource(path, sample_rate=SR, video=False))
    per_frame = calls["n"]
    calls["n"] = 0
    paced = read_all(MediaSource(path, sample_rate=SR, video=False, realtime=True))
    assert per_frame >= 60  # 1.5 s of 1024-sample AAC frames at 48 kHz: ~71
    assert calls["n"] <= per_frame / 8 + 3, (calls["n"], per_frame)
    np.testing.assert_array_equal(
        np.concatenate([a for a, *_ in paced.a]), np.concatenate([a for a, *_ in fast.a])
    )
    first_dev = [d for _, d, _, _ in paced.a][0]
    assert first_dev == [d for _, d, _, _ in fast.a][0]
