"""One spool file: an SQLite database in WAL mode, held with ``flock``.

Only the writer thread calls the functions that touch a connection (``open_file``,
``insert``, ``delete``, ``read_page``, ``close_file``). The lock is a ``flock`` on a
separate descriptor of the database file itself: it is tied to that open file
description, so it dies with the process (SIGKILL, OOM) and a later process can
adopt the file. SQLite's own locks are POSIX ``fcntl`` locks, which a process drops
when it closes *any* descriptor of the file; ``HELD`` therefore records the files
this process holds, and nothing here opens a descriptor on one of them.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import socket
import sqlite3
import sys
import threading
import time
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

SUFFIX = ".spool"
#: Files this process holds (realpaths): never probed, adopted or inspected by a
#: second descriptor from this process (see the module docstring).
HELD: set[str] = set()
HELD_LOCK = threading.Lock()

#: One row holds up to this many consecutive operations (a slice of one group
#: commit): ``id`` is the first operation's id, ``n`` the count, ``lens`` their
#: lengths (uint32 little-endian) and ``body`` the payloads back to back. A row per
#: operation cost several times more CPU per event (an index entry and a statement
#: step each); a row is deleted once all of its operations are settled.
ROW_ITEMS = 1000
_SCHEMA = """
CREATE TABLE IF NOT EXISTS ops (
    id INTEGER PRIMARY KEY, n INTEGER NOT NULL, t INTEGER NOT NULL,
    lens BLOB NOT NULL, body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
"""
_BIG = sys.byteorder == "big"


class CorruptSpool(Exception):
    """A spool file SQLite cannot read (truncated, overwritten, not a database)."""


@dataclass
class SpoolFile:
    """An open, locked spool file. Owned by the writer thread."""

    path: str
    #: The descriptor holding the ``flock``; -1 once closed (``close_file``).
    lock_fd: int
    conn: sqlite3.Connection
    #: Rows and payload bytes it held when opened (for adopted files).
    rows: int = 0
    nbytes: int = 0


def new_name(directory: str) -> str:
    """A fresh file name for this process: pid plus randomness (pids are reused)."""
    return os.path.join(directory, f"cio-{os.getpid()}-{secrets.token_hex(4)}{SUFFIX}")


def spool_files(directory: str) -> list[str]:
    """The spool files in ``directory``, oldest name first."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(os.path.join(directory, n) for n in names if n.endswith(SUFFIX))


def try_lock(path: str, create: bool = False) -> int | None:
    """A descriptor holding ``flock(LOCK_EX)`` on ``path``, or None if a live process
    holds it (or it vanished). Never called for a file this process holds."""
    flags = os.O_RDWR | (os.O_CREAT | os.O_EXCL if create else 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise
    if not create and not os.path.exists(path):
        # Deleted between open and lock by the process that drained it.
        os.close(fd)
        return None
    return fd


def hold(path: str) -> bool:
    """Record ``path`` as held by this process; False if it already is."""
    real = os.path.realpath(path)
    with HELD_LOCK:
        if real in HELD:
            return False
        HELD.add(real)
        return True


def is_held(path: str) -> bool:
    with HELD_LOCK:
        return os.path.realpath(path) in HELD


def release(path: str) -> None:
    with HELD_LOCK:
        HELD.discard(os.path.realpath(path))


def connect(path: str, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
    except BaseException:
        conn.close()  # e.g. a full disk: never leave a connection unclosed
        raise
    return conn


def create_file(directory: str, synchronous: str) -> SpoolFile:
    """Create and lock this process's own spool file. It is created and locked under
    a temporary name and then renamed, so another process's scan never sees it
    unlocked (it would take it for a dead process's empty file and delete it)."""
    while True:
        path = new_name(directory)
        if not hold(path):
            continue
        tmp = path + ".new"
        try:
            fd = try_lock(tmp, create=True)
        except FileExistsError:
            release(path)
            continue
        except BaseException:
            release(path)
            raise
        if fd is None:  # pragma: no cover - a fresh O_EXCL file cannot be locked by others
            release(path)
            continue
        try:
            os.rename(tmp, path)
        except BaseException:
            os.close(fd)
            release(path)
            raise
        break
    conn: sqlite3.Connection | None = None
    try:
        conn = connect(path, synchronous)
        conn.executescript(_SCHEMA)
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)",
            [
                ("pid", str(os.getpid())),
                ("host", socket.gethostname()),
                ("created_ms", str(int(time.time() * 1000))),
                ("format", "1"),
            ],
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn is not None:
            conn.close()
        os.close(fd)
        release(path)
        raise
    return SpoolFile(path, fd, conn)


def adopt_file(path: str, synchronous: str) -> SpoolFile | None:
    """Lock and open a file a dead process left; None if a live process holds it.
    Raises ``CorruptSpool`` (the file still locked by the caller's descriptor is
    closed first) when SQLite cannot read it."""
    if not hold(path):
        return None
    try:
        fd = try_lock(path)
    except BaseException:
        release(path)
        raise
    if fd is None:
        release(path)
        return None
    conn: sqlite3.Connection | None = None
    try:
        conn = connect(path, synchronous)
        check = conn.execute("PRAGMA quick_check").fetchone()
        if check is None or check[0] != "ok":
            raise CorruptSpool(f"integrity check failed: {check[0] if check else 'no answer'}")
        has = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='ops'"
        ).fetchone()[0]
        if not has:
            # Created, but the process died before the schema: nothing in it.
            conn.executescript(_SCHEMA)
        rows, nbytes = conn.execute(
            "SELECT coalesce(sum(n), 0), coalesce(sum(length(body)), 0) FROM ops"
        ).fetchone()
    except (sqlite3.DatabaseError, CorruptSpool) as exc:
        if conn is not None:
            conn.close()
        move_aside(path)
        os.close(fd)
        release(path)
        raise CorruptSpool(str(exc)) from exc
    except BaseException:
        if conn is not None:
            conn.close()
        os.close(fd)
        release(path)
        raise
    return SpoolFile(path, fd, conn, rows, nbytes)


def move_aside(path: str) -> str:
    """Rename a corrupt file (and its WAL and shared-memory files) to ``*.corrupt``."""
    target = path + ".corrupt"
    n = 1
    while os.path.exists(target):
        n += 1
        target = f"{path}.corrupt{n}"
    for ext in ("-wal", "-shm", ""):
        try:
            os.rename(path + ext, target + ext)
        except FileNotFoundError:
            pass
    return target


def encode_lens(bodies: list[bytes]) -> bytes:
    a = array("I", map(len, bodies))
    if _BIG:  # pragma: no cover - little-endian on disk everywhere
        a.byteswap()
    return a.tobytes()


def split(first: int, lens: bytes, body: bytes) -> list[tuple[int, bytes]]:
    """A row's operations as (id, payload)."""
    a = array("I")
    a.frombytes(lens)
    if _BIG:  # pragma: no cover
        a.byteswap()
    out = []
    pos = 0
    for j, n in enumerate(a):
        out.append((first + j, body[pos : pos + n]))
        pos += n
    return out


def insert_rows(conn: sqlite3.Connection, rows: list[tuple[int, list[bytes]]]) -> None:
    """Insert rows of (first id, payloads) in the caller's transaction."""
    t = int(time.time() * 1000)
    conn.executemany(
        "INSERT INTO ops (id, n, t, lens, body) VALUES (?, ?, ?, ?, ?)",
        [(first, len(b), t, encode_lens(b), b"".join(b)) for first, b in rows],
    )


def delete_rows(conn: sqlite3.Connection, firsts: Iterable[int]) -> None:
    conn.executemany("DELETE FROM ops WHERE id = ?", [(f,) for f in firsts])


def read_rows(
    conn: sqlite3.Connection, after: int, max_items: int
) -> list[tuple[int, int, bytes, bytes]]:
    """Rows (first id, n, lens, body) after id ``after`` holding at least
    ``max_items`` operations in all (fewer at the end of the file)."""
    out: list[tuple[int, int, bytes, bytes]] = []
    items = 0
    while items < max_items:
        page = conn.execute(
            "SELECT id, n, lens, body FROM ops WHERE id > ? ORDER BY id LIMIT 16", (after,)
        ).fetchall()
        for row in page:
            out.append(row)
            items += row[1]
            after = row[0]
            if items >= max_items:
                break
        if len(page) < 16:
            break
    return out


def ranges(ids: Iterable[int]) -> Iterator[tuple[int, int]]:
    """Ids as sorted inclusive (low, high) runs (a ``range`` is one run already)."""
    if isinstance(ids, range) and ids.step == 1:
        if len(ids):
            yield ids.start, ids.stop - 1
        return
    lo = hi = None
    for i in sorted(ids):
        if hi is not None and i == hi + 1:
            hi = i
            continue
        if lo is not None and hi is not None:
            yield lo, hi
        lo = hi = i
    if lo is not None and hi is not None:
        yield lo, hi


class Rows:
    """Which operations of a file's rows are still unsettled (writer thread only)."""

    __slots__ = ("firsts", "left", "n")

    def __init__(self) -> None:
        self.firsts: list[int] = []  # sorted
        self.n: dict[int, int] = {}
        self.left: dict[int, int] = {}

    def add(self, first: int, n: int, left: int) -> None:
        if self.firsts and first < self.firsts[-1]:
            self.firsts.insert(bisect_left(self.firsts, first), first)
        else:
            self.firsts.append(first)
        self.n[first] = n
        self.left[first] = left

    def settle(self, runs: Iterable[tuple[int, int]]) -> list[int]:
        """Count settled runs of ids; return the rows now fully settled (and forget
        them)."""
        firsts, nn, left = self.firsts, self.n, self.left
        done: list[int] = []
        for lo, hi in runs:
            idx = max(0, bisect_right(firsts, lo) - 1)
            while idx < len(firsts):
                f = firsts[idx]
                if f > hi:
                    break
                end = f + nn[f] - 1
                if end >= lo:
                    left[f] -= min(hi, end) - max(lo, f) + 1
                    if left[f] <= 0:
                        done.append(f)
                idx += 1
        for f in done:
            del firsts[bisect_left(firsts, f)]
            del nn[f], left[f]
        return done


def disk_bytes(path: str) -> int:
    """The file's size plus its WAL's."""
    total = 0
    for ext in ("", "-wal"):
        try:
            total += os.stat(path + ext).st_size
        except FileNotFoundError:
            pass
    return total


def close_file(f: SpoolFile, remove: bool) -> None:
    """Close (and when ``remove``, delete) a file, then release its lock. Deleting
    before unlocking means no other process can adopt a file we are deleting."""
    f.conn.close()
    if remove:
        for ext in ("", "-wal", "-shm"):
            try:
                os.unlink(f.path + ext)
            except FileNotFoundError:
                pass
    real = os.path.realpath(f.path)
    with HELD_LOCK:
        # Under the lock a fork waits for (see ``_spool``'s at-fork hooks): a child
        # never inherits a SpoolFile whose descriptor is closed but not marked so.
        # Its number is free once closed, and may be anything in the child.
        if f.lock_fd >= 0:
            os.close(f.lock_fd)
            f.lock_fd = -1
        HELD.discard(real)


def forget_in_child(files: Iterable[SpoolFile | None]) -> list[sqlite3.Connection]:
    """In a forked child: close this process's copies of the lock descriptors of the
    files the parent had open (the parent keeps its locks: a ``flock`` belongs to the
    open file description, which the parent still has) and mark them closed. Returns
    their connections, which the caller keeps and never closes: closing them here
    would let SQLite act on locks the child does not hold.

    Files closed before the fork are skipped: their old descriptor numbers may since
    belong to anything (a pipe of ``multiprocessing``, a socket, the caller's file).
    """
    conns: list[sqlite3.Connection] = []
    for f in files:
        if f is None or f.lock_fd < 0:
            continue
        conns.append(f.conn)
        with contextlib.suppress(OSError):
            os.close(f.lock_fd)
        f.lock_fd = -1
    return conns
