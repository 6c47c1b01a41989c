"""Input and state files of ``cio-async import``: records read on a thread, the
checkpoint and the errors file."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import csv
import os
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Final

import orjson

CHECKPOINT_VERSION: Final = 1
#: Records handed from the reader thread to the loop at a time.
CHUNK: Final = 512
_READ_SIZE: Final = 64 * 1024


class UsageError(Exception):
    """A problem the person running the command must fix (exit status 2)."""


# -- reading ---------------------------------------------------------------------------


@dataclass(slots=True)
class Record:
    """One unit of input: an NDJSON line or a CSV record (maybe several lines)."""

    line: int  # its first line, counting from 1
    next_line: int  # the line after it
    raw: bytes  # its bytes as read, line endings included
    fields: list[str] | None = None  # CSV values
    error: str | None = None  # could not be read (CSV syntax, encoding)


def input_lines(
    head: bytes, rest: BinaryIO, before_read: Callable[[], object] | None = None
) -> Iterator[bytes]:
    """The input's lines: ``head`` (already read), then the rest of the stream.

    Each read takes what is available (``read1``), and ``before_read()`` runs before
    every read, which may block on a pipe: the reader hands over what it has first,
    so lines that trickle in are imported at once, not when a chunk fills up.
    """
    read = getattr(rest, "read1", rest.read)
    buf = head
    while True:
        parts = buf.split(b"\n")
        buf = parts.pop()
        for part in parts:
            yield part + b"\n"
        if before_read is not None:
            before_read()
        data = read(_READ_SIZE)
        if not data:
            break
        buf += data
    if buf:
        yield buf


def ndjson_records(lines: Iterator[bytes]) -> Iterator[Record]:
    for n, raw in enumerate(lines, 1):
        yield Record(n, n + 1, raw)


def csv_records(lines: Iterator[bytes], delimiter: str) -> Iterator[Record]:
    """CSV records with their line numbers and raw bytes (a quoted value may span
    lines). A malformed record becomes a Record with ``error``; reading goes on."""
    taken: list[bytes] = []
    bad_utf8: list[int] = []
    count = 0

    def text() -> Iterator[str]:
        nonlocal count
        for raw in lines:
            taken.append(raw)
            count += 1
            try:
                s = raw.decode("utf-8")
            except UnicodeDecodeError:
                bad_utf8.append(count)
                s = raw.decode("utf-8", "replace")
            if count == 1 and s.startswith("\ufeff"):
                s = s[1:]  # a byte order mark, as spreadsheet exports write
            yield s

    reader = csv.reader(text(), delimiter=delimiter, strict=True)
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Record(start, count + 1, b"".join(taken), None, f"is not valid CSV ({exc})")
        else:
            error = f"is not valid UTF-8 (line {bad_utf8[0]})" if bad_utf8 else None
            yield Record(start, count + 1, b"".join(taken), row, error)
        taken.clear()
        bad_utf8.clear()
        start = count + 1


class Reader:
    """Reads records on a daemon thread and hands them to the loop in chunks.

    A thread, because the input may be a pipe or a terminal whose reads block: the
    loop must keep delivering and answering Ctrl-C meanwhile. Daemon, because such a
    read cannot be interrupted; the process may exit with it still blocked.
    """

    #: What ``poll()`` returns at the end of the input.
    EOF: Final = object()

    def __init__(
        self,
        records: Callable[[Callable[[], object]], Iterator[Record]],
        loop: asyncio.AbstractEventLoop,
        wake: asyncio.Event,
    ) -> None:
        """``records(before_read)`` makes the record iterator; it must call
        ``before_read()`` before each read of the input (see ``input_lines``)."""
        self._make_records = records
        self._pending: list[Record] = []
        self._loop = loop
        self._wake = wake
        self._q: queue.Queue[list[Record] | BaseException | None] = queue.Queue(maxsize=8)
        self._stop = threading.Event()
        self._chunk: collections.deque[Record] = collections.deque()
        self._done = False
        self._thread = threading.Thread(target=self._work, name="cio-import-reader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _work(self) -> None:
        try:
            pending = self._pending
            for rec in self._make_records(self._hand_over):
                pending.append(rec)
                if len(pending) >= CHUNK and not self._hand_over():
                    return
            if self._hand_over():
                self._put(None)
        except Exception as exc:  # noqa: BLE001 - an I/O error: the loop reports it
            self._put(exc)

    def _hand_over(self) -> bool:
        """Put the records read so far on the queue (False: the loop stopped)."""
        if not self._pending:
            return not self._stop.is_set()
        chunk = self._pending[:]
        self._pending.clear()
        return self._put(chunk)

    def _put(self, item: list[Record] | BaseException | None) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.2)
            except queue.Full:
                continue  # the loop is behind: wait, but notice a stop
            try:
                self._loop.call_soon_threadsafe(self._wake.set)
            except RuntimeError:  # the loop is closed: nobody is listening
                return False
            return True
        return False

    def poll(self) -> Record | object | None:
        """The next record, ``Reader.EOF`` at the end, or None if none is ready."""
        if self._chunk:
            return self._chunk.popleft()
        if self._done:
            return self.EOF
        try:
            item = self._q.get_nowait()
        except queue.Empty:
            return None
        if item is None:
            self._done = True
            return self.EOF
        if isinstance(item, BaseException):
            self._done = True
            raise item
        self._chunk.extend(item)
        return self._chunk.popleft()

    def close(self, join: bool) -> None:
        """Stop the thread; ``join`` waits for it (a file: its reads end quickly). A
        thread blocked reading a pipe cannot be joined, and need not be: it is a
        daemon and touches nothing but its queue."""
        self._stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                self._q.get_nowait()
        if join and self._thread.is_alive():
            self._thread.join(timeout=5)


# -- checkpoint and errors file --------------------------------------------------------


def atomic_write(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@dataclass
class Checkpoint:
    """Where an earlier run stopped: ``next_line`` and the hash of everything before."""

    next_line: int
    offset: int
    prefix_sha256: str
    format: str
    options: dict[str, Any]
    totals: dict[str, int]
    complete: bool

    @classmethod
    def load(cls, path: str) -> Checkpoint | None:
        try:
            with open(path, "rb") as f:
                data = orjson.loads(f.read())
        except FileNotFoundError:
            return None
        except (OSError, orjson.JSONDecodeError) as exc:
            raise UsageError(
                f"cannot read the checkpoint {path}: {exc}; fix or delete it, or pass --restart"
            ) from None
        try:
            if data["version"] != CHECKPOINT_VERSION:
                raise UsageError(
                    f"the checkpoint {path} has version {data['version']!r}; this cio-async "
                    f"writes version {CHECKPOINT_VERSION}. Pass --restart to start over."
                )
            return cls(
                next_line=int(data["next_line"]),
                offset=int(data["offset"]),
                prefix_sha256=str(data["prefix_sha256"]),
                format=str(data["format"]),
                options=dict(data["options"]),
                totals={str(k): int(v) for k, v in data["totals"].items()},
                complete=bool(data["complete"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise UsageError(
                f"the checkpoint {path} is not one cio-async wrote; delete it or pass --restart"
            ) from None


def prepare_errors_file(path: str, keep_before: int) -> None:
    """Start the errors file for this run: empty for a fresh run; for a resumed run,
    only the entries of lines before the checkpoint (later lines are read again and
    their errors written again)."""
    if keep_before <= 1:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    try:
        with open(path, "rb") as f:
            old = f.read().splitlines(keepends=True)
    except FileNotFoundError:
        return
    kept = []
    for raw in old:
        try:
            entry = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue  # a torn last line from a crash
        line = entry.get("line") if isinstance(entry, dict) else None
        if isinstance(line, int) and line < keep_before:
            kept.append(raw if raw.endswith(b"\n") else raw + b"\n")
    atomic_write(path, b"".join(kept))
