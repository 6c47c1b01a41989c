"""The pipeline's queue, behind a small interface so durable backends can slot in.

A backend stores admitted items in admission order and hands them out in batches.
Items are ``Operation`` objects (or ``Waited`` wrappers that carry a delivery
future); both expose ``payload`` bytes. Sequence numbers are implicit: the n-th item
ever appended has sequence n, which lets ``flush()`` wait for "everything admitted
so far" without storing anything per item.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Protocol, Union, final

from ._model import Operation


@final
class Waited:
    """An operation whose caller awaits its delivery."""

    __slots__ = ("future", "op", "payload")

    def __init__(self, op: Operation, future: asyncio.Future[None]) -> None:
        self.op = op
        self.payload = op.payload
        self.future = future


Item = Union[Operation, Waited]  # noqa: UP007 - a runtime alias, valid on 3.10


def op_of(item: Item) -> Operation:
    return item.op if isinstance(item, Waited) else item


class QueueBackend(Protocol):
    """Where admitted operations wait for the sender.

    ``MemoryQueue`` is the default. A durable backend (a disk spool, a shared
    stream) implements the same methods; the pipeline never looks inside.
    """

    @property
    def events(self) -> int:
        """Items currently queued."""

    @property
    def bytes(self) -> int:
        """Payload bytes currently queued."""

    @property
    def head_seq(self) -> int:
        """Sequence number of the oldest queued item (== appended count when empty)."""

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
    """An in-process FIFO with event and byte accounting."""

    __slots__ = ("_bytes", "_head_seq", "_items")

    def __init__(self) -> None:
        self._items: deque[Item] = deque()
        self._bytes = 0
        self._head_seq = 0

    @property
    def events(self) -> int:
        return len(self._items)

    @property
    def bytes(self) -> int:
        return self._bytes

    @property
    def head_seq(self) -> int:
        return self._head_seq

    def append(self, item: Item) -> None:
        self._items.append(item)
        self._bytes += len(item.payload)

    def pop_oldest(self) -> Item | None:
        if not self._items:
            return None
        item = self._items.popleft()
        self._bytes -= len(item.payload)
        self._head_seq += 1
        return item

    def take(self, max_events: int, max_bytes: int) -> tuple[int, list[Item]]:
        items = self._items
        first = self._head_seq
        out: list[Item] = []
        size = 0
        popleft = items.popleft
        while items and len(out) < max_events:
            n = len(items[0].payload) + 1  # +1 for the comma that joins them
            if out and size + n > max_bytes:
                break
            out.append(popleft())
            size += n
        self._bytes -= size - len(out)
        self._head_seq += len(out)
        return first, out

    def drain(self) -> list[Item]:
        out = list(self._items)
        self._items.clear()
        self._head_seq += len(out)
        self._bytes = 0
        return out
