"""Queue backends written against the public ``QueueBackend`` protocol, for tests.

``ListBackend`` is a plain FIFO whose queue the tests can look at. ``DeferredBackend``
implements the protocol differently from memory, the way a durable spool would:
items have ids, ``append`` completes later (a "group commit" on a later loop turn),
acknowledged and given-back ids are recorded, and items seeded from an "earlier
process" are announced at ``start`` and handed out first.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Sequence
from typing import Any

from cio_async import Batch
from cio_async.delivery import Arrived


class ListBackend:
    """A FIFO in a deque; ``queued()`` shows what waits for the sender."""

    deferred_commit = False

    def __init__(self) -> None:
        self.items: deque[bytes] = deque()

    def queued(self) -> list[bytes]:
        return [bytes(i) for i in self.items]

    def start(self, arrived: Arrived) -> None:
        pass

    def append(self, payload: bytes) -> Awaitable[None] | None:
        self.items.append(payload)
        return None

    def take(self, max_events: int, max_bytes: int) -> Batch:
        out: list[bytes] = []
        size = 0
        while self.items and len(out) < max_events:
            n = len(self.items[0])
            if out and size + n + len(out) + 1 > max_bytes:
                break
            out.append(self.items.popleft())
            size += n
        return Batch(out, size)

    def ack(self, ids: Sequence[Any]) -> None:
        pass

    def give_back(self, ids: Sequence[Any]) -> None:
        pass

    def pop_oldest(self) -> bytes | None:
        return self.items.popleft() if self.items else None

    def drain(self) -> list[bytes]:
        out = list(self.items)
        self.items.clear()
        return out

    async def aclose(self) -> None:
        pass


class DeferredBackend:
    """Ids, commits that complete on a later loop turn, replay of seeded items."""

    deferred_commit = True

    def __init__(self, left_over: Sequence[bytes] = ()) -> None:
        self._next = 0
        self.items: deque[tuple[int, bytes]] = deque()
        for p in left_over:
            self.items.append((self._new_id(), p))
        self._left_over = len(left_over), sum(map(len, left_over))
        self.acked: list[int] = []
        self.given_back: list[int] = []
        self.committed = 0
        self.closed = False

    def _new_id(self) -> int:
        self._next += 1
        return self._next

    def start(self, arrived: Arrived) -> None:
        if self._left_over[0]:
            arrived(*self._left_over)

    def append(self, payload: bytes) -> Awaitable[None] | None:
        self.items.append((self._new_id(), payload))
        fut = asyncio.get_running_loop().create_future()

        def commit() -> None:
            self.committed += 1
            fut.set_result(None)

        asyncio.get_running_loop().call_soon(commit)
        return fut

    def take(self, max_events: int, max_bytes: int) -> Batch:
        out: list[bytes] = []
        ids: list[int] = []
        size = 0
        while self.items and len(out) < max_events:
            n = len(self.items[0][1])
            if out and size + n + len(out) + 1 > max_bytes:
                break
            i, p = self.items.popleft()
            out.append(p)
            ids.append(i)
            size += n
        return Batch(out, size, ids)

    def ack(self, ids: Sequence[Any]) -> None:
        self.acked.extend(ids)

    def give_back(self, ids: Sequence[Any]) -> None:
        self.given_back.extend(ids)

    def pop_oldest(self) -> bytes | None:
        if not self.items:
            return None
        i, p = self.items.popleft()
        self.acked.append(i)
        return p

    def drain(self) -> list[bytes]:
        out = [p for _, p in self.items]
        self.given_back.extend(i for i, _ in self.items)
        self.items.clear()
        return out

    async def aclose(self) -> None:
        self.closed = True
