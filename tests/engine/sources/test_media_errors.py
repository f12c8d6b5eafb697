"""MediaSource errors: every bad file, URL or lost stream is one line naming the fix.

Real inputs only: files and devices on disk, ffmpeg senders and HTTP servers on
127.0.0.1, closed ports. The classification itself is `avfuse.engine.sources.media_errors`.
"""

from __future__ import annotations

import signal
import socket
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from avfuse.engine.sources.media import MediaSource
from avfuse.errors import SourceError, StreamFormatError, UsageError
from tests.fixtures.ffmpeg import (
    FFmpegProcess,
    closed_tcp_port,
    free_port,
    lavfi_args,
    mp4_sample_description_offset,
    mpegts_udp_args,
    needs_ffmpeg,
    serve_http,
    write_mpegts,
    write_testsrc_file,
)
from tests.fixtures.sinks import RecordingFrameSink

SR = 16000


def read_all(src: MediaSource, timeout: float = 30.0) -> RecordingFrameSink:
    """Run `src` to its end; the sink with everything it delivered."""
    sink = RecordingFrameSink()
    src.start(sink)
    assert src.finished.wait(timeout), "source did not finish"
    src.stop()
    assert sink.statuses[-1].kind == "eos", sink.statuses
    return sink


def wait_for(cond, timeout: float) -> bool:
    """Wait up to `timeout` s for `cond()` to hold; its last value."""
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.05)
    return bool(cond())


# ---------------------------------------------------------------- opening
def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="av_offset_ms"):
        MediaSource(tmp_path / "a.mp4", av_offset_ms=3)
    with pytest.raises(SourceError, match="does not exist: check the path"):
        MediaSource(tmp_path / "nope.mp4", sample_rate=SR).open()
    with pytest.raises(SourceError, match="directory"):
        MediaSource(tmp_path, sample_rate=SR).open()


@pytest.mark.parametrize("name", ["video_drain_after_s", "audio_gap_tolerance_s"])
@pytest.mark.parametrize("value", [0, -1.0, float("nan")])
def test_timing_settings_that_are_not_positive_are_named(
    tmp_path: Path, name: str, value: float
) -> None:
    with pytest.raises(UsageError, match=f"{name}=.* is not a positive number of seconds"):
        MediaSource(tmp_path / "a.mp4", **{name: value})


def test_corrupt_file_is_a_format_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    with pytest.raises(StreamFormatError, match="not readable media"):
        MediaSource(bad, sample_rate=SR).open()


def test_file_without_the_wanted_modality(tmp_path: Path) -> None:
    with wave.open(str(tmp_path / "a.wav"), "wb") as w:  # 0.1 s of silence
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(bytes(3200))
    with pytest.raises(StreamFormatError, match="no video stream"):
        MediaSource(tmp_path / "a.wav", sample_rate=SR, audio=False).open()


@pytest.mark.parametrize("scheme", ["rtsp", "http", "tcp"])
def test_refused_connection_is_a_source_error(scheme: str) -> None:
    url = f"{scheme}://127.0.0.1:{closed_tcp_port()}/live"
    with pytest.raises(SourceError, match="check that the server is running"):
        MediaSource(url, sample_rate=SR, open_timeout_s=3).open()


def test_silent_udp_url_times_out_instead_of_hanging() -> None:
    url = f"udp://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    with pytest.raises(SourceError, match="sent nothing within 1 s"):
        MediaSource(url, sample_rate=SR, open_timeout_s=1.0).open()
    assert time.monotonic() - t0 < 10  # bounded: not a hang


def test_server_that_never_answers_times_out() -> None:
    with socket.socket() as server:  # accepts connections (backlog) but never replies
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        url = f"http://127.0.0.1:{server.getsockname()[1]}/stream.ts"
        t0 = time.monotonic()
        with pytest.raises(SourceError, match="sent nothing within 1 s"):
            MediaSource(url, sample_rate=SR, open_timeout_s=1.0).open()
        assert time.monotonic() - t0 < 10  # bounded: not a hang


# ---------------------------------------------------------------- messages
def open_error(location: str | Path, **kw) -> str:
    """The one-line message opening `location` fails with (asserting it is a SourceError)."""
    with pytest.raises(SourceError) as info:
        MediaSource(location, sample_rate=SR, **kw).open()
    msg = str(info.value)
    assert "Errno" not in msg and "\n" not in msg, msg
    return msg


def test_dev_null_is_named_a_character_device() -> None:
    msg = open_error("/dev/null")
    assert "is a character device, not a regular file" in msg
    assert "give a media file" in msg and "does not exist" not in msg


def test_empty_file_is_named_empty(tmp_path: Path) -> None:
    (tmp_path / "empty.mp4").touch()
    assert "is empty (0 bytes)" in open_error(tmp_path / "empty.mp4")


def test_directory_and_random_bytes_say_what_they_are(tmp_path: Path) -> None:
    assert "is a directory: give a media file inside it" in open_error(tmp_path)
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(np.random.default_rng(1).integers(0, 256, 50000, dtype=np.uint8).tobytes())
    msg = open_error(noise)
    assert "not readable media" in msg and "ffprobe" in msg


@needs_ffmpeg
def test_cut_mp4_without_its_index_names_the_missing_moov(tmp_path: Path) -> None:
    whole = write_testsrc_file(tmp_path / "whole.mp4", seconds=2.0)  # index at the end
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 3])
    msg = open_error(cut)
    assert "moov" in msg and "truncated" in msg


@needs_ffmpeg
def test_cut_mp4_with_its_index_up_front_warns_that_it_ends_early(tmp_path: Path) -> None:
    whole = write_testsrc_file(tmp_path / "whole.mp4", seconds=2.0, faststart=True)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 3])
    sink = read_all(MediaSource(cut, sample_rate=SR))
    assert 0 < len(sink.v) < 60
    short = [s for s in sink.statuses if "truncated" in s.message]
    assert len(short) == 1 and short[0].kind == "warning", sink.statuses
    assert "header says 2.0" in short[0].message
    whole_sink = read_all(MediaSource(whole, sample_rate=SR))  # a complete file: no warning
    assert not [s for s in whole_sink.statuses if "truncated" in s.message]


@needs_ffmpeg
@pytest.mark.timeout(60)
@pytest.mark.parametrize("faststart", [True, False], ids=["index-first", "index-last"])
@pytest.mark.parametrize("kind", ["video", "audio"])
def test_mp4_cut_in_a_sample_description_names_the_stream_without_a_decoder(
    tmp_path: Path, faststart: bool, kind: str
) -> None:
    """A cut just past the start of a track's sample description (in the property test's
    64x48 file: bytes 425-448 for video, 1088-1111 for audio) leaves the track listed
    without its codec set-up, so PyAV has no decoder for it: video was an AttributeError
    in open, audio a "Decoder not found" on its first packet while reading."""
    whole = write_testsrc_file(tmp_path / "whole.mp4", seconds=1.0, faststart=faststart)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: mp4_sample_description_offset(whole, kind) + 4])
    with pytest.raises(StreamFormatError) as e:
        MediaSource(cut, sample_rate=SR).open()
    msg = str(e.value)
    assert msg.startswith(f"'{cut}': no decoder for its {kind} stream (truncated"), msg
    assert "check the file plays with `ffprobe`" in msg and "\n" not in msg
    if kind == "video":  # the audio track came after the cut: nothing else to read
        assert "alone" not in msg
    else:  # the video track is whole: the fix given works
        assert msg.endswith("or read its video alone (audio=False)")
        info = MediaSource(cut, sample_rate=SR, audio=False).open()
        assert info.audio is None and info.video is not None and info.video.width == 320


def test_unknown_protocol_names_the_scheme() -> None:
    msg = open_error("gopherx://127.0.0.1/x")
    assert "no 'gopherx' protocol" in msg and "udp://" in msg


def test_unresolvable_host_is_named() -> None:
    msg = open_error("http://no-such-host.invalid/live.ts", open_timeout_s=3)
    assert "'no-such-host.invalid' does not resolve" in msg


def test_closed_tcp_port_says_connection_refused() -> None:
    port = closed_tcp_port()
    msg = open_error(f"rtsp://127.0.0.1:{port}/live", open_timeout_s=3)
    assert f"connection refused by 127.0.0.1:{port}" in msg


@needs_ffmpeg
@pytest.mark.timeout(60)
def test_http_errors_name_the_status_and_the_fix(tmp_path: Path) -> None:
    write_mpegts(tmp_path / "clip.ts", seconds=0.5)
    with serve_http(tmp_path) as base:
        assert "404 Not Found" in open_error(f"{base}/nope.ts", open_timeout_s=3)
        assert "403 Forbidden" in open_error(f"{base}/forbidden/clip.ts", open_timeout_s=3)
    with serve_http(tmp_path, user="cam", password="right-pw") as base:
        host = base.removeprefix("http://")
        msg = open_error(f"{base}/clip.ts", open_timeout_s=3)
        assert "401 Unauthorized" in msg and "put them in the URL" in msg
        msg = open_error(f"http://cam:wrong-pw@{host}/clip.ts", open_timeout_s=3)
        assert "401 Unauthorized" in msg and "check the user name and password" in msg
        assert "wrong-pw" not in msg


@needs_ffmpeg
@pytest.mark.timeout(60)
def test_lost_udp_sender_is_reported_as_a_read_timeout() -> None:
    url = f"udp://127.0.0.1:{free_port()}"
    src = MediaSource(url, sample_rate=SR, open_timeout_s=5, read_timeout_s=1, reconnect_s=0)
    sink = RecordingFrameSink()
    with FFmpegProcess([*lavfi_args(seconds=20), *mpegts_udp_args(url)]) as ff:
        src.open()
        src.start(sink)
        assert wait_for(lambda: len(sink.v) > 10, 15), ff.stderr_tail()
        ff.proc.send_signal(signal.SIGKILL)  # the sender dies mid-stream
        ff.wait(5)
        assert src.finished.wait(15)
    src.stop()
    lost = [s for s in sink.statuses if s.kind == "disconnected"]
    assert len(lost) == 1, sink.statuses
    msg = lost[0].message
    assert "no data for 1 s (read timeout)" in msg and "not reconnecting" in msg
    assert "Errno" not in msg and "1414092869" not in msg and "Immediate exit" not in msg
