"""The pipeline's queue, behind a small interface so durable backends can slot in.

A backend stores admitted items in admission order and hands them out in batches.
Items are the operations' encoded payloads (``bytes``): not tracked by the garbage
collector, about 40 bytes of overhead each, and a batch body is a plain join. An
operation whose caller awaits delivery is a ``Waited`` (a ``bytes`` subclass that
also carries the ``Operation`` and its future). Sequence numbers are implicit: the
n-th item ever appended has sequence n, which lets ``flush()`` wait for "everything
admitted so far" without storing anything per item.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from ._model import Operation


class Waited(bytes):
    """An encoded operation whose caller awaits its delivery. An ``urgent`` one makes
    the sender go at once (a waiting caller should not wait for the linger)."""

    op: Operation
    future: asyncio.Future[None]
    urgent: bool

    def __new__(cls, op: Operation, future: asyncio.Future[None], urgent: bool = True) -> Waited:
        self = super().__new__(cls, op.payload)
        self.op = op
        self.future = future
        self.urgent = urgent
        return self


Item = bytes  # a payload, or a Waited


def op_of(item: Item) -> Operation:
    """The ``Operation`` behind a queued item (decoded again for plain payloads)."""
    return item.op if isinstance(item, Waited) else Operation.from_payload(item)


class QueueBackend(Protocol):
    """Where admitted operations wait for the sender.

    ``MemoryQueue`` is the default. A durable backend (a disk spool, a shared
    stream) implements the same attributes and methods; the pipeline never looks
    inside. Items are ``bytes`` (``Waited`` items must be kept in memory: their
    futures live here). ``events``, ``nbytes`` and ``head_seq`` are plain attributes
    because the admission hot path reads them on every call.
    """

    #: Items currently queued.
    events: int
    #: Payload bytes currently queued.
    nbytes: int
    #: Sequence number of the oldest queued item (== appended count when empty).
    head_seq: int

    def append(self, item: Item) -> None:
        """Queue an item at the tail."""

    def pop_oldest(self) -> Item | None:
        """Remove and return the oldest item (the drop-oldest policy)."""

    def take(self, max_events: int, max_bytes: int) -> tuple[int, list[Item]]:
        """Remove up to ``max_events`` items whose payloads (plus separators) fit
        ``max_bytes``; return the first item's sequence number and the items. Always
        returns at least one item when not empty."""

    def drain(self) -> list[Item]:
        """Remove and return everything (shutdown)."""


class MemoryQueue:
    """An in-process FIFO with event and byte accounting.

    A list with a moving head rather than a deque: a batch is taken with one slice and
    sized with one ``sum(map(len, ...))``, both in C, instead of a Python loop per item.
    """

    __slots__ = ("_head", "_items", "events", "head_seq", "nbytes")

    def __init__(self) -> None:
        self._items: list[Item] = []
        self._head = 0
        self.events = 0
        self.nbytes = 0
        self.head_seq = 0

    def append(self, item: Item) -> None:
        self._items.append(item)
        self.events += 1
        self.nbytes += len(item)

    def _advance(self, n: int) -> None:
        self._head += n
        self.events -= n
        self.head_seq += n
        if self._head > 4096 and self._head * 2 > len(self._items):
            # Compact now and then, so the list does not grow without bound.
            del self._items[: self._head]
            self._head = 0

    def pop_oldest(self) -> Item | None:
        if not self.events:
            return None
        item = self._items[self._head]
        self._items[self._head] = b""  # release the payload now, not at compaction
        self.nbytes -= len(item)
        self._advance(1)
        return item

    def take(self, max_events: int, max_bytes: int) -> tuple[int, list[Item]]:
        first = self.head_seq
        if not self.events:
            return first, []
        h = self._head
        n = min(max_events, self.events)
        out = self._items[h : h + n]
        size = sum(map(len, out)) + n  # + the commas that join them
        if size > max_bytes and n > 1:
            # Over the byte budget: keep the longest prefix that fits (at least one).
            size, k = 0, 0
            for item in out:
                if k and size + len(item) + 1 > max_bytes:
                    break
                size += len(item) + 1
                k += 1
            out = out[:k]
            n = k
        self._items[h : h + n] = [b""] * n  # drop our references to the taken payloads
        self.nbytes -= size - n
        self._advance(n)
        return first, out

    def drain(self) -> list[Item]:
        out = self._items[self._head :]
        self._items.clear()  # in place: the pipeline's fast path holds this very list
        self._head = 0
        self.head_seq += len(out)
        self.events = 0
        self.nbytes = 0
        return out
