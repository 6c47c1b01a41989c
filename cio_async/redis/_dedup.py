"""Identify deduplication shared by a fleet: a small local cache in front of Redis.

The local ``MemoryDedupCache`` answers repeats within one process for free. A local
miss asks Redis with one script call: the person's latest fingerprint lives at
``<prefix>:dd:<workspace>:<hash(person)>`` with a TTL; equal means "already sent by
some process", anything else is recorded as the latest and means "send". Keys and
fingerprints are stored as BLAKE2b digests (stable across processes, unlike
``hash()``), so neither identifiers nor attributes are stored in Redis.

It fails open: while Redis cannot answer, every local miss is sent (a duplicate
identify is a harmless upsert; a lost one is not), with one warning per outage.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from typing import Any

import redis.asyncio as aredis

from .._dedup import DedupCache, MemoryDedupCache
from .._errors import ConfigurationError
from ._conn import UNREACHABLE, connect

log = logging.getLogger("cio_async")

# KEYS: the person's key. ARGV: fingerprint digest, TTL (ms). 1 = seen, 0 = recorded.
_SEEN = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 0
"""


def _digest(data: bytes, size: int) -> bytes:
    return hashlib.blake2b(data, digest_size=size).digest()


class RedisDedupCache:
    """An ``AsyncDedupCache`` shared through Redis by every process of a workspace.

    Pass it as ``AsyncCustomerIO(..., dedup_cache=RedisDedupCache(url, workspace=...))``.

    Args:
        redis: a ``redis.asyncio.Redis`` or a ``redis://`` URL (then owned).
        workspace: keys are per workspace (e.g. the site id).
        ttl: seconds a fingerprint stays in Redis.
        local_ttl, local_max_entries: the in-process cache in front.
        recheck: seconds to skip Redis after it failed (failing open meanwhile).
    """

    def __init__(
        self,
        redis: aredis.Redis | str,
        *,
        workspace: str,
        ttl: float = 3600.0,
        local_ttl: float = 300.0,
        local_max_entries: int = 10_000,
        prefix: str = "cio",
        recheck: float = 1.0,
    ) -> None:
        if not workspace:
            raise ConfigurationError("workspace must be set (e.g. the site id)")
        if not ttl > 0:
            raise ConfigurationError("ttl must be positive")
        self._redis, self._owned = connect(redis)
        self._local = MemoryDedupCache(min(local_ttl, ttl), local_max_entries)
        self._prefix = f"{prefix}:dd:{workspace}:"
        self._ttl_ms = max(1, math.ceil(ttl * 1000))
        self._script = self._redis.register_script(_SEEN)
        self._recheck = recheck
        self._down_until = -math.inf
        self._degraded = False
        self._tasks: set[asyncio.Task[Any]] = set()
        #: Local misses sent without asking Redis (it was unreachable).
        self.failed_open = 0

    def __repr__(self) -> str:
        return f"<RedisDedupCache {self._prefix}* local={len(self._local)}>"

    @property
    def local(self) -> DedupCache:
        return self._local

    def __len__(self) -> int:
        return len(self._local)

    def _key(self, person_key: str) -> str:
        return self._prefix + _digest(person_key.encode(), 12).hex()

    async def seen(self, person_key: str, fingerprint: bytes) -> bool:
        """Local cache first; on a miss, Redis (one round trip). Fails open."""
        if self._local.seen(person_key, fingerprint):
            return True
        if self._degraded and time.monotonic() < self._down_until:
            self.failed_open += 1
            return False
        try:
            hit = await self._script(
                keys=[self._key(person_key)], args=[_digest(fingerprint, 16), self._ttl_ms]
            )
        except UNREACHABLE as exc:
            self._down_until = time.monotonic() + self._recheck
            self.failed_open += 1
            if not self._degraded:
                self._degraded = True
                log.warning(
                    "cio_async: Redis unreachable for identify dedup (%r); sending "
                    "identifies without the shared check until it is back",
                    exc,
                )
            return False
        if self._degraded:
            self._degraded = False
            log.warning("cio_async: Redis reachable again; shared identify dedup resumed")
        return bool(hit)

    def evict(self, person_key: str) -> None:
        """Forget a person here at once and in Redis in the background (a failed or
        superseded identify must not suppress the next one in any process)."""
        self._local.evict(person_key)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop to run the delete on; the Redis entry expires by TTL
        task = loop.create_task(self._delete(self._key(person_key)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _delete(self, key: str) -> None:
        try:
            await self._redis.delete(key)
        except UNREACHABLE:
            pass  # the entry expires by its TTL; at worst one identify is skipped early

    async def aclose(self) -> None:
        """Finish background deletes and close the Redis client if this cache made it."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._owned:
            await self._redis.aclose()
