"""avfuse.redact: URL secrets never reach names, messages or the CLI's output."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from avfuse.engine.sources.camera import CameraConfig, CameraSource
from avfuse.errors import SourceError
from avfuse.redact import SECRET_KEYS, redact
from tests.fixtures.ffmpeg import FFmpegProcess, closed_tcp_port, free_port, needs_ffmpeg
from tests.fixtures.sinks import RecordingFrameSink


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rtsp://user:pass@127.0.0.1:554/x", "rtsp://user:***@127.0.0.1:554/x"),
        ("rtsp://admin:p@ss@cam/live", "rtsp://admin:***@cam/live"),  # '@' in the password
        ("rtsp://user@cam/live", "rtsp://user@cam/live"),  # no password: nothing to mask
        ("rtsp://user:@cam/live", "rtsp://user:@cam/live"),
        ("udp://127.0.0.1:5004?token=abc&fifo_size=8", "udp://127.0.0.1:5004?token=***&fifo_size=8"),
        ("srt://h:9000?mode=caller&passphrase=0123456789", "srt://h:9000?mode=caller&passphrase=***"),
        ("https://h/a.m3u8?Password=x&PWD=y&api_key=z", "https://h/a.m3u8?Password=***&PWD=***&api_key=***"),
        ("https://h/a?x-amz-security-token=t;v#access_token=f", "https://h/a?x-amz-security-token=***#access_token=***"),
        ("http://h:8080/@user/x", "http://h:8080/@user/x"),  # '@' in the path is no userinfo
        ("https://h/a?keyframes=1&monkey=2", "https://h/a?keyframes=1&monkey=2"),
        (
            "error: 'rtsp://u:pw@cam/x': connection refused, and (udp://h:1?key=k).",
            "error: 'rtsp://u:***@cam/x': connection refused, and (udp://h:1?key=***).",
        ),
        ("/media/clip.mp4", "/media/clip.mp4"),
        ("camera:0 user:pw@host", "camera:0 user:pw@host"),  # not a URL: left alone
    ],
)  # fmt: skip
def test_redact_examples(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert redact(expected) == expected  # masking is idempotent


# Secrets hold an upper-case letter followed by one of "$~+", which no other part of
# the text (lower-case words, prose, upper-cased keys, the mask) has: a secret can only
# appear in the output if it was left there.
LOWER = "abcdefghijklmnopqrstuvwxyz0123456789"
SECRET_CHARS = LOWER + "ABCDEFGHIJKLMNOPQRSTUVWXYZ-._~!$'()*+,;=%:@"
words = st.text(LOWER, min_size=1, max_size=8)
secrets = st.builds(
    lambda a, b, c: a + b + c,
    st.text(SECRET_CHARS, max_size=6),
    st.builds(str.__add__, st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ"), st.sampled_from("$~+")),
    st.text(SECRET_CHARS.replace("@", ""), max_size=6),
).filter(lambda s: not s.endswith(("'", ")", ".", ",", ";", ":", "!")))
schemes = st.sampled_from(["rtsp", "rtsps", "http", "https", "udp", "srt", "rtmp", "tcp"])
prose = st.text(LOWER + " ,.;!?()", max_size=20).map(lambda s: s + " ")


@settings(deadline=None)  # timing is not what is tested (shared, loaded machines)
@given(
    scheme=schemes,
    user=words,
    password=secrets,
    host=words,
    port=st.integers(1, 65535),
    path=st.lists(words, max_size=3),
    before=prose,
    after=prose,
)
def test_userinfo_password_never_survives(
    scheme: str,
    user: str,
    password: str,
    host: str,
    port: int,
    path: list[str],
    before: str,
    after: str,
) -> None:
    tail = "".join("/" + p for p in path)
    text = f"{before}{scheme}://{user}:{password}@{host}:{port}{tail} {after}"
    out = redact(text)
    assert password not in out
    assert out == f"{before}{scheme}://{user}:***@{host}:{port}{tail} {after}"


@settings(deadline=None)  # timing is not what is tested (shared, loaded machines)
@given(
    scheme=schemes,
    host=words,
    plain=st.lists(st.tuples(words, words), max_size=3),
    key=st.sampled_from(sorted(SECRET_KEYS)),
    secret=secrets.filter(lambda s: "&" not in s and "#" not in s),
    upper_key=st.booleans(),
    quoted=st.booleans(),
)
def test_secret_query_values_never_survive(
    scheme: str,
    host: str,
    plain: list[tuple[str, str]],
    key: str,
    secret: str,
    upper_key: bool,
    quoted: bool,
) -> None:
    key = key.upper() if upper_key else key
    others = "".join(f"&{k}={v}" for k, v in plain if k not in SECRET_KEYS)
    url = f"{scheme}://{host}/live?{key}={secret}{others}"
    text = f"opening '{url}': no answer" if quoted else url
    out = redact(text)
    assert secret not in out
    masked = f"{scheme}://{host}/live?{key}=***{others}"
    assert out == (f"opening '{masked}': no answer" if quoted else masked)


@settings(deadline=None)  # timing is not what is tested (shared, loaded machines)
@given(st.text().filter(lambda s: "://" not in s))
def test_text_without_urls_is_unchanged(text: str) -> None:
    assert redact(text) == text


@settings(deadline=None)  # timing is not what is tested (shared, loaded machines)
@given(scheme=schemes, host=words, path=st.lists(words, max_size=3), prose=prose)
def test_urls_without_secrets_are_unchanged(
    scheme: str, host: str, path: list[str], prose: str
) -> None:
    text = f"{prose}{scheme}://{host}/{'/'.join(path)}?fifo_size=8&pkt_size=1316 {prose}"
    assert redact(text) == text


# ---------------------------------------------------------------- sources and the CLI
def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "avfuse.cli", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.timeout(150)
def test_cli_never_prints_an_rtsp_password() -> None:
    url = f"rtsp://user:s3cr3tpw@127.0.0.1:{closed_tcp_port()}/x"
    proc = run_cli("run", "--source", url)
    assert proc.returncode == 2, proc.stderr
    assert "s3cr3tpw" not in proc.stdout + proc.stderr
    assert redact(url) in proc.stderr and "connection refused" in proc.stderr


@pytest.mark.timeout(150)
def test_cli_never_prints_a_udp_token() -> None:
    url = f"udp://127.0.0.1:{free_port()}?token=s3cr3tpw"  # nothing sends there
    proc = run_cli("run", "--source", url)
    assert proc.returncode == 2, proc.stderr
    assert "s3cr3tpw" not in proc.stdout + proc.stderr
    assert "udp://127.0.0.1:" in proc.stderr and "?token=***" in proc.stderr


def test_camera_name_message_and_config_hide_the_password() -> None:
    url = f"rtsp://admin:hunter2@127.0.0.1:{closed_tcp_port()}/stream"
    cam = CameraSource(device=url, open_timeout_s=2)
    assert cam.name == f"camera:{redact(url)}" and "hunter2" not in cam.name
    assert "hunter2" not in repr(cam.config)
    assert repr(CameraConfig(device=3)).startswith("CameraConfig(device=3, ")
    with pytest.raises(SourceError) as info:
        cam.open()
    assert "hunter2" not in str(info.value) and redact(url) in str(info.value)


@needs_ffmpeg
@pytest.mark.timeout(60)
def test_camera_statuses_hide_a_stream_token() -> None:
    url = f"udp://127.0.0.1:{free_port()}?token=Zz9secret"  # FFmpeg ignores the option
    sender = [
        "-re", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=15", "-c:v", "mpeg4",
        "-f", "mpegts", url.partition("?")[0] + "?pkt_size=1316",
    ]  # fmt: skip
    cam = CameraSource(device=url, open_timeout_s=5, read_timeout_s=0.5, reconnect_max_s=0.5)
    sink = RecordingFrameSink()
    with FFmpegProcess(sender) as ff:
        cam.open()
        cam.start(sink)
        deadline = time.monotonic() + 10
        while cam.frames < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cam.frames >= 5, ff.stderr_tail()
    deadline = time.monotonic() + 10  # the sender is gone: the camera reports it
    while not any(s.kind == "disconnected" for s in sink.statuses) and time.monotonic() < deadline:
        time.sleep(0.05)
    cam.stop()
    assert any(s.kind == "disconnected" for s in sink.statuses), sink.statuses
    for s in sink.statuses:
        assert "Zz9secret" not in s.source + s.message, s
        assert s.source == cam.name == f"camera:{redact(url)}"
