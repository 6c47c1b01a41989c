"""Batch endpoints: the wire format a ``Sender`` delivers to.

An endpoint knows how to join payloads into a request body, where to send it with
which credentials, and how to read per-item rejections from a response. The sender
knows none of that; it owns retries, splitting and settlement.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from .._config import RetryPolicy
from .._errors import OperationRejectedError
from ..http._transport import Response, Transport

_HEAD = b'{"batch":['
_TAIL = b"]}"


class BatchEndpoint(Protocol):
    """Where and how a batch goes (Track v2 ``/api/v2/batch`` today; the Pipelines
    API's ``/v1/batch`` can be another implementation).

    ``send`` makes exactly one attempt (the sender retries) and raises the
    ``CustomerIOError`` for any non-2xx status or network failure. A 400 or 413 on a
    batch of more than one item makes the sender split it in halves to isolate the bad
    item(s); ``rejected`` reads per-item errors from a 2xx (e.g. Track's 207).
    """

    #: The operation name for stats and hooks (``Stats.latency`` key).
    op: str

    def body(self, items: Sequence[bytes]) -> bytes:
        """The request body for these payloads, in order."""

    async def send(self, body: bytes, headers: Mapping[str, str] | None) -> Response:
        """One attempt; returns the 2xx response or raises."""

    def rejected(self, response: Response, count: int) -> dict[int, OperationRejectedError]:
        """Per-item rejections in a 2xx response, by index into the batch."""


class TrackBatchEndpoint:
    """Track v2 ``POST /api/v2/batch``: ``{"batch":[op,...]}``; a 207 lists the
    rejected items by index."""

    op = "batch"

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def body(self, items: Sequence[bytes]) -> bytes:
        return join_items(_HEAD, items, _TAIL)

    async def send(self, body: bytes, headers: Mapping[str, str] | None) -> Response:
        return await self._t.request(
            "track",
            "POST",
            "/api/v2/batch",
            body=body,
            op=self.op,
            retry=RetryPolicy.NONE,
            headers=headers,
        )

    def rejected(self, response: Response, count: int) -> dict[int, OperationRejectedError]:
        if response.status != 207:
            return {}
        return {
            index: OperationRejectedError(reason, field, message, 207)
            for index, reason, field, message in track_batch_errors(response.json())
            if 0 <= index < count
        }


def join_items(head: bytes, items: Sequence[bytes], tail: bytes) -> bytes:
    """``head`` + the items joined with commas + ``tail``, copying the items' bytes
    once: the head and tail ride on the first and last item, so a large body is not
    joined and then copied again to add a few bytes at each end."""
    parts = list(items)
    if not parts:
        return head + tail
    parts[0] = head + parts[0]
    parts[-1] = parts[-1] + tail
    return b",".join(parts)


def track_batch_errors(data: Any) -> list[tuple[int, str, str, str]]:
    """The ``errors`` of a Track v2 207 body: ``(batch_index, reason, field, message)``."""
    if not isinstance(data, Mapping) or not isinstance(data.get("errors"), list):
        return []
    return [
        (
            int(e["batch_index"]),
            str(e.get("reason", "")),
            str(e.get("field", "")),
            str(e.get("message", "")),
        )
        for e in data["errors"]
        if isinstance(e, Mapping) and isinstance(e.get("batch_index"), int)
    ]


__all__ = ["BatchEndpoint", "TrackBatchEndpoint", "join_items", "track_batch_errors"]
