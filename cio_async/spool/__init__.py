"""A durable spool: admitted operations written to a local SQLite file (WAL mode) by
one writer thread with group commits, acknowledged (deleted) on delivery and replayed
by the next process after a crash. See README "Durability".

Internal building blocks of the delivery core's spool backend; users pass
``spool="/dir"`` to the client.
"""

from ._inspect import FileReport, inspect_dir
from ._spool import Spool, SpoolError, SpoolStats, Synchronous

__all__ = ["FileReport", "Spool", "SpoolError", "SpoolStats", "Synchronous", "inspect_dir"]
