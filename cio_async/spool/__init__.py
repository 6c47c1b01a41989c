"""A durable spool: admitted operations written to a local SQLite file (WAL mode) by
one writer thread with group commits, acknowledged (deleted) on delivery and replayed
by the next process after a crash. See README "Durability".

``SpoolBackend`` is the delivery core's queue backend over it; users pass
``spool="/dir"`` (or a ``SpoolConfig``) to the client.
"""

from ._backend import SpoolBackend
from ._cli import add_parser as add_spool_parser
from ._cli import run as run_spool_command
from ._inspect import FileReport, inspect_dir
from ._spool import Spool, SpoolError, SpoolStats, Synchronous

__all__ = [
    "FileReport",
    "Spool",
    "SpoolBackend",
    "SpoolError",
    "SpoolStats",
    "Synchronous",
    "add_spool_parser",
    "inspect_dir",
    "run_spool_command",
]
