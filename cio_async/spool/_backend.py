"""``SpoolBackend``: the delivery core's queue backend over a ``Spool``.

Items wait in memory exactly as in the memory backend (``Waited`` items carry
futures, so ``take`` must hand back the same objects) and are also written to disk
by the spool's writer thread: the disk copy is what survives a crash. The n-th item
this process appends has spool id n, so a batch of this process's items is a
``range`` of ids with no per-item bookkeeping until it is taken. Items replayed from
dead processes' files are read a page at a time by the writer thread, announced to
the accumulator with ``arrived`` and handed out before newer ones.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Generator, Sequence
from typing import Any

from .._config import SpoolConfig
from ..delivery import Arrived, Batch
from ._spool import Spool
from ._types import SpoolStats

#: Rows read back per page from adopted files: bounds the memory replay takes.
REPLAY_PAGE = 5000


class _Durable:
    """The awaitable ``append`` returns: done once the row is committed."""

    __slots__ = ("_id", "_spool")

    def __init__(self, spool: Spool, id_: int) -> None:
        self._spool = spool
        self._id = id_

    def __await__(self) -> Generator[Any, None, None]:
        return self._spool.durable(self._id).__await__()


class SpoolBackend:
    """Durable queue backend (see the module docstring and ``QueueBackend``)."""

    deferred_commit = True

    def __init__(self, config: SpoolConfig) -> None:
        self.config = config
        self.spool = Spool(
            config.directory,
            sync_interval=config.sync_interval,
            max_bytes=config.max_bytes,
            synchronous=config.synchronous,
        )
        self._items: list[bytes] = []
        self._head = 0
        self._head_id = 1  # spool id of self._items[self._head]
        self._replay: deque[tuple[int, bytes]] = deque()
        self._replay_asked = False
        self._sizes: dict[int, int] = {}  # taken, unsettled ids -> payload bytes
        self._arrived: Arrived | None = None
        self._page_waiters: list[asyncio.Future[None]] = []

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, arrived: Arrived) -> None:
        self._arrived = arrived
        self.spool.begin(self._opened, self._ask_replay)

    def _opened(self, err: BaseException | None) -> None:
        if err is None:
            self._ask_replay()

    def _ask_replay(self) -> None:
        if not self._replay_asked and self.spool.replay_pending:
            self._replay_asked = True
            self.spool.request_replay(REPLAY_PAGE, self._replayed)

    def _replayed(self, rows: list[tuple[int, bytes]]) -> None:
        self._replay_asked = False
        for fut in self._page_waiters:
            if not fut.done():
                fut.set_result(None)
        self._page_waiters.clear()
        if not rows:
            return
        self._replay.extend(rows)
        if self._arrived is not None:
            self._arrived(len(rows), sum(len(b) for _, b in rows))

    async def aclose(self) -> None:
        await self.spool.aclose()

    async def opened(self) -> None:
        """Wait until the spool file is open, dead processes' files adopted and the
        first page of their operations queued (a ``flush()`` then delivers it)."""
        await self.spool.wait_open()
        if self._replay_asked:
            await self.next_page()

    @property
    def pending(self) -> bool:
        """True while operations are spooled and not settled, or adopted files have
        unread pages."""
        return bool(self.spool.events) or self.spool.replay_pending

    async def next_page(self) -> bool:
        """Wait for the next replay page; False when there is none to read."""
        if not self._replay_asked:
            self._ask_replay()
        if not self._replay_asked:
            return False
        fut = asyncio.get_running_loop().create_future()
        self._page_waiters.append(fut)
        await fut
        return True

    # -- admission ---------------------------------------------------------------------

    def append(self, payload: bytes) -> _Durable:
        self._items.append(payload)
        return _Durable(self.spool, self.spool.append(payload))

    def full(self, size: int) -> bool:
        """True when the spool has no room for ``size`` more bytes (``max_bytes``) or
        cannot write (disk full): admissions then go through ``when_full``."""
        return not self.spool.room_for(size)

    # -- the sender's side ------------------------------------------------------------

    def take(self, max_events: int, max_bytes: int) -> Batch:
        if self._replay:
            return self._take_replayed(max_events, max_bytes)
        items = self._items
        h = self._head
        out = items[h : h + max_events]
        n = len(out)
        if not n:
            return Batch(out, 0, ())
        size = sum(map(len, out))
        if size + n > max_bytes and n > 1:
            size, k = 0, 0
            for item in out:
                if k and size + len(item) + k + 1 > max_bytes:
                    break
                size += len(item)
                k += 1
            out = out[:k]
            n = k
        items[h : h + n] = [b""] * n
        first = self._head_id
        ids = range(first, first + n)
        self._sizes.update(zip(ids, map(len, out), strict=True))
        self._advance(n)
        return Batch(out, size, ids)

    def _take_replayed(self, max_events: int, max_bytes: int) -> Batch:
        r = self._replay
        ids: list[int] = []
        out: list[bytes] = []
        size = 0
        while r and len(out) < max_events:
            i, body = r[0]
            if out and size + len(body) + len(out) + 1 > max_bytes:
                break
            r.popleft()
            ids.append(i)
            out.append(body)
            size += len(body)
            self._sizes[i] = len(body)
        if len(r) < REPLAY_PAGE // 2:
            self._ask_replay()
        return Batch(out, size, ids)

    def _advance(self, n: int) -> None:
        self._head += n
        self._head_id += n
        if self._head > 4096 and self._head * 2 > len(self._items):
            del self._items[: self._head]
            self._head = 0

    def ack(self, ids: Sequence[Any]) -> None:
        pop = self._sizes.pop
        self.spool.ack(ids, sum(pop(i, 0) for i in ids))

    def give_back(self, ids: Sequence[Any]) -> None:
        # Left on disk for a later process; only our in-flight record goes.
        pop = self._sizes.pop
        for i in ids:
            pop(i, None)

    def pop_oldest(self) -> bytes | None:
        if self._replay:
            i, body = self._replay.popleft()
            self.spool.ack((i,), len(body))
            return body
        h = self._head
        if h >= len(self._items):
            return None
        item = self._items[h]
        self._items[h] = b""
        self.spool.ack((self._head_id,), len(item))
        self._advance(1)
        return item

    def drain(self) -> list[bytes]:
        # Everything stays on disk for a later process; memory lets go.
        out = [body for _, body in self._replay]
        self._replay.clear()
        out += self._items[self._head :]
        self._head_id += len(self._items) - self._head
        self._items.clear()
        self._head = 0
        return out

    def stats(self) -> SpoolStats:
        return self.spool.stats()
