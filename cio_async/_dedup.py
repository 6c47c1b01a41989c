"""Identify deduplication: skip an identify identical to the last one sent for a person.

The cache keeps one entry per person: the person's identifier mapped to a hash of the
attributes last queued and an expiry time. Only an identify equal to the *latest* one
is skipped, so A, B, A sends all three (the third restores A). Attributes are
fingerprinted canonically (sorted keys at every level), so key order never matters.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import orjson

from ._encode import json_default

_OPTS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME


def canonical(attributes: Mapping[str, Any] | None, extra: Any = None) -> bytes:
    """Canonical bytes of identify attributes (plus ``extra`` options): key order does
    not matter. Raises TypeError for values that are not JSON."""
    if extra is None:
        return orjson.dumps(attributes or {}, default=json_default, option=_OPTS)
    return orjson.dumps((attributes or {}, extra), default=json_default, option=_OPTS)


class DedupCache(Protocol):
    """Where identify fingerprints live. ``MemoryDedupCache`` is the default; a shared
    backend (many processes deduplicating together) implements the same methods and
    hashes ``person_key``/``fingerprint`` however it stores them."""

    def seen(self, person_key: str, fingerprint: bytes) -> bool:
        """True if ``fingerprint`` is the live entry for ``person_key``; otherwise
        record it as the person's latest and return False."""

    def evict(self, person_key: str) -> None:
        """Forget a person (after delete/suppress/merge, or a failed identify)."""

    def __len__(self) -> int: ...


class AsyncDedupCache(Protocol):
    """A dedup cache whose answers need I/O: a store shared by many processes (see
    ``cio_async.redis.RedisDedupCache``). ``await client.identify(...)`` awaits
    ``seen``; ``identify_nowait`` cannot wait and consults ``local`` alone (the
    in-process cache in front of the shared store).

    A shared cache should fail open: when its store cannot answer, ``seen`` returns
    False (a duplicate identify is a harmless upsert; a lost one is not).
    """

    @property
    def local(self) -> DedupCache:
        """The in-process cache in front of the shared store."""

    async def seen(self, person_key: str, fingerprint: bytes) -> bool:
        """True if ``fingerprint`` is the live entry for ``person_key`` (in the local
        cache or the shared store); otherwise record it and return False."""

    def evict(self, person_key: str) -> None:
        """Forget a person, locally and (in the background) in the shared store."""

    def __len__(self) -> int: ...


class MemoryDedupCache:
    """A bounded LRU with a monotonic-clock TTL. No tasks, no locks: loop-thread only.

    Keys and fingerprints are stored as 64-bit hashes, so every entry is the same
    small size whatever the identifier or attributes, and ``max_entries`` bounds
    memory.
    """

    __slots__ = ("_clock", "_data", "max_entries", "ttl")

    def __init__(
        self,
        ttl: float = 300.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._data: OrderedDict[int, tuple[int, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    def seen(self, person_key: str, fingerprint: bytes) -> bool:
        now = self._clock()
        data = self._data
        key = hash(person_key)
        fp = hash(fingerprint)
        entry = data.get(key)
        if entry is not None and entry[0] == fp and entry[1] > now:
            data.move_to_end(key)
            return True
        data[key] = (fp, now + self.ttl)
        data.move_to_end(key)
        if len(data) > self.max_entries:
            data.popitem(last=False)
        return False

    def evict(self, person_key: str) -> None:
        self._data.pop(hash(person_key), None)

    def clear(self) -> None:
        self._data.clear()
