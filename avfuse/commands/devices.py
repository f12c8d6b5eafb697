"""`avfuse devices`: list the microphones and cameras avfuse can capture from."""

from __future__ import annotations

import argparse
import json
from typing import Any

from avfuse.commands import _args


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `devices` sub-command."""
    p = _args.add_command(
        sub,
        "devices",
        help="list microphones and cameras",
        description="List the microphones PortAudio sees (index, name, host API, default "
        "sample rate, input channels) and the cameras that open (index, device, size). "
        "Use an index or a name with `avfuse run --mic` / `--camera`.",
    )
    p.add_argument("--json", action="store_true", help="print the lists as JSON")
    p.add_argument(
        "--no-cameras", action="store_true", help="skip probing cameras (probing opens them)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the devices; exit 0 even when there are none (that is an answer, not a fault)."""
    from avfuse.engine.sources.devices import devices_report

    report = devices_report(cameras=not args.no_cameras)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(format_report(report, cameras=not args.no_cameras))
    return 0


def format_report(report: dict[str, Any], *, cameras: bool = True) -> str:
    """The human-readable tables of `devices_report()`."""
    lines = ["Microphones"]
    mics = report["microphones"]
    if mics:
        rows = [("", "index", "name", "host API", "rate (Hz)", "channels")]
        for m in mics:
            rows.append(
                (
                    "*" if m["is_default"] else "",
                    str(m["index"]),
                    m["name"],
                    m["host_api"],
                    f"{m['default_sample_rate']:g}",
                    str(m["channels"]),
                )
            )
        lines += _table(rows)
        lines.append("  (* default input)")
    elif not report["errors"]:
        lines.append("  none found: PortAudio sees no input device (no sound card, or no sound")
        lines.append("  server such as PulseAudio/PipeWire running)")
    for e in report["errors"]:
        lines.append(f"  unavailable: {e}")
    if cameras:
        lines.append("")
        lines.append("Cameras")
        cams = report["cameras"]
        if cams:
            rows = [("", "index", "device", "size", "fps")]
            for c in cams:
                rows.append(
                    ("", str(c["index"]), c["path"], f"{c['width']}x{c['height']}", f"{c['fps']:g}")
                )
            lines += _table(rows)
        else:
            lines.append("  none found: no camera opens (on Linux: no /dev/video* device)")
    return "\n".join(lines)


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in rows]  # fmt: skip
