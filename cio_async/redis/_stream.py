"""Redis Streams primitives for the producer/relay split.

Producers append encoded operations to one stream (``XADD``, a batch per call, inside a
Lua script that first checks the stream's length, so the bound is exact and the stream
is never trimmed: a full stream refuses the batch and the producer's own backpressure
policy applies). Relays read it in one consumer group (``XREADGROUP``), acknowledge and
delete what Customer.io accepted (``XACK`` + ``XDEL`` in one ``MULTI``), reclaim what a
dead relay left pending (``XAUTOCLAIM``), and move what can never be delivered to a
dead-letter stream with the reason.

redis-py pitfalls avoided here:

- ``XREADGROUP ... BLOCK`` longer than the client's ``socket_timeout`` raises a
  ``TimeoutError`` in asyncio mode (redis/redis-py #3138): the block is kept well
  under the timeout (``read`` checks).
- ``xautoclaim(..., justid=True)`` returns only the ids and loses the cursor (the
  parser keeps ``response[1]`` only), so a sweep could never continue: we never pass
  ``justid`` and follow the cursor until ``0-0``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aredis
from redis.exceptions import ResponseError

from .._errors import ConfigurationError, CustomerIOError

log = logging.getLogger("cio_async")

#: The field holding an operation's encoded payload in a stream entry.
FIELD = b"o"

# KEYS: the stream. ARGV[1]: the length bound; ARGV[2..]: payloads.
# Appends all or nothing; returns the new length, or -(current length) when full.
# A batch is refused only if the stream already holds something: a lone batch larger
# than the bound still goes in (otherwise it could never go anywhere).
_ADD = """
local n = redis.call('XLEN', KEYS[1])
local count = #ARGV - 1
if n > 0 and n + count > tonumber(ARGV[1]) then
  return -n
end
for i = 2, #ARGV do
  redis.call('XADD', KEYS[1], '*', 'o', ARGV[i])
end
return n + count
"""


class StreamFullError(CustomerIOError):
    """The stream holds ``max_len`` undelivered operations: the relays are behind.
    Retryable: it clears as the relays catch up."""

    _retryable = True

    def __init__(self, length: int, max_len: int) -> None:
        super().__init__(
            f"Redis stream full ({length} undelivered operations, bound {max_len}): "
            "the relays are behind or stopped"
        )
        self.length = length
        self.max_len = max_len


@dataclass(frozen=True, slots=True)
class StreamConfig:
    """Names and bounds shared by producers and relays.

    Args:
        stream: the stream's key.
        group: the relays' consumer group.
        dead_letter: the dead-letter stream's key (default ``<stream>:dead``).
        max_len: the most undelivered operations the stream may hold; producers meet
            backpressure beyond it (entries are never trimmed).
    """

    stream: str = "cio:ops"
    group: str = "relays"
    dead_letter: str = ""
    max_len: int = 1_000_000

    def __post_init__(self) -> None:
        if not self.stream or not self.group:
            raise ConfigurationError("stream and group must be non-empty")
        if not isinstance(self.max_len, int) or self.max_len < 1:
            raise ConfigurationError("max_len must be a positive integer")
        if not self.dead_letter:
            object.__setattr__(self, "dead_letter", self.stream + ":dead")


class StreamWriter:
    """Appends batches to the stream, all or nothing, within ``max_len``."""

    def __init__(self, redis: aredis.Redis, config: StreamConfig) -> None:
        self._redis = redis
        self.config = config
        self._add = redis.register_script(_ADD)

    async def add(self, payloads: Sequence[bytes]) -> int:
        """Append ``payloads`` in order; return the stream's new length. Raises
        ``StreamFullError`` (nothing appended) or a Redis connection error."""
        if not payloads:
            return 0
        n = int(await self._add(keys=[self.config.stream], args=[self.config.max_len, *payloads]))
        if n < 0:
            raise StreamFullError(-n, self.config.max_len)
        return n


@dataclass(frozen=True, slots=True)
class Entry:
    """One stream entry: its id, the payload, and how often it was delivered to a
    relay (1 for a first read; more for a reclaimed one)."""

    id: bytes
    payload: bytes | None
    deliveries: int = 1


def _entries(raw: Any, deliveries: int = 1) -> list[Entry]:
    out = []
    for eid, fields in raw or ():
        payload = fields.get(FIELD) if fields else None
        out.append(Entry(eid, payload, deliveries))
    return out


class StreamConsumer:
    """One relay's view of the stream's consumer group."""

    def __init__(self, redis: aredis.Redis, config: StreamConfig, consumer: str) -> None:
        self._redis = redis
        self.config = config
        self.consumer = consumer

    async def ensure_group(self) -> None:
        """Create the group (reading from the stream's start) unless it exists."""
        try:
            await self._redis.xgroup_create(
                self.config.stream, self.config.group, id="0", mkstream=True
            )
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def read(self, count: int, block_ms: int) -> list[Entry]:
        """New entries for this consumer (waiting up to ``block_ms`` for some)."""
        resp: Any = await self._redis.xreadgroup(
            self.config.group,
            self.consumer,
            {self.config.stream: ">"},
            count=count,
            block=block_ms,
        )
        out: list[Entry] = []
        for _stream, raw in resp or ():
            out.extend(_entries(raw))
        return out

    async def claim(self, min_idle_ms: int, count: int) -> list[Entry]:
        """Take over entries pending longer than ``min_idle_ms`` in any consumer (a
        dead relay's), following XAUTOCLAIM's cursor; with their delivery counts."""
        cfg = self.config
        cursor: Any = "0-0"
        claimed: list[Entry] = []
        while len(claimed) < count:
            # Never justid=True: redis-py then drops the cursor (see module docstring).
            reply = await self._redis.xautoclaim(
                cfg.stream,
                cfg.group,
                self.consumer,
                min_idle_ms,
                start_id=cursor,
                count=min(100, count - len(claimed)),
            )
            cursor, raw = reply[0], reply[1]
            claimed.extend(_entries(raw))
            if cursor in (b"0-0", "0-0"):
                break
        if not claimed:
            return claimed
        # Delivery counts (XAUTOCLAIM incremented them), for the poison-message rule.
        counts: dict[bytes, int] = {}
        ids = [e.id for e in claimed]
        infos: Any = await self._redis.xpending_range(
            cfg.stream,
            cfg.group,
            min=min(ids),
            max=max(ids),
            count=len(ids) + 100,
            consumername=self.consumer,
        )
        for info in infos:
            counts[info["message_id"]] = int(info["times_delivered"])
        return [Entry(e.id, e.payload, counts.get(e.id, 2)) for e in claimed]

    async def ack(self, ids: Sequence[bytes]) -> None:
        """Delivered: acknowledge and delete (so the stream's length counts only what
        is undelivered)."""
        if not ids:
            return
        pipe: Any = self._redis.pipeline(transaction=True)
        pipe.xack(self.config.stream, self.config.group, *ids)
        pipe.xdel(self.config.stream, *ids)
        await pipe.execute()

    async def dead_letter(self, entries: Sequence[tuple[Entry, str]]) -> None:
        """Move entries that can never be delivered to the dead-letter stream, each
        with its reason, and remove them from the stream (one MULTI)."""
        if not entries:
            return
        cfg = self.config
        pipe: Any = self._redis.pipeline(transaction=True)
        for entry, reason in entries:
            pipe.xadd(
                cfg.dead_letter,
                {
                    FIELD: entry.payload or b"",
                    b"reason": reason.encode(),
                    b"source_id": entry.id,
                    b"deliveries": str(entry.deliveries).encode(),
                },
            )
        ids = [e.id for e, _ in entries]
        pipe.xack(cfg.stream, cfg.group, *ids)
        pipe.xdel(cfg.stream, *ids)
        await pipe.execute()

    async def backlog(self) -> tuple[int, int, int | None]:
        """``(length, pending, lag)``: undelivered entries in the stream, entries read
        but not yet acknowledged (all relays), and entries not yet read by the group
        (Redis >= 7.0; None when the server does not say)."""
        cfg = self.config
        pipe: Any = self._redis.pipeline(transaction=False)
        pipe.xlen(cfg.stream)
        pipe.xpending(cfg.stream, cfg.group)
        pipe.xinfo_groups(cfg.stream)
        length, pending, groups = await pipe.execute()
        lag = None
        for g in groups:
            name = g.get("name")
            if name in (cfg.group, cfg.group.encode()):
                value = g.get("lag")
                lag = int(value) if value is not None else None
        return int(length), int(pending["pending"]), lag


__all__ = ["FIELD", "Entry", "StreamConfig", "StreamConsumer", "StreamFullError", "StreamWriter"]
