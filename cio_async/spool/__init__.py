"""A durable spool: admitted operations written to a local SQLite file (WAL mode) by
one writer thread with group commits, acknowledged (deleted) on delivery and replayed
by the next process after a crash. See README "Durability".

``SpoolBackend`` is the delivery core's queue backend over it; users pass
``spool="/dir"`` (or a ``SpoolConfig``) to the client. The value types load at once;
the rest (SQLite, the writer thread) only when first used, so ``import cio_async``
stays as light without a spool.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._types import SpoolError, SpoolStats

if TYPE_CHECKING:
    from ._backend import SpoolBackend
    from ._inspect import FileReport, inspect_dir
    from ._spool import Spool, Synchronous

_LAZY = {
    "SpoolBackend": ("._backend", "SpoolBackend"),
    "FileReport": ("._inspect", "FileReport"),
    "inspect_dir": ("._inspect", "inspect_dir"),
    "Spool": ("._spool", "Spool"),
    "Synchronous": ("._spool", "Synchronous"),
}


def __getattr__(name: str) -> Any:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module, __name__), attr)
    globals()[name] = value
    return value


__all__ = [
    "FileReport",
    "Spool",
    "SpoolBackend",
    "SpoolError",
    "SpoolStats",
    "Synchronous",
    "inspect_dir",
]
