"""A progress display for the command line: a live line on a terminal, plain lines
otherwise (logs and pipes get a line every few seconds, not a stream of ``\\r``)."""

from __future__ import annotations

import time
from typing import TextIO


class Progress:
    """Shows a status line at most every ``tty_every`` seconds on a terminal and every
    ``plain_every`` seconds elsewhere; ``note()`` prints a line above it."""

    def __init__(self, out: TextIO, *, tty_every: float = 0.1, plain_every: float = 1.0) -> None:
        self.out = out
        try:
            self.tty = out.isatty()
        except ValueError:  # a closed stream
            self.tty = False
        self.every = tty_every if self.tty else plain_every
        self.last = 0.0
        self._shown = False

    def show(self, text: str, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < self.every:
            return
        self.last = now
        if self.tty:
            self.out.write("\r\x1b[2K" + text)
            self._shown = True
        else:
            self.out.write(text + "\n")
        self.out.flush()

    def note(self, text: str) -> None:
        """Print a line without mangling the live status line (redrawn next time)."""
        if self.tty and self._shown:
            self.out.write("\r\x1b[2K")
            self._shown = False
            self.last = 0.0
        self.out.write(text + "\n")
        self.out.flush()

    def done(self) -> None:
        """End the live line so what follows starts on a fresh line."""
        if self.tty and self._shown:
            self.out.write("\n")
            self.out.flush()
            self._shown = False


def format_duration(seconds: float) -> str:
    """``h:mm:ss`` for an ETA or an elapsed time."""
    s = max(0, int(seconds + 0.5))
    return f"{s // 3600}:{s % 3600 // 60:02}:{s % 60:02}"


def format_bytes(n: float) -> str:
    """A short human size: ``812 B``, ``12.3 KB``, ``4.1 MB``, ``2.0 GB``."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover
