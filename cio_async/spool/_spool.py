"""The spool: this process's file, the files it adopted, and the one writer thread.

The event loop never touches the disk. It appends ready payloads to a list (ids are
implicit: the n-th payload this process spools has id n) and the writer thread,
which owns every connection, takes what accumulated and commits it in one
transaction at most ``sync_interval`` after the first of it arrived (or sooner, at
``commit_rows``). Deliveries are acknowledged the same way (``ack``): the thread
deletes those rows in the next transaction. The thread reports each commit back to
the loop with ``call_soon_threadsafe``, which resolves the futures of callers waiting
for durability. Waking the thread costs the loop one attribute test per append; it
signals only when the thread sleeps or a commit's worth of rows is waiting.

Ids: this process's rows have their rowid as id. A row of the k-th adopted file has
id ``k << 48 | rowid``, so ``ack`` routes by ``id >> 48``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Literal

from . import _file
from ._file import CorruptSpool, SpoolFile
from ._types import SpoolError, SpoolStats

log = logging.getLogger("cio_async")

_SHIFT = 48
#: How often (seconds) a running spool looks for files of processes that died since
#: it started (a killed sibling worker): a directory listing and a try-lock each.
ADOPT_EVERY = 1.0
_MASK = (1 << _SHIFT) - 1
#: Connections of a parent process, kept alive forever in a forked child: closing
#: them there would let SQLite act on locks the child does not hold.
_ABANDONED: list[object] = []
_LIVE: weakref.WeakSet[Spool] = weakref.WeakSet()

Synchronous = Literal["NORMAL", "FULL"]


class Spool:
    """A durable write-ahead spool in ``directory``. Internal; the delivery backend
    owns one.

    Call ``start()`` on the event loop; then ``append`` (hot path), ``durable`` (a
    future for "on disk"), ``ack``, ``replay_page`` and finally ``aclose()``.
    """

    def __init__(
        self,
        directory: str,
        *,
        sync_interval: float = 0.005,
        commit_rows: int = 2000,
        max_bytes: int = 1 << 30,
        synchronous: Synchronous = "NORMAL",
        adopt: bool = True,
    ) -> None:
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError("synchronous must be 'NORMAL' or 'FULL'")
        self.directory = os.path.abspath(directory)
        self.sync_interval = sync_interval
        self.commit_rows = commit_rows
        self.max_bytes = max_bytes
        self.synchronous: Synchronous = synchronous
        self._adopt = adopt
        self._reset()
        _LIVE.add(self)

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._buf: list[bytes] = []  # appended by the loop, consumed (prefix) by the thread
        self._acks: list[int] = []  # likewise
        self._next_id = 1
        self._idle = False
        self._urgent = False  # a caller waits for the next commit: commit now
        self._stop = False
        self._started: asyncio.Future[None] | None = None
        self._closed: asyncio.Future[None] | None = None
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()
        self._durable_upto = 1  # ids below this are committed (written by the thread)
        self._next_stat = 0.0
        self._calls: list[tuple[Callable[[], Any], asyncio.Future[Any]]] = []
        #: Operations spooled and not acknowledged, and their bytes (loop side).
        self.events = 0
        self.nbytes = 0
        #: True while writes fail (disk full): admissions then see the spool as full.
        self.failing = False
        self.path: str | None = None
        self._own: SpoolFile | None = None
        self._adopted: dict[int, SpoolFile] = {}
        self._cursors: dict[int, int] = {}
        self._tracks: dict[int, _file.Rows] = {}  # per adopted file, rows read so far
        self._commits = 0
        self._commit_total = 0.0
        self._commit_max = 0.0
        self._disk = 0
        self.replayed = 0
        self.adopted_files = 0
        self.corrupt_files = 0
        self.write_errors = 0
        self._written_upto = 1  # thread side: ids below this were written
        self._preacked: set[int] = set()  # thread side: acked before written
        self._failing_thread = False
        self._opened = False
        self._adopted_rows = 0  # thread side, handed to the loop when open
        self._adopted_bytes = 0
        self._open_error: BaseException | None = None
        self._on_open: Callable[[BaseException | None], None] | None = None
        self._on_adopt: Callable[[], None] | None = None
        self._k = 0  # adopted files so far (thread side)
        self._next_scan = 0.0
        self._rows = _file.Rows()  # thread side: this process's rows on disk
        self._to_delete: list[int] = []  # thread side: settled rows not yet deleted

    # -- loop side ---------------------------------------------------------------------

    def begin(
        self,
        on_open: Callable[[BaseException | None], None] | None = None,
        on_adopt: Callable[[], None] | None = None,
    ) -> None:
        """On the event loop: start the writer thread, which creates this process's
        file and adopts files of dead processes, then calls ``on_open(error)`` on the
        loop (and ``on_adopt()`` whenever a later scan adopted more). Appends may
        start at once (they wait in memory for the file)."""
        if self._pid != os.getpid():
            self._after_fork()
        if self._thread is not None:
            return
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._on_open = on_open
        self._on_adopt = on_adopt
        self._started = loop.create_future()
        self._closed = loop.create_future()
        self._thread = threading.Thread(target=self._run, name="cio_async-spool", daemon=True)
        self._thread.start()

    async def wait_open(self) -> None:
        """Wait until ``begin()``'s thread opened the file (raises ``SpoolError``)."""
        assert self._started is not None
        await asyncio.shield(self._started)

    async def start(self) -> None:
        """``begin()`` and wait until the file is open (raises ``SpoolError``)."""
        self.begin()
        assert self._started is not None
        await asyncio.shield(self._started)

    @property
    def full(self) -> bool:
        """True when one more operation must go through the when_full policy."""
        return self.failing or self.nbytes >= self.max_bytes

    def room_for(self, size: int) -> bool:
        return not self.failing and self.nbytes + size <= self.max_bytes

    def append(self, payload: bytes) -> int:
        """Spool ``payload`` (committed within ``sync_interval``); return its id."""
        buf = self._buf
        buf.append(payload)
        i = self._next_id
        self._next_id = i + 1
        self.events += 1
        self.nbytes += len(payload)
        if self._idle or len(buf) == self.commit_rows:
            self._idle = False
            self._wake.set()
        return i

    def durable(self, id_: int) -> asyncio.Future[None]:
        """A future resolved once operation ``id_`` of this process is committed.

        Callers waiting for the same commit share one future (its id the highest
        asked for: never resolved early). The first of them asks the thread to commit
        now rather than at the end of the interval: someone is blocked on it, and
        while that commit runs the next callers gather for the one after."""
        assert self._loop is not None
        w = self._waiters
        if self._urgent and w and w[-1][0] < id_:
            # The thread has not taken the rows since the last waiter asked (it
            # clears ``_urgent`` before it takes them): the same commit covers us.
            fut = w[-1][1]
            w[-1] = (id_, fut)
            return fut
        fut = self._loop.create_future()
        if id_ < self._durable_upto:
            fut.set_result(None)
        elif self._open_error is not None:
            fut.set_exception(self._open_error)
        else:
            w.append((id_, fut))
            if id_ < self._durable_upto:
                # Committed meanwhile, and the thread saw no waiter to tell.
                self._committed(False)
            if not self._urgent:
                self._urgent = True
                self._wake.set()
        return fut

    def ack(self, ids: Iterable[int], nbytes: int) -> None:
        """These operations are settled (delivered, failed or dropped): delete them."""
        ids = list(ids)
        self._acks.extend(ids)
        n = len(ids)
        self.events -= n
        self.nbytes -= nbytes
        if n and self._idle:
            self._idle = False
            self._wake.set()

    def request_replay(
        self, limit: int, on_rows: Callable[[list[tuple[int, bytes]]], None]
    ) -> None:
        """Read the next rows (id, payload) of adopted files, at most ``limit``, in the
        writer thread; ``on_rows(rows)`` is called on the loop (empty: all read)."""
        self._call(lambda: self._read_replay(limit)).add_done_callback(
            lambda f: None if f.cancelled() or f.exception() else on_rows(f.result())
        )

    async def replay_page(self, limit: int) -> list[tuple[int, bytes]]:
        """The next rows (id, payload) of adopted files, at most ``limit``; empty when
        all have been read."""
        rows: list[tuple[int, bytes]] = await self._call(lambda: self._read_replay(limit))
        return rows

    @property
    def replay_pending(self) -> bool:
        """True while adopted files may still have unread rows."""
        return bool(self._cursors) or not self._opened

    @property
    def alive(self) -> bool:
        """False once the writer thread failed to open the spool or stopped."""
        return self._open_error is None

    async def commit(self) -> None:
        """Commit what is appended now and wait for it."""
        if self._next_id > self._durable_upto:
            await self.durable(self._next_id - 1)

    async def aclose(self) -> None:
        """Commit what is pending, stop the thread, delete empty files and hand the
        rest (undelivered operations) to a later process."""
        if self._thread is None or self._closed is None or self._pid != os.getpid():
            return
        self._stop = True
        self._wake.set()
        await asyncio.shield(self._closed)
        self._thread.join()
        self._thread = None

    def stats(self) -> SpoolStats:
        return SpoolStats(
            spooled=self.events,
            spooled_bytes=self.nbytes,
            disk_bytes=self._disk,
            commits=self._commits,
            commit_mean=self._commit_total / self._commits if self._commits else 0.0,
            commit_max=self._commit_max,
            replayed=self.replayed,
            adopted_files=self.adopted_files,
            corrupt_files=self.corrupt_files,
            write_errors=self.write_errors,
        )

    def _call(self, fn: Callable[[], Any]) -> asyncio.Future[Any]:
        assert self._loop is not None
        fut: asyncio.Future[Any] = self._loop.create_future()
        self._calls.append((fn, fut))
        self._wake.set()
        return fut

    def _committed(self, recovered: bool) -> None:
        """On the loop: resolve the futures of rows now on disk (the thread moved
        ``_durable_upto``)."""
        upto = self._durable_upto
        w = self._waiters
        while w and w[0][0] < upto:
            fut = w.popleft()[1]
            if not fut.done():
                fut.set_result(None)
        if recovered:
            self.failing = False

    def _opened_on_loop(self, err: BaseException | None) -> None:
        self._opened = True
        self.events += self._adopted_rows
        self.nbytes += self._adopted_bytes
        if err is not None:
            self._fail_waiters(err)
            _set_exception(self._started, err)
        else:
            _set_result(self._started)
        if self._on_open is not None:
            self._on_open(err)

    def _fail_waiters(self, exc: BaseException) -> None:
        """On the loop: writes are failing; callers waiting for durability learn it."""
        self.failing = True
        while self._waiters:
            fut = self._waiters.popleft()[1]
            if not fut.done():
                fut.set_exception(exc)

    # -- fork --------------------------------------------------------------------------

    def _after_fork(self) -> None:
        """In a forked child: forget the parent's file, connections and thread without
        closing anything the parent still uses; the next start() opens a new file."""
        # Never closed, never collected.
        _ABANDONED.extend(_file.forget_in_child([self._own, *self._adopted.values()]))
        self._reset()

    # -- writer thread -----------------------------------------------------------------

    def _post(self, fn: Callable[..., object], *args: object) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(fn, *args)

    def _run(self) -> None:
        try:
            self._open()
        except BaseException as exc:  # noqa: BLE001 - reported to the starting coroutine
            err = SpoolError(f"cannot open a spool file in {self.directory}: {exc}")
            log.error("cio_async %s", err)
            self._abandon_open()
            self._open_error = err
            self._post(self._opened_on_loop, err)
            self._post(_set_result, self._closed)
            return
        self._post(self._opened_on_loop, None)
        try:
            self._loop_forever()
        finally:
            self._finish()

    def _abandon_open(self) -> None:
        """After a failed ``_open``: close what it had opened (our file, adopted ones),
        keeping their contents for a later process."""
        for f in [self._own, *self._adopted.values()]:
            if f is None:
                continue
            try:
                _file.close_file(f, remove=False)
            except (OSError, sqlite3.Error) as exc:
                log.error("cio_async cannot close spool file %s: %s", f.path, exc)
        self._own = None
        self._adopted.clear()

    def _open(self) -> None:
        os.makedirs(self.directory, exist_ok=True)
        self._own = _file.create_file(self.directory, self.synchronous)
        self.path = self._own.path
        if self._adopt:
            rows, nbytes = self._adopt_orphans()
            self._adopted_rows += rows
            self._adopted_bytes += nbytes

    def _adopt_orphans(self) -> tuple[int, int]:
        """Adopt the files no live process holds (their process died): thread side.
        Returns the operations and bytes adopted."""
        self._next_scan = time.monotonic() + ADOPT_EVERY
        rows = nbytes = 0
        for path in _file.spool_files(self.directory):
            if path == self.path or _file.is_held(path):
                continue
            try:
                f = _file.adopt_file(path, self.synchronous)
            except CorruptSpool as exc:
                self.corrupt_files += 1
                log.error(
                    "cio_async spool file %s is corrupt (%s); moved aside as *.corrupt, "
                    "its operations are not replayed",
                    path,
                    exc,
                )
                continue
            except OSError as exc:
                log.error("cio_async cannot adopt spool file %s: %s", path, exc)
                continue
            if f is None:
                continue  # a live process holds it
            if not f.rows:
                _file.close_file(f, remove=True)
                continue
            self._k += 1
            k = self._k
            self._adopted[k] = f
            self._cursors[k] = 0
            self._tracks[k] = _file.Rows()
            self.adopted_files += 1
            rows += f.rows
            nbytes += f.nbytes
            log.warning(
                "cio_async adopted spool file %s: %d operation(s) a dead process left are replayed",
                path,
                f.rows,
            )
        return rows, nbytes

    def _adopted_later(self, rows: int, nbytes: int) -> None:
        """On the loop: a periodic scan adopted files of processes that died since."""
        self.events += rows
        self.nbytes += nbytes
        if self._on_adopt is not None:
            self._on_adopt()

    def _loop_forever(self) -> None:
        wake = self._wake
        interval = self.sync_interval
        retry_at = 0.0
        while True:
            if not self._buf and not self._acks and not self._calls:
                if self._stop:
                    return
                self._idle = True
                if not (self._buf or self._acks or self._calls or self._stop):
                    wake.wait(ADOPT_EVERY if self._adopt else None)
                wake.clear()
                self._idle = False
                self._scan_due()
                continue
            # Gather for up to one interval (a stop, a call or commit_rows ends it early).
            deadline = time.monotonic() + interval
            while (
                len(self._buf) < self.commit_rows
                and not self._calls
                and not self._stop
                and not self._urgent
                and (left := deadline - time.monotonic()) > 0
            ):
                wake.wait(left)
                wake.clear()
            if self._failing_thread and time.monotonic() < retry_at and not self._stop:
                wake.wait(max(0.0, retry_at - time.monotonic()))
                wake.clear()
            n_calls = len(self._calls)
            calls = self._calls[:n_calls]
            del self._calls[:n_calls]
            for fn, fut in calls:
                try:
                    self._post(_set_result, fut, fn())
                except BaseException as exc:  # noqa: BLE001 - handed to the caller
                    self._post(_set_exception, fut, exc)
            self._scan_due()
            if not self._cycle():
                retry_at = time.monotonic() + max(interval, 0.5)
                if self._stop:
                    return

    def _cycle(self) -> bool:
        """One transaction: acks taken first (every acked operation was appended
        before its ack, so it is either on disk or among the payloads taken next),
        then the new payloads, in rows of up to ``ROW_ITEMS``."""
        own = self._own
        assert own is not None
        acks = self._acks
        n_acks = len(acks)
        ack_ids = acks[:n_acks]
        del acks[:n_acks]
        self._urgent = False
        buf = self._buf
        n = len(buf)
        bodies = buf[:n]
        first = self._written_upto
        t0 = time.perf_counter()
        mine: list[int] = []
        theirs: dict[int, list[int]] = {}
        pre = self._preacked
        for i in ack_ids:
            k = i >> _SHIFT
            if k:
                theirs.setdefault(k, []).append(i & _MASK)
            elif i < first:
                mine.append(i)
            else:
                pre.add(i)  # settled before it reached the disk
        if mine:
            self._to_delete += self._rows.settle(_file.ranges(mine))
        rows: list[tuple[int, list[bytes]]] = []
        track: list[tuple[int, int, int]] = []
        step = _file.ROW_ITEMS
        if pre:
            # Leave out what was settled before it reached the disk: rows are runs
            # of consecutive ids, so a settled one splits a row.
            run: list[bytes] = []
            f = first
            for j, body in enumerate(bodies):
                i = first + j
                if i in pre or len(run) == step:
                    if run:
                        rows.append((f, run))
                        track.append((f, len(run), len(run)))
                    run = []
                    if i in pre:
                        continue
                if not run:
                    f = i
                run.append(body)
            if run:
                rows.append((f, run))
                track.append((f, len(run), len(run)))
        else:
            for s in range(0, n, step):
                chunk = bodies[s : s + step]
                rows.append((first + s, chunk))
                track.append((first + s, len(chunk), len(chunk)))
        deletes = self._to_delete
        try:
            conn = own.conn
            conn.execute("BEGIN")
            if rows:
                _file.insert_rows(conn, rows)
            if deletes:
                _file.delete_rows(conn, deletes)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                own.conn.execute("ROLLBACK")
            self._write_failed(exc)
            for k, rowids in theirs.items():
                self._ack_adopted(k, rowids)
            return False
        self._to_delete = []
        del buf[:n]
        if pre and n:
            pre.difference_update(range(first, first + n))
        for f, cnt, left in track:
            self._rows.add(f, cnt, left)
        self._written_upto = first + n
        for k, rowids in theirs.items():
            self._ack_adopted(k, rowids)
        elapsed = time.perf_counter() - t0
        recovered = self._failing_thread
        if recovered:
            self._failing_thread = False
            log.warning("cio_async spool %s is writable again", own.path)
        # Counters the loop reads as they are (one writer: this thread). The loop is
        # called only when a caller waits: each call costs a wake-up of the loop, and
        # the thread a wait for the GIL while the loop is busy.
        if rows or deletes:
            self._commits += 1
            self._commit_total += elapsed
            if elapsed > self._commit_max:
                self._commit_max = elapsed
        now = time.monotonic()
        if now >= self._next_stat:
            self._next_stat = now + 0.5
            self._disk = _file.disk_bytes(own.path)
        self._durable_upto = self._written_upto
        if recovered or self._waiters:
            self._post(self._committed, recovered)
        return True

    def _scan_due(self) -> None:
        if self._adopt and not self._stop and time.monotonic() >= self._next_scan:
            rows, nbytes = self._adopt_orphans()
            if rows:
                self._post(self._adopted_later, rows, nbytes)

    def _write_failed(self, exc: sqlite3.Error) -> None:
        assert self._own is not None
        self.write_errors += 1
        if not self._failing_thread:
            self._failing_thread = True
            log.error(
                "cio_async cannot write to spool file %s: %s; new operations go through "
                "the when_full policy until it is writable again",
                self._own.path,
                exc,
            )
        err = SpoolError(
            f"cannot write to spool file {self._own.path}: {exc} (the operation is still "
            "queued in memory, but would not survive a crash)"
        )
        self._post(self._fail_waiters, err)

    def _ack_adopted(self, k: int, ids: list[int]) -> None:
        f = self._adopted.get(k)
        if f is None:
            return
        done = self._tracks[k].settle(_file.ranges(ids))
        if done:
            try:
                f.conn.execute("BEGIN")
                _file.delete_rows(f.conn, done)
                f.conn.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    f.conn.execute("ROLLBACK")
                log.error("cio_async cannot delete delivered rows from %s: %s", f.path, exc)
                return
        self._maybe_done(k)

    def _maybe_done(self, k: int) -> None:
        """An adopted file fully read and settled is deleted."""
        if k not in self._cursors and not self._tracks[k].firsts:
            f = self._adopted.pop(k)
            del self._tracks[k]
            _file.close_file(f, remove=True)

    def _read_replay(self, limit: int) -> list[tuple[int, bytes]]:
        out: list[tuple[int, bytes]] = []
        for k in sorted(self._cursors):
            want = limit - len(out)
            if want <= 0:
                break
            f = self._adopted[k]
            try:
                rows = _file.read_rows(f.conn, self._cursors[k], want)
            except sqlite3.DatabaseError as exc:
                log.error("cio_async cannot read spool file %s: %s; skipping it", f.path, exc)
                rows = []
            got = 0
            base = k << _SHIFT
            track = self._tracks[k]
            for first, cnt, lens, body in rows:
                track.add(first, cnt, cnt)
                out.extend((base | i, b) for i, b in _file.split(first, lens, body))
                got += cnt
                self._cursors[k] = first
            if got < want:
                del self._cursors[k]  # fully read
                self._maybe_done(k)
        self._post(self._count_replayed, len(out))
        return out

    def _count_replayed(self, n: int) -> None:
        self.replayed += n

    def _finish(self) -> None:
        """Thread exit: close files; delete the empty ones, keep the rest for others."""
        own = self._own
        if own is not None:
            try:
                if self._to_delete:
                    _file.delete_rows(own.conn, self._to_delete)
                left = own.conn.execute("SELECT count(*) FROM ops").fetchone()[0]
            except sqlite3.Error:
                left = 1
            try:
                _file.close_file(own, remove=not left and not self._buf)
            except (OSError, sqlite3.Error) as exc:
                log.error("cio_async cannot close spool file %s: %s", own.path, exc)
            if left or self._buf:
                log.info("cio_async spool %s keeps %d undelivered operations", own.path, left)
            if own.lock_fd < 0:
                self._own = None  # closed: nothing for a forked child to let go of
        for f in self._adopted.values():
            try:
                left = f.conn.execute("SELECT count(*) FROM ops").fetchone()[0]
                _file.close_file(f, remove=not left)
            except (OSError, sqlite3.Error) as exc:
                log.error("cio_async cannot close spool file %s: %s", f.path, exc)
        self._adopted.clear()
        self._post(_set_result, self._closed)


def _set_result(fut: asyncio.Future[Any] | None, value: object = None) -> None:
    if fut is not None and not fut.done():
        fut.set_result(value)


def _set_exception(fut: asyncio.Future[Any] | None, exc: BaseException) -> None:
    if fut is not None and not fut.done():
        fut.set_exception(exc)


def _before_fork() -> None:
    # Held across the fork: no writer thread is then between closing a lock
    # descriptor and marking it closed (``_file.close_file``), or inside ``HELD``.
    _file.HELD_LOCK.acquire()


def _after_fork_in_parent() -> None:
    _file.HELD_LOCK.release()


def _after_fork_in_child() -> None:
    # The forking thread took HELD_LOCK in _before_fork; it is this thread here.
    try:
        _file.HELD.clear()
        for spool in list(_LIVE):
            if spool._thread is not None or spool._own is not None:
                try:
                    spool._after_fork()
                except Exception:  # an at-fork hook must not raise into os.fork()
                    log.exception("cio_async: could not reset a spool after fork")
    finally:
        _file.HELD_LOCK.release()


if hasattr(os, "register_at_fork"):
    # One set of hooks for every spool (``_LIVE`` holds them weakly).
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )
