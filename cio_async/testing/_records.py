"""What the stand-in received: requests as they arrived, operations as accepted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["RecordedOperation", "RecordedRequest"]


@dataclass
class RecordedRequest:
    """One HTTP request the stand-in received (before any fault was applied)."""

    method: str
    path: str
    raw_path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    api: str
    status: int = 0
    #: ``time.monotonic()`` when the request arrived (after any simulated RTT).
    received_at: float = 0.0

    @property
    def json(self) -> Any:
        return orjson.loads(self.body) if self.body.strip() else None


@dataclass
class RecordedOperation:
    """One operation the stand-in accepted, normalised across v1 and v2.

    ``source`` is ``v1``, ``entity`` or ``batch``; ``type`` is ``person``, ``object``,
    ``delivery``, ``anonymous``, ``form``, ``metric`` or ``segment``; ``body`` is the
    v1 body or the v2 operation as sent.
    """

    source: str
    type: str
    action: str
    identifiers: dict[str, Any]
    body: Any
    event_id: str | None = None
    name: str | None = None
