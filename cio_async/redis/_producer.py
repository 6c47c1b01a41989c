"""The producer side: a client whose batches go to a Redis stream, not to Customer.io.

``RedisStreamTarget`` is a batch endpoint for the client's sender. Everything else
about admission stays the client's: operations are validated, encoded and queued in
memory exactly as without Redis (the same fast path, the same cost per call), and
the sender hands each batch to the stream in one script call (all or nothing, within
the stream's bound). So an application process pays for one ``XADD`` round trip per
batch, not per operation, and never talks to Customer.io for queued operations
(direct calls and the App API still go straight there).

Backpressure: when the stream is full (the relays are behind) or Redis is
unreachable, the batch fails with a retryable error; the sender retries it with
backoff, its in-memory queue fills, and the client's ``BatchPolicy.when_full``
applies (``block`` makes awaiting callers wait and then raise ``QueueFullError``;
``drop_newest``/``drop_oldest`` report to ``on_drop``). A batch still failing past the
retry budget goes to ``on_error``. Nothing is trimmed from the stream and nothing is
lost silently.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import redis.asyncio as aredis
from multidict import CIMultiDict, CIMultiDictProxy

from .._errors import APIConnectionError, OperationRejectedError
from ..http._transport import Response
from ._conn import UNREACHABLE, connect
from ._stream import StreamConfig, StreamFullError, StreamWriter

log = logging.getLogger("cio_async")

#: Payloads are compact JSON (no raw newlines), so a newline joins and splits them.
_SEP = b"\n"
_OK = Response(200, CIMultiDictProxy(CIMultiDict()), b"")


class RedisStreamTarget:
    """Where a producer client's batches go: a Redis stream read by ``cio-async relay``.

    Pass it as ``AsyncCustomerIO(..., stream=RedisStreamTarget(url))``.

    Args:
        redis: a ``redis.asyncio.Redis`` or a ``redis://`` URL (then owned).
        config: the stream's name, group and length bound (shared with the relays).
    """

    op = "stream"

    def __init__(self, redis: aredis.Redis | str, config: StreamConfig | None = None) -> None:
        self._redis, self._owned = connect(redis)
        self.config = config or StreamConfig()
        self._writer = StreamWriter(self._redis, self.config)
        #: Batches and operations appended so far.
        self.batches = 0
        self.appended = 0
        self._failing = False

    def __repr__(self) -> str:
        return f"<RedisStreamTarget {self.config.stream} max_len={self.config.max_len}>"

    def body(self, items: Sequence[bytes]) -> bytes:
        """The batch as one buffer (split again in ``send``)."""
        return _SEP.join(items)

    async def send(self, body: bytes, headers: Mapping[str, str] | None) -> Response:
        """Append the batch to the stream, all or nothing. A full stream or an
        unreachable Redis raises a retryable ``APIConnectionError``."""
        payloads = body.split(_SEP)
        try:
            await self._writer.add(payloads)
        except StreamFullError as exc:
            self._trouble(str(exc))
            raise APIConnectionError(str(exc), surely_not_sent=True) from exc
        except UNREACHABLE as exc:
            self._trouble(f"Redis unreachable ({exc!r})")
            raise APIConnectionError(f"Redis unreachable: {exc!r}") from exc
        if self._failing:
            self._failing = False
            log.warning("cio_async: appending to %s again", self.config.stream)
        self.batches += 1
        self.appended += len(payloads)
        return _OK

    def _trouble(self, what: str) -> None:
        # One warning per episode, not per retried batch.
        if not self._failing:
            self._failing = True
            log.warning(
                "cio_async: cannot append to %s: %s; batches are retried and wait in "
                "memory (BatchPolicy.when_full applies when the queue fills)",
                self.config.stream,
                what,
            )

    def rejected(self, response: Response, count: int) -> dict[int, OperationRejectedError]:
        """The stream takes every operation (Customer.io judges them at the relay)."""
        return {}

    async def aclose(self) -> None:
        """Close the Redis client if this target made it."""
        if self._owned:
            await self._redis.aclose()


__all__ = ["RedisStreamTarget"]
