"""Identify deduplication: skip an identify identical to the last one sent for a person.

The cache keeps one entry per person: a fixed-size hash of the person's identifier
mapped to a hash of the attributes last sent and an expiry time. Only an identify
equal to the *latest* one is skipped, so A, B, A sends all three (the third restores
A). Keys are hashed with BLAKE2b so a shared backend (many processes deduplicating
together) can use the same keys.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import orjson

from ._encode import json_default

_OPTS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME


def person_digest(person_key: str) -> bytes:
    """16-byte key for a person (``kind:value``)."""
    return hashlib.blake2b(person_key.encode(), digest_size=16).digest()


def fingerprint(attributes: Mapping[str, Any] | None, extra: Any = None) -> bytes:
    """16-byte canonical hash of identify attributes: key order does not matter."""
    data = orjson.dumps((attributes or {}, extra), default=json_default, option=_OPTS)
    return hashlib.blake2b(data, digest_size=16).digest()


class DedupCache(Protocol):
    """Where identify fingerprints live. ``MemoryDedupCache`` is the default; a shared
    backend implements the same three methods."""

    def seen(self, person: bytes, fp: bytes) -> bool:
        """True if ``fp`` is the live entry for ``person``; otherwise record it."""

    def evict(self, person: bytes) -> None:
        """Forget ``person`` (after delete/suppress/merge, or a failed identify)."""

    def __len__(self) -> int: ...


class MemoryDedupCache:
    """A bounded LRU with a monotonic-clock TTL. No tasks, no locks: loop-thread only.

    Each entry costs about 300 bytes (two 16-byte digests, a float, the dict slot);
    ``max_entries`` bounds memory (10,000 entries is about 3 MB).
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
        self._data: OrderedDict[bytes, tuple[bytes, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    def seen(self, person: bytes, fp: bytes) -> bool:
        now = self._clock()
        data = self._data
        entry = data.get(person)
        if entry is not None and entry[0] == fp and entry[1] > now:
            data.move_to_end(person)
            return True
        data[person] = (fp, now + self.ttl)
        data.move_to_end(person)
        if len(data) > self.max_entries:
            data.popitem(last=False)
        return False

    def evict(self, person: bytes) -> None:
        self._data.pop(person, None)

    def clear(self) -> None:
        self._data.clear()
