"""``SpoolConfig``: where and how the durable spool writes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from .._errors import ConfigurationError

#: Default group-commit interval: an awaited call waits about this long for its
#: commit. Shorter costs more CPU per event at low and moderate rates (a commit and a
#: wake-up each time); longer widens what a crash of ``*_nowait`` calls can lose.
DEFAULT_SYNC_INTERVAL = 0.005


@dataclass(frozen=True, slots=True)
class SpoolConfig:
    """A durable spool directory (``AsyncCustomerIO(spool=...)``; a path is enough).

    Every admitted operation is written to an SQLite file (one per process) in
    ``directory`` before an awaited call returns; delivered ones are deleted, and a
    client starting later replays what a dead process left (see README
    "Durability"). ``sync_interval`` is the group-commit interval in seconds: an
    awaited call returns within it (plus the commit's own time), and a crash loses at
    most that much of ``*_nowait`` calls. ``max_bytes`` bounds the spooled payload
    bytes; past it the batch policy's ``when_full`` applies. ``synchronous``:
    ``"NORMAL"`` (default) survives a killed or crashed process; ``"FULL"`` also
    survives power loss and an OS crash, at the cost of an fsync per commit.
    """

    directory: str
    sync_interval: float = DEFAULT_SYNC_INTERVAL
    max_bytes: int = 1 << 30
    synchronous: Literal["NORMAL", "FULL"] = "NORMAL"

    def __post_init__(self) -> None:
        d = self.directory
        if isinstance(d, os.PathLike):
            object.__setattr__(self, "directory", os.fspath(d))
        if not isinstance(self.directory, str) or not self.directory:
            raise ConfigurationError("spool directory must be a non-empty path")
        if not 0 < self.sync_interval <= 1:
            raise ConfigurationError("SpoolConfig.sync_interval must be in (0, 1] seconds")
        if self.max_bytes < 1_000_000:
            raise ConfigurationError("SpoolConfig.max_bytes must be at least 1,000,000")
        if self.synchronous not in ("NORMAL", "FULL"):
            raise ConfigurationError("SpoolConfig.synchronous must be 'NORMAL' or 'FULL'")

    @classmethod
    def of(cls, value: SpoolConfig | str | os.PathLike[str] | None) -> SpoolConfig | None:
        """Accept a ``SpoolConfig``, a directory path, or None."""
        if value is None or isinstance(value, SpoolConfig):
            return value
        if isinstance(value, (str, os.PathLike)):
            return cls(os.fspath(value))
        raise ConfigurationError("spool must be a directory path or a SpoolConfig")
