"""What ``cio-async import`` is asked to do, and how it ends: options, exit statuses
and the two kinds of stop a person has to act on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from ._import_lines import LineOptions

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_REJECTED",
    "EXIT_USAGE",
    "FORMATS",
    "Fatal",
    "ImportOptions",
    "UsageError",
]

#: Every line was delivered (or there was nothing left to import).
EXIT_OK: Final = 0
#: The import finished, but some lines were rejected (see the errors file).
EXIT_REJECTED: Final = 1
#: Usage, configuration or input problem; nothing was sent after it was found.
EXIT_USAGE: Final = 2
#: Delivery failed (Customer.io unreachable, retries exhausted); re-run to resume.
EXIT_FAILED: Final = 3
#: Stopped by Ctrl-C / SIGTERM; re-run to resume.
EXIT_INTERRUPTED: Final = 130

FORMATS: Final = ("ndjson", "csv", "tsv")


@dataclass
class ImportOptions:
    """What ``cio-async import`` was asked to do (built from the command line)."""

    path: str
    format: str | None = None
    lines: LineOptions = field(default_factory=LineOptions)
    dry_run: bool = False
    errors: str | None = None
    checkpoint: str | None = None
    restart: bool = False
    sandbox: bool = False
    region: str | None = None
    quiet: bool = False
    batch_size: int = 1000
    concurrency: int = 8
    drain_timeout: float = 5.0
    checkpoint_interval: float = 1.0
    retry_timeout: float = 900.0

    @property
    def name(self) -> str:
        """The input as the person knows it."""
        return "stdin" if self.path == "-" else self.path


class UsageError(Exception):
    """A problem found before the run starts that the person must fix (exit status 2)."""


class Fatal(Exception):
    """A problem found during the run that stops it with exit status ``code``."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code
