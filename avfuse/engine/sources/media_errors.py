"""Why a media file or stream cannot be opened or read, as one line naming the fix.

FFmpeg reports failures as errno-style codes ("Invalid data found when processing
input", "Input/output error", AVERROR_EXIT) that name neither the cause a user can act
on nor the fix. MediaSource turns them into `SourceError`/`StreamFormatError` messages
here: `check_file` says what a local path really is before FFmpeg opens it (a directory,
a device, a FIFO, an empty or unreadable file), `open_error` classifies an error from
`av.open` (timeouts, refused or reset connections, HTTP status, unresolvable hosts,
unknown protocols, truncated MP4s), `check_streams` rejects streams that opened but
cannot be decoded (no stream wanted, no decoder, no video size), and `read_error` and
`file_read_error` say why a live stream stopped or a file cannot be read on;
`truncated_warning` notices a file that ends before its header says.
Locations in messages are the redacted form the caller passes (`shown`), or host and
port only, so URL credentials never appear.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import av
import av.error

from avfuse.errors import SourceError, StreamFormatError

if TYPE_CHECKING:
    from avfuse.engine.sources.media import MediaConfig


_NOT_REGULAR = (
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
)


def check_file(path: str, shown: str) -> None:
    """Raise SourceError naming the problem when `path` is not a readable, non-empty file.

    FFmpeg would open a directory, a device or a FIFO and fail (or block) with a message
    about "invalid data"; saying what the path really is tells the user what to fix.
    """
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise SourceError(f"media file '{shown}' does not exist: check the path") from None
    except OSError as e:
        raise SourceError(
            f"media file '{shown}' cannot be looked up ({e.strerror}): check the path and "
            "the permissions of the folders on it"
        ) from None
    if stat.S_ISDIR(st.st_mode):
        raise SourceError(f"media file '{shown}' is a directory: give a media file inside it")
    what = next((name for test, name in _NOT_REGULAR if test(st.st_mode)), None)
    if what is not None:
        raise SourceError(
            f"'{shown}' is {what}, not a regular file: give a media file (mp4, mkv, ts, "
            "wav, ...) or a stream URL (udp://, rtsp://, ...)"
        )
    if st.st_size == 0:
        raise StreamFormatError(
            f"media file '{shown}' is empty (0 bytes): give a file with audio or video in it"
        )
    if not os.access(path, os.R_OK):
        raise SourceError(
            f"media file '{shown}' is not readable (permission denied): check its permissions"
        )


def _host(location: str) -> str:
    """'host:port' of a URL (no credentials), for messages."""
    try:
        parts = urlsplit(location)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return "the host"
    return f"{host}:{port}" if port else host or "the host"


def _is_unindexed_mp4(path: str) -> bool:
    """True for an ISO-BMFF file (mp4/mov) FFmpeg cannot open: its index is missing."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return head[4:8] == b"ftyp"


def open_error(
    e: av.error.FFmpegError, cfg: MediaConfig, shown: str, *, is_url: bool
) -> SourceError:
    """The SourceError (problem + fix, location redacted) for an FFmpeg error from av.open."""
    loc, host = cfg.location, _host(cfg.location)
    code = getattr(e, "errno", None)
    if isinstance(e, av.error.ExitError):  # the open timeout's interrupt
        if "listen" in cfg.options.get("rtsp_flags", "") or cfg.options.get("listen", "0") != "0":
            return SourceError(
                f"no sender connected to '{shown}' within {cfg.open_timeout_s:g} s: start the "
                "sender (it pushes to this address) or raise open_timeout_s"
            )
        return SourceError(
            f"'{shown}' sent nothing within {cfg.open_timeout_s:g} s: check that the sender "
            "is running and the address and port are right"
        )
    if isinstance(e, av.error.ProtocolNotFoundError):
        scheme = loc.partition("://")[0]
        return SourceError(
            f"'{shown}': this FFmpeg build has no '{scheme}' protocol: use udp://, rtp://, "
            "rtsp://, http(s)://, srt:// or a file"
        )
    if isinstance(e, av.error.HTTPUnauthorizedError):
        given = "@" in urlsplit(loc).netloc
        fix = (
            "check the user name and password in the URL"
            if given
            else ("put them in the URL (scheme://user:password@host/...)")
        )
        return SourceError(f"'{shown}': the server wants credentials (401 Unauthorized): {fix}")
    if isinstance(e, av.error.HTTPForbiddenError):
        return SourceError(
            f"'{shown}': the server refuses access (403 Forbidden): check the URL and that this "
            "account may read the stream"
        )
    if isinstance(e, av.error.HTTPNotFoundError):
        return SourceError(
            f"'{shown}': the server has no such stream (404 Not Found): check the path in the URL"
        )
    if isinstance(e, (av.error.HTTPClientError, av.error.HTTPServerError)):
        side = "server failed" if isinstance(e, av.error.HTTPServerError) else "request was refused"
        return SourceError(
            f"'{shown}': the {side} ({e.strerror}): check the URL and the server's log"
        )
    if isinstance(e, ConnectionRefusedError):
        return SourceError(
            f"'{shown}': connection refused by {host} (nothing listens there): check that the "
            "server is running and the address and port are right"
        )
    if isinstance(e, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
        return SourceError(
            f"'{shown}': {host} closed the connection while opening: check the URL, its "
            "protocol options (e.g. rtsp_transport=tcp) and the server's log"
        )
    if isinstance(e, TimeoutError) or code in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return SourceError(
            f"'{shown}': {host} cannot be reached ({e.strerror}): check the address and the "
            "network route to it"
        )
    if code == errno.EADDRINUSE:
        return SourceError(
            f"'{shown}': the port is in use by another program: stop it or use another port"
        )
    if isinstance(e, PermissionError):
        fix = "use a port above 1024 or run with the right" if is_url else "check the file's"
        return SourceError(f"'{shown}': permission denied: {fix} permissions")
    if is_url and code == errno.EIO and not _resolves(loc):
        return SourceError(
            f"'{shown}': the host name '{urlsplit(loc).hostname}' does not resolve: check "
            "its spelling, or use an IP address"
        )
    if isinstance(e, (av.error.InvalidDataError, av.error.EOFError)):
        if is_url:
            return StreamFormatError(
                f"'{shown}' is not readable media (what arrived is not an audio/video format "
                "FFmpeg knows): check the URL and the format the sender uses"
            )
        if _is_unindexed_mp4(loc):
            return StreamFormatError(
                f"'{shown}' is not readable media: an MP4/MOV file without its index (moov "
                "atom), so it is truncated or was never finished: copy it again or re-record"
            )
        return StreamFormatError(
            f"'{shown}' is not readable media (no audio/video format FFmpeg knows; corrupt or "
            "not media at all): check the file plays with `ffprobe`"
        )
    return SourceError(
        f"'{shown}' cannot be opened ({e.strerror or type(e).__name__}): check the path or URL"
    )


def _resolves(url: str) -> bool:
    """True when the URL's host name resolves (an unresolved one is FFmpeg's bare EIO)."""
    try:
        host = urlsplit(url).hostname
        if not host:
            return True
        socket.getaddrinfo(host, None)
    except (OSError, ValueError):
        return False
    return True


def read_error(e: Exception, cfg: MediaConfig) -> str:
    """Why a live stream stopped, for the "disconnected" status (never a raw errno)."""
    if isinstance(e, av.error.ExitError):  # the read timeout's interrupt (AVERROR_EXIT)
        return f"no data for {cfg.read_timeout_s:g} s (read timeout): check that the sender runs"
    if isinstance(e, EOFError):
        return "the sender ended the stream (end of file)"
    if isinstance(e, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
        return f"{_host(cfg.location)} closed the connection"
    return f"read failed ({getattr(e, 'strerror', None) or type(e).__name__})"


def check_streams(
    container: av.container.InputContainer,
    audio: av.AudioStream | None,
    video: av.VideoStream | None,
    cfg: MediaConfig,
    shown: str,
) -> None:
    """Raise StreamFormatError when the chosen streams cannot be delivered as asked.

    A file cut inside its header can still open: FFmpeg then lists a stream whose
    sample description or codec set-up is missing, so it has no decoder (PyAV gives it
    no codec context) or no video size. Reading it would fail on the first packet, or
    give frames of no known size; saying so at open names the stream and the fix.
    """
    if audio is None and video is None:
        has = [s.type for s in container.streams]
        wanted = " or ".join(m for m, on in (("audio", cfg.audio), ("video", cfg.video)) if on)
        raise StreamFormatError(
            f"'{shown}' has no {wanted} stream (it has: {', '.join(has) or 'nothing'}): give "
            f"a file or URL with {wanted}"
        )
    pairs = (("audio", audio, "video", video), ("video", video, "audio", audio))
    for kind, stream, other, rest in pairs:
        if stream is not None and stream.codec_context is None:
            alone = rest is not None and rest.codec_context is not None
            raise StreamFormatError(
                f"'{shown}': no decoder for its {kind} stream (truncated or unsupported codec "
                "set-up): check the file plays with `ffprobe`"
                + (f", or read its {other} alone ({kind}=False)" if alone else "")
            )
    ctx = video.codec_context if video is not None else None
    if ctx is not None and (not ctx.width or not ctx.height):
        raise StreamFormatError(
            f"'{shown}': the video size is unknown after probing: raise options "
            "probesize/analyzeduration or send keyframes more often"
        )


def file_read_error(e: Exception, shown: str, end_s: float) -> SourceError:
    """The SourceError for a file that fails while being read, `end_s` s into it."""
    why = getattr(e, "strerror", None) or type(e).__name__
    return SourceError(
        f"'{shown}' cannot be read past {end_s:.2f} s ({why}): the file is damaged or cut; "
        "check it with `ffprobe` or copy it again"
    )


def truncated_warning(
    streams: list[av.stream.Stream], origin_s: float, end_s: float, shown: str
) -> str | None:
    """A warning when a file ended (at `end_s` s from `origin_s`) well before the
    duration its header announces: a cut copy, whose index survived the cut."""
    ends = [
        float((s.start_time + s.duration) * s.time_base) - origin_s
        for s in streams
        if s.duration and s.start_time is not None and s.time_base
    ]
    if not ends or max(ends) - end_s <= max(0.5, 0.05 * max(ends)):
        return None
    return (
        f"'{shown}' ended at {end_s:.2f} s but its header says {max(ends):.2f} s: the file "
        "is truncated; copy it again for the rest"
    )
