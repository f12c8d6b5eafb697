"""What the calibration tests share: the pattern length and running the CLI."""

from __future__ import annotations

import subprocess
import sys

#: length of the test pattern (s): 11 coded events
SECONDS = 12.0


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `avfuse ARGS` in a fresh interpreter (this checkout's package)."""
    return subprocess.run(
        [sys.executable, "-m", "avfuse.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
