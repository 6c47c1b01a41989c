"""The spool's public value types, importable without loading SQLite."""

from __future__ import annotations

from dataclasses import dataclass

from .._errors import CustomerIOError


class SpoolError(CustomerIOError):
    """The spool could not write to its directory (disk full, permissions, I/O error).
    The message names the path. Retryable: space may come back."""

    retryable = True


@dataclass(frozen=True, slots=True)
class SpoolStats:
    """What the spool did (part of ``client.stats()``)."""

    #: Operations on disk (or on their way there) and not yet delivered.
    spooled: int
    #: Their payload bytes (what ``max_bytes`` bounds).
    spooled_bytes: int
    #: Size of the spool files on disk (database plus WAL).
    disk_bytes: int
    commits: int
    #: Seconds per commit (write plus sync), mean and max.
    commit_mean: float
    commit_max: float
    #: Operations of earlier processes read back from their files.
    replayed: int
    #: Files of dead processes adopted; files moved aside as corrupt.
    adopted_files: int
    corrupt_files: int
    #: Failed writes (disk full, I/O errors): each is logged with the path.
    write_errors: int
