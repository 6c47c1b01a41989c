"""What an application must see even when it configured no logging.

The package logger has only a ``NullHandler`` (a library must not print by default),
which also switches off ``logging.lastResort``: a script or a web app that never
configured logging would lose every event to a wrong API key and print nothing. So
the few messages that mean operations are being lost (deliveries failing, operations
lost at close, a client never closed) are also written to stderr, once per kind and
client, when neither the ``cio_async`` logger chain nor the root logger has a real
handler. With logging configured they go through logging only.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping

from ._errors import AuthenticationError, OperationRejectedError, PermissionDeniedError

__all__ = ["LastResort", "failure_kind", "logging_configured", "lost_summary"]

log = logging.getLogger("cio_async")


def logging_configured(logger: logging.Logger = log) -> bool:
    """True when a record from ``logger`` would reach a handler other than a
    ``NullHandler`` (the logger, its ancestors while they propagate, the root)."""
    current: logging.Logger | None = logger
    while current is not None:
        if any(not isinstance(h, logging.NullHandler) for h in current.handlers):
            return True
        if not current.propagate:
            return False
        current = current.parent
    return False


def failure_kind(exc: BaseException) -> str:
    """A failure's kind for reporting: ``auth``, ``rejected`` or ``failed``."""
    if isinstance(exc, (AuthenticationError, PermissionDeniedError)):
        return "auth"
    if isinstance(exc, OperationRejectedError):
        return "rejected"
    return "failed"


def lost_summary(failed: Mapping[str, int], dropped: Mapping[str, int]) -> str:
    """``"3 failed (auth), 1 dropped (shutdown)"`` from per-reason counters."""
    parts = []
    for what, counts in (("failed", failed), ("dropped", dropped)):
        total = sum(counts.values())
        if total:
            reasons = ", ".join(f"{r}: {n}" for r, n in sorted(counts.items()) if n)
            parts.append(f"{total} {what} ({reasons})")
    return "; ".join(parts)


class LastResort:
    """Writes a message to stderr once per kind, when no logging is configured."""

    __slots__ = ("_said",)

    def __init__(self) -> None:
        self._said: set[str] = set()

    def report(self, kind: str, message: str) -> None:
        if kind in self._said or logging_configured():
            return
        self._said.add(kind)
        stream = sys.stderr
        if stream is None:  # pythonw, or the interpreter is shutting down
            return
        try:
            stream.write(f"cio_async: {message}\n")
            stream.flush()
        except (OSError, ValueError):  # a closed stream
            pass
