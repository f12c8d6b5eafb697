"""`avfuse calibrate`: write the flash-and-beep test pattern, or measure a chain's offset."""

from __future__ import annotations

import argparse
import json
import re

from avfuse.commands import _args
from avfuse.errors import UsageError

#: largest --max-offset-ms: the code tells lags apart well within half its 12.85 s cycle
MAX_SEARCH_MS = 5000.0


def _size(text: str) -> tuple[int, int]:
    """A `type=` for WIDTHxHEIGHT (even numbers, 16x16 to 7680x4320)."""
    m = re.fullmatch(r"\s*(\d{2,4})[xX](\d{2,4})\s*", text)
    if m is None:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 1280x720, got {text!r}")
    w, h = int(m.group(1)), int(m.group(2))
    if not (16 <= w <= 7680 and 16 <= h <= 4320) or w % 2 or h % 2:
        raise argparse.ArgumentTypeError(
            f"expected even WIDTHxHEIGHT from 16x16 to 7680x4320, got {text!r}"
        )
    return w, h


_size.__name__ = "size"


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `calibrate` sub-command."""
    p = _args.add_command(
        sub,
        "calibrate",
        help="measure a capture chain's A/V offset with a flash-and-beep test pattern",
        description="Write a test pattern (--pattern FILE: white flashes on black, each with "
        "a 1 kHz beep that starts on the same frame, at coded intervals), play it into the "
        "chain, then read it back through avfuse's own sources (--source, or --audio and "
        "--video, or --camera and --mic, as avfuse run takes them) to measure how much later "
        "the audio arrives than the video on the engine's clock: the value of "
        "--av-offset-ms. No model is needed.",
        epilog="Examples: avfuse calibrate --pattern pattern.mp4 | ffmpeg -re -i pattern.mp4 "
        "-c copy -f mpegts udp://127.0.0.1:5004 & avfuse calibrate --source "
        "udp://127.0.0.1:5004 --write-config deploy.toml",
    )
    w = p.add_argument_group("writing the pattern")
    w.add_argument(
        "--pattern", metavar="OUT.mp4", help="write the pattern to OUT (.mp4, .mov, .mkv)"
    )
    w.add_argument(
        "--seconds",
        type=_args.finite_float(10.0, 3600.0, unit="s"),
        default=30.0,
        metavar="S",
        help="length of the pattern, 10..3600 s (default 30)",
    )
    w.add_argument(
        "--fps",
        type=_args.finite_float(5.0, 240.0),
        default=30.0,
        metavar="FPS",
        help="frame rate, 5..240 (default 30; 29.97 is written as 30000/1001)",
    )
    w.add_argument(
        "--size", type=_size, default=(1280, 720), metavar="WxH", help="picture size (1280x720)"
    )
    w.add_argument(
        "--audio-codec",
        choices=("aac", "pcm"),
        default="aac",
        help="aac (default) or pcm (16-bit; .mov and .mkv only)",
    )
    w.add_argument("--force", action="store_true", help="replace OUT if it exists")
    m = p.add_argument_group("measuring (one stream, as avfuse run takes it)")
    m.add_argument("--source", metavar="SRC", help="a media file, a URL, camera:N, ...")
    m.add_argument("--audio", metavar="SRC", help="audio of the stream from SRC")
    m.add_argument("--video", metavar="SRC", help="video of the stream from SRC")
    m.add_argument("--camera", metavar="N|URL", help="camera index, device path or URL")
    m.add_argument("--mic", metavar="NAME", help="microphone: index, name substring or default")
    m.add_argument(
        "--duration",
        type=_args.finite_float(0.0, 3600.0, unit="s", lo_open=True),
        default=None,
        metavar="S",
        help="seconds to read (default: a file to its end, a live source 20 s)",
    )
    m.add_argument(
        "--max-offset-ms",
        type=_args.finite_float(100.0, MAX_SEARCH_MS, unit="ms"),
        default=3000.0,
        metavar="MS",
        help=f"largest |offset| looked for, 100..{MAX_SEARCH_MS:g} (default 3000)",
    )
    m.add_argument(
        "--tolerance-ms",
        type=_args.finite_float(0.0, 1000.0, unit="ms"),
        default=10.0,
        metavar="MS",
        help="|offset| up to this is reported as in sync (default 10)",
    )
    m.add_argument(
        "--write-config",
        metavar="FILE.toml",
        help="save the offset as av_offset_ms in FILE (created, or only that key updated)",
    )
    m.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=run, drains=True)


def _stream_specs(args: argparse.Namespace) -> tuple[list[str], str | None, str | None]:
    audio, video = args.audio, args.video
    if args.camera is not None:
        if video is not None:
            raise UsageError("--camera and --video both name the video: give one of them")
        video = args.camera if args.camera.startswith("camera:") else f"camera:{args.camera}"
    if args.mic is not None:
        if audio is not None:
            raise UsageError("--mic and --audio both name the audio: give one of them")
        audio = args.mic if args.mic.startswith("mic:") else f"mic:{args.mic}"
    if (audio is None) != (video is None) and args.source is None:
        half = "--video (or --camera)" if video is None else "--audio (or --mic)"
        raise UsageError(f"calibration needs both halves of the stream: add {half}")
    return ([args.source] if args.source is not None else []), audio, video


def run(args: argparse.Namespace) -> int:
    """Write the pattern, or measure the offset of one stream."""
    sources, audio, video = _stream_specs(args)
    measuring = bool(sources) or audio is not None
    if args.pattern is not None and measuring:
        raise UsageError("give --pattern OUT (write the pattern) or a source (measure), not both")
    if args.pattern is not None:
        if args.write_config is not None:
            raise UsageError("--write-config goes with a source to measure, not with --pattern")
        return _write(args)
    if not measuring:
        raise UsageError(
            "nothing to do: write a pattern with --pattern OUT.mp4, or measure one with "
            "--source SRC (or --audio/--video, --camera/--mic)"
        )
    from avfuse.calibrate import measure, write_offset
    from avfuse.calibrate.config_edit import check_offset_target

    if args.write_config is not None:
        check_offset_target(args.write_config)  # before a measurement that may take a while

    result = measure(
        sources=sources,
        audio=audio,
        video=video,
        duration_s=args.duration,
        stop=getattr(args, "stop_token", None),
        max_offset_s=args.max_offset_ms / 1e3,
        tolerance_ms=args.tolerance_ms,
    )
    cal = result.calibration
    saved = None
    if args.write_config is not None:
        note = f"measured by avfuse calibrate: median of {cal.pairs} flash/beep pairs"
        saved = write_offset(args.write_config, cal.offset_ms, note=note)
    if args.json:
        out = result.to_dict()
        out["config"] = saved
        print(json.dumps(out))
        return 0
    cap = result.capture
    shown = round(cal.offset_ms, 1)
    side = "audio late" if shown > 0 else "audio early" if shown < 0 else ""
    print(f"source   {cap.name} ({cap.seconds:.1f} s read, {cal.flashes} flashes, "
          f"{cal.beeps} beeps)")  # fmt: skip
    print(f"offset   {shown + 0.0:+.1f} ms ({side + '; ' if side else ''}median of "
          f"{cal.pairs} pairs)")  # fmt: skip
    print(f"spread   MAD {cal.mad_ms:.1f} ms, p5 {cal.p5_ms:+.1f} ms, p95 {cal.p95_ms:+.1f} ms "
          f"(a flash is timed to a frame, {cal.frame_ms:.1f} ms)")  # fmt: skip
    for note in cap.notes[:5]:
        print(f"note     {note}")
    print(f"verdict  {cal.verdict}")
    if saved:
        print(f"config   {saved}")
    return 0


def _write(args: argparse.Namespace) -> int:
    from avfuse.calibrate.pattern import UNAMBIGUOUS_S, PatternSpec, event_frames, write_pattern

    w, h = args.size
    spec = PatternSpec(
        seconds=args.seconds, fps=args.fps, width=w, height=h, audio_codec=args.audio_codec
    )
    path = write_pattern(args.pattern, spec, force=args.force)
    codec = "AAC" if spec.audio_codec == "aac" else "16-bit PCM"
    print(
        f"wrote {path}: {spec.seconds:g} s, {w}x{h} at {float(spec.rate):g} fps, {codec} "
        f"{spec.sample_rate // 1000} kHz; {len(event_frames(spec))} flash+beep events at coded "
        f"intervals (offsets within +-{UNAMBIGUOUS_S * 1e3:.0f} ms are told apart). Play it "
        "into the chain and run: avfuse calibrate --source SRC"
    )
    return 0
