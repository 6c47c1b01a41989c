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

import errno
import fcntl
import os
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import repeat

SUFFIX = ".spool"
#: Files this process holds (realpaths): never probed, adopted or inspected by a
#: second descriptor from this process (see the module docstring).
HELD: set[str] = set()
HELD_LOCK = threading.Lock()

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ops (id INTEGER PRIMARY KEY, t INTEGER NOT NULL, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
"""


class CorruptSpool(Exception):
    """A spool file SQLite cannot read (truncated, overwritten, not a database)."""


@dataclass
class SpoolFile:
    """An open, locked spool file. Owned by the writer thread."""

    path: str
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
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    return conn


def create_file(directory: str, synchronous: str) -> SpoolFile:
    """Create and lock this process's own spool file."""
    while True:
        path = new_name(directory)
        if not hold(path):
            continue
        try:
            fd = try_lock(path, create=True)
        except FileExistsError:
            release(path)
            continue
        except BaseException:
            release(path)
            raise
        if fd is None:  # pragma: no cover - a fresh O_EXCL file cannot be locked by others
            release(path)
            continue
        break
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
            "SELECT count(*), coalesce(sum(length(body)), 0) FROM ops"
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


def insert(conn: sqlite3.Connection, first_id: int, bodies: list[bytes], skip: set[int]) -> None:
    """Insert ``bodies`` with consecutive ids from ``first_id`` (in the caller's
    transaction), leaving out ids in ``skip`` (already delivered)."""
    t = int(time.time() * 1000)
    rows: Iterable[tuple[int, int, bytes]] = zip(
        range(first_id, first_id + len(bodies)), repeat(t), bodies
    )
    if skip:
        rows = [r for r in rows if r[0] not in skip]
    conn.executemany("INSERT INTO ops (id, t, body) VALUES (?, ?, ?)", rows)


def ranges(ids: Iterable[int]) -> Iterator[tuple[int, int]]:
    """Sorted ids as inclusive (low, high) runs."""
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


def delete(conn: sqlite3.Connection, ids: Iterable[int]) -> None:
    """Delete rows by id (in the caller's transaction); delivery is mostly in order,
    so ids come in a few runs."""
    conn.executemany("DELETE FROM ops WHERE id BETWEEN ? AND ?", ranges(ids))


def read_page(conn: sqlite3.Connection, after: int, limit: int) -> list[tuple[int, bytes]]:
    """Up to ``limit`` rows with id > ``after``, in id order."""
    return conn.execute(
        "SELECT id, body FROM ops WHERE id > ? ORDER BY id LIMIT ?", (after, limit)
    ).fetchall()


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
    os.close(f.lock_fd)
    release(f.path)
