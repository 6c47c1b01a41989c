"""Where admitted operations wait for the sender: the ``QueueBackend`` protocol and
the default ``MemoryBackend``.

A backend stores encoded payloads (``bytes``) in admission order and hands them to
the sender in batches. It keeps no counters the hot path needs: the accumulator counts
events and bytes itself, so a backend's ``append`` can be as cheap as ``list.append``
(the memory backend's is exactly that).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from .._model import Operation


class Waited(bytes):
    """An encoded operation whose caller awaits its delivery (``wait=True``,
    ``submit``). It is a ``bytes`` (a backend stores and joins it like any payload)
    that also carries the ``Operation`` and its future. A backend must hand back the
    same object from ``take`` (keep it in memory); only its bytes need persisting.
    An ``urgent`` one makes the sender go at once rather than wait for the linger."""

    op: Operation
    future: asyncio.Future[None]
    urgent: bool

    def __new__(cls, op: Operation, future: asyncio.Future[None], urgent: bool = True) -> Waited:
        self = super().__new__(cls, op.payload)
        self.op = op
        self.future = future
        self.urgent = urgent
        return self


@dataclass(slots=True)
class Batch:
    """What ``QueueBackend.take`` returns: the payloads, their total length in bytes
    (without separators) and, for a backend that addresses its items, their ids in the
    same order (``None`` for the memory backend). Ids are opaque to the sender; it
    passes them back to ``ack``/``give_back``."""

    items: list[bytes]
    nbytes: int
    ids: Sequence[Any] | None = None


#: Announces items the backend will hand out that were not appended in this process
#: (replayed from an earlier process, read from a shared stream): ``(count, nbytes)``.
Arrived = Callable[[int, int], None]


@runtime_checkable
class QueueBackend(Protocol):
    """Where admitted operations wait for the sender (see ``cio_async.delivery``).

    All methods are called on the event loop's thread. ``append`` is on the admission
    hot path: keep it to an append to a buffer (write-behind, group commits).
    """

    #: True when ``append`` may return an awaitable that completes on a later commit;
    #: an ``await`` admission (``await cio.track(...)``) then waits for it. False lets
    #: admissions return as soon as ``append`` did (the memory backend).
    deferred_commit: bool

    def start(self, arrived: Arrived) -> None:
        """Called once, on the loop, before the first ``append`` or ``take``. Items
        the backend holds from an earlier process (unacknowledged when it died) are
        announced with ``arrived(count, nbytes)``, now or later; ``take`` must hand
        them out before newer ones. A backend fed from elsewhere (a relay reading a
        shared stream) announces what it read the same way."""

    def append(self, payload: bytes) -> Awaitable[None] | None:
        """Queue a payload at the tail. Return None when it is stored, or an awaitable
        that completes once it is (a group commit). Must not raise for a full disk or
        a lost connection: report through the awaitable or drop with a log line."""

    def take(self, max_events: int, max_bytes: int) -> Batch:
        """Remove up to ``max_events`` of the oldest items whose payloads plus one
        separator byte each fit ``max_bytes`` (at least one item when any is queued).
        An empty batch means nothing is queued."""

    def ack(self, ids: Sequence[Any]) -> None:
        """These taken items are settled for good (delivered, or rejected and
        reported): forget them."""

    def give_back(self, ids: Sequence[Any]) -> None:
        """These taken items were not delivered by this process (shutdown): keep them
        for a later one. A memory backend forgets them (they went to ``on_drop``)."""

    def pop_oldest(self) -> bytes | None:
        """Remove, forget and return the oldest queued item (the ``drop_oldest``
        policy), or None when empty."""

    def drain(self) -> list[bytes]:
        """Remove and return every queued item (shutdown: they go to ``on_drop``).
        A durable backend keeps them for a later process, as ``give_back`` does."""

    async def aclose(self) -> None:
        """Release resources (commit what is buffered, close files/connections)."""

    # Optional: ``full(size) -> bool``, True when the backend has no room for ``size``
    # more bytes (a spool's ``max_bytes``, a full disk); admissions then go through
    # the ``when_full`` policy (the accumulator asks only on its slow path).


class MemoryBackend:
    """The default backend: an in-process FIFO (nothing survives the process).

    A list with a moving head rather than a deque: a batch is taken with one slice
    and sized with one ``sum(map(len, ...))``, both in C, and ``append`` is the list's
    own C method.
    """

    __slots__ = ("_head", "_items", "append")

    deferred_commit = False

    def __init__(self) -> None:
        self._items: list[bytes] = []
        self._head = 0
        #: ``list.append``: returns None, so admissions never wait for a commit.
        self.append: Callable[[bytes], None] = self._items.append

    def start(self, arrived: Arrived) -> None:
        """Nothing survives a process in memory: nothing to announce."""

    def _advance(self, n: int) -> None:
        self._head += n
        if self._head > 4096 and self._head * 2 > len(self._items):
            # Compact now and then, so the list does not grow without bound.
            del self._items[: self._head]
            self._head = 0

    def take(self, max_events: int, max_bytes: int) -> Batch:
        items = self._items
        h = self._head
        out = items[h : h + max_events]
        n = len(out)
        if not n:
            return Batch(out, 0)
        size = sum(map(len, out))
        if size + n > max_bytes and n > 1:
            # Over the byte budget: keep the longest prefix that fits (at least one).
            size, k = 0, 0
            for item in out:
                if k and size + len(item) + k + 1 > max_bytes:
                    break
                size += len(item)
                k += 1
            out = out[:k]
            n = k
        if h + n == len(items):
            items.clear()  # took everything (the common case): start the list afresh
            self._head = 0
        else:
            items[h : h + n] = [b""] * n  # drop our references to the taken payloads
            self._advance(n)
        return Batch(out, size)

    def ack(self, ids: Sequence[Any]) -> None:
        """Nothing to forget: taken items live only in the batch."""

    def give_back(self, ids: Sequence[Any]) -> None:
        """Nothing to keep: memory does not outlive the process."""

    def pop_oldest(self) -> bytes | None:
        h = self._head
        if h >= len(self._items):
            return None
        item = self._items[h]
        self._items[h] = b""  # release the payload now, not at compaction
        self._advance(1)
        return item

    def drain(self) -> list[bytes]:
        out = self._items[self._head :]
        self._items.clear()  # in place: ``append`` is bound to this very list
        self._head = 0
        return out

    async def aclose(self) -> None:
        """Nothing to release."""


__all__ = ["Arrived", "Batch", "MemoryBackend", "QueueBackend", "Waited"]
