"""What is in a spool directory, per file, for operators (``cio-async spool inspect``).

Reads each file through a read-only SQLite connection; a live process's file is read
as it is (WAL readers do not disturb the writer).
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass

from . import _file


@dataclass(frozen=True, slots=True)
class FileReport:
    """One spool file: its operations, their age, and whether a live process holds it."""

    path: str
    #: "live" (a running process holds it), "orphan" (no process: the next client
    #: or ``spool drain`` adopts it), "corrupt" (moved aside) or "unreadable".
    state: str
    operations: int
    payload_bytes: int
    disk_bytes: int
    #: Age in seconds of the oldest and newest operation (None when empty).
    oldest_age: float | None
    newest_age: float | None
    pid: int | None
    host: str | None
    error: str | None = None


def _state(path: str) -> str:
    if _file.is_held(path):
        return "live"
    fd = _file.try_lock(path)
    if fd is None:
        return "live"
    os.close(fd)
    return "orphan"


def inspect_dir(directory: str) -> list[FileReport]:
    """A report per spool file (and per file moved aside as corrupt) in ``directory``."""
    out: list[FileReport] = []
    now = time.time()
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return out
    for name in names:
        path = os.path.join(directory, name)
        if ".corrupt" in name and not name.endswith(("-wal", "-shm")):
            out.append(
                FileReport(path, "corrupt", 0, 0, _file.disk_bytes(path), None, None, None, None)
            )
            continue
        if not name.endswith(_file.SUFFIX):
            continue
        state = _state(path)
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                n, nbytes, oldest, newest = conn.execute(
                    "SELECT coalesce(sum(n), 0), coalesce(sum(length(body)), 0),"
                    " min(t), max(t) FROM ops"
                ).fetchone()
                meta = dict(conn.execute("SELECT k, v FROM meta").fetchall())
            finally:
                conn.close()
        except sqlite3.Error as exc:
            out.append(
                FileReport(
                    path,
                    "unreadable",
                    0,
                    0,
                    _file.disk_bytes(path),
                    None,
                    None,
                    None,
                    None,
                    str(exc),
                )
            )
            continue
        pid = meta.get("pid")
        out.append(
            FileReport(
                path=path,
                state=state,
                operations=n,
                payload_bytes=nbytes,
                disk_bytes=_file.disk_bytes(path),
                oldest_age=None if oldest is None else max(0.0, now - oldest / 1000),
                newest_age=None if newest is None else max(0.0, now - newest / 1000),
                pid=int(pid) if pid and pid.isdigit() else None,
                host=meta.get("host"),
            )
        )
    return out
