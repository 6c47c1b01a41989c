"""What ``cio-async import`` tells the person: the live status line, rejected lines as
they happen, and the summary that decides the exit status."""

from __future__ import annotations

import collections
import time
from collections.abc import Mapping
from typing import TextIO

from .._errors import AuthenticationError, PermissionDeniedError
from ._import_options import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REJECTED,
    EXIT_USAGE,
    Fatal,
    ImportOptions,
)
from ._import_settle import Window
from ._progress import Progress, format_duration

__all__ = ["Report"]

#: Rejected lines shown as they happen; the rest are only in the errors file.
_SHOW_ERRORS = 10


class Report:
    """This run's counts and everything printed about them.

    ``counts`` holds lines by outcome (``delivered``, ``invalid``, ``refused``,
    ``undelivered``, ``valid`` in a dry run, ``blank``); ``kinds`` the operations by
    action. Totals over earlier runs are the window's.
    """

    def __init__(
        self, opts: ImportOptions, *, out: TextIO, err: TextIO, errors_path: str | None
    ) -> None:
        self.opts = opts
        self.out = out
        self.err = err
        self.errors_path = errors_path
        self.progress = Progress(err, plain_every=5.0)
        self.counts: collections.Counter[str] = collections.Counter()
        self.kinds: collections.Counter[str] = collections.Counter()
        #: The line after the last record read.
        self.read_line = 1
        self.started = time.monotonic()
        self._errors_shown = 0

    # -- while running -----------------------------------------------------------------

    def rejected(self, line: int, *, refused: bool, reason: str, field: str, message: str) -> None:
        """Count a rejected line and show it (the first few, or all in a dry run)."""
        self.counts["refused" if refused else "invalid"] += 1
        where = f"{field}: " if field and field != "line" else ""
        text = f"line {line}: " + (
            f"refused by Customer.io ({reason}): {where}{message}"
            if refused
            else f"{where}{message}"
        )
        if self.opts.dry_run:
            print(text, file=self.out)
        elif self._errors_shown < _SHOW_ERRORS:
            self._errors_shown += 1
            self.progress.note(text)
            if self._errors_shown == _SHOW_ERRORS:
                self.progress.note(
                    f"(further rejected lines only in {self.errors_path})"
                    if self.errors_path is not None
                    else "(further rejected lines not shown: pass --errors FILE to keep them)"
                )

    def status(self, window: Window, total_bytes: int | None, retried: int | None) -> str:
        """The live status line; ``retried`` is None without a client (a dry run)."""
        elapsed = max(1e-6, time.monotonic() - self.started)
        c = self.counts
        done = c["delivered"] + c["invalid"] + c["refused"] + c["valid"]
        rate = done / elapsed
        parts = []
        if total_bytes:
            # Progress is what is settled (the checkpoint), not what was read ahead.
            frac = min(1.0, window.offset / total_bytes)
            resumed = window.resume.offset if window.resume else 0
            width = 20
            filled = int(frac * width)
            bar = "[" + "#" * filled + "-" * (width - filled) + "]"
            parts.append(f"{bar} {frac * 100:3.0f}%")
            run_bytes = window.offset - resumed
            if run_bytes > 0 and frac < 1:
                eta = (total_bytes - window.offset) * elapsed / run_bytes
                parts.append(f"ETA {format_duration(eta)}")
        parts.append(f"line {self.read_line - 1:,}")
        parts.append(f"{rate:,.0f} lines/s")
        if retried is not None:
            parts.append(f"delivered {c['delivered']:,}")
            parts.append(f"in flight {window.outstanding:,}")
            if retried:
                parts.append(f"retried {retried:,}")
        rejected = c["invalid"] + c["refused"]
        if rejected:
            parts.append(f"rejected {rejected:,}")
        return "  ".join(parts)

    # -- at the end --------------------------------------------------------------------

    def sandbox(self, counts: Mapping[str, int]) -> None:
        """What the embedded stand-in of ``--sandbox`` received."""
        ops = ", ".join(f"{k} {counts[k]:,}" for k in sorted(counts) if "." in k) or "none"
        print(
            f"sandbox: the embedded stand-in received {counts.get('requests', 0):,} requests; "
            f"operations: {ops}; refused {counts.get('rejected_operations', 0):,}; "
            f"repeated events ignored {counts.get('duplicate_events_ignored', 0):,}",
            file=self.out,
        )

    def summary(
        self,
        window: Window,
        *,
        eof: bool,
        checkpoint_path: str | None,
        fatal: Fatal | None,
        interrupted: str | None,
        failure: BaseException | None,
    ) -> int:
        """Print how the run went; return the exit status."""
        if self.opts.dry_run:
            return self._dry_run_summary(fatal, interrupted)
        c = self.counts
        elapsed = time.monotonic() - self.started
        name = self.opts.name
        out = self.out
        finished = window.finished(eof)
        lines_read = c["delivered"] + c["invalid"] + c["refused"] + c["valid"] + c["undelivered"]
        totals = window.totals
        nothing_left = False
        if window.resume is not None and window.resume_line > 1:
            if eof and not lines_read and window.verified:
                nothing_left = True
                print(
                    f"nothing to import: every line of {name} was settled by an earlier run "
                    f"({totals['delivered']:,} delivered, "
                    f"{totals['invalid'] + totals['refused']:,} rejected)",
                    file=out,
                )
            else:
                print(f"resumed {name} at line {window.resume_line:,}", file=out)
        rejected = c["invalid"] + c["refused"]
        if not nothing_left:
            print(
                f"import of {name}: {lines_read:,} lines in {elapsed:.1f}s "
                f"({lines_read / max(elapsed, 1e-6):,.0f}/s): {c['delivered']:,} delivered, "
                f"{rejected:,} rejected ({c['invalid']:,} invalid, {c['refused']:,} refused "
                f"by Customer.io), {c['undelivered'] + window.outstanding:,} not delivered",
                file=out,
            )
        total_rejected = totals["invalid"] + totals["refused"]
        if total_rejected and self.errors_path is not None:
            print(f"rejected lines, with reasons: {self.errors_path}", file=out)
        if checkpoint_path is not None and window.verified and fatal is None:
            state = " (complete)" if finished else ""
            print(
                f"checkpoint: next line {window.line:,}{state} in {checkpoint_path}",
                file=out,
            )
        rerun = "run the same command again to resume"
        if fatal is not None:
            print(f"error: {fatal}", file=self.err)
            return fatal.code
        if interrupted is not None and not finished:
            print(
                f"interrupted ({interrupted}) before line {window.line:,}: {rerun}"
                + ("" if checkpoint_path else " (no checkpoint: pass --checkpoint FILE)"),
                file=self.err,
            )
            return EXIT_INTERRUPTED
        if failure is not None and not finished:
            if isinstance(failure, (AuthenticationError, PermissionDeniedError)):
                print(
                    f"error: Customer.io refused the credentials ({failure}). Check "
                    "CUSTOMERIO_SITE_ID and CUSTOMERIO_TRACK_API_KEY, and the region "
                    "(--region or CUSTOMERIO_REGION).",
                    file=self.err,
                )
                return EXIT_USAGE
            print(
                f"error: delivery failed, stopped before line {window.line:,}: {failure}. "
                f"When Customer.io is reachable again, {rerun}.",
                file=self.err,
            )
            return EXIT_FAILED
        if not finished:  # pragma: no cover - every stop sets a reason
            return EXIT_FAILED
        return EXIT_REJECTED if total_rejected else EXIT_OK

    def _dry_run_summary(self, fatal: Fatal | None, interrupted: str | None) -> int:
        c = self.counts
        elapsed = time.monotonic() - self.started
        kinds = ", ".join(f"{n:,} {k}" for k, n in sorted(self.kinds.items()))
        print(
            f"dry run of {self.opts.name}: {c['valid'] + c['invalid']:,} lines checked in "
            f"{elapsed:.1f}s: {c['valid']:,} valid ({kinds or 'none'}), "
            f"{c['invalid']:,} invalid"
            + (f", {c['blank']:,} blank" if c["blank"] else "")
            + ". Nothing was sent.",
            file=self.out,
        )
        if fatal is not None:
            print(f"error: {fatal}", file=self.err)
            return fatal.code
        if interrupted is not None:
            print(f"interrupted ({interrupted}) at line {self.read_line:,}", file=self.err)
            return EXIT_INTERRUPTED
        return EXIT_REJECTED if c["invalid"] else EXIT_OK
