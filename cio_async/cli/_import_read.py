"""Reading for ``cio-async import``: the input's bytes into records (on a thread, as
the input may be a pipe), and records into operations (``LineParser``)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import csv
import functools
import hashlib
import os
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Final

from .._errors import ValidationError
from .._model import Operation
from ._import_lines import CsvColumns, HeaderError, LineOptions, build, line_event_id, parse_ndjson
from ._import_options import EXIT_USAGE, FORMATS, Fatal, ImportOptions, UsageError

#: Records handed from the reader thread to the loop at a time.
CHUNK: Final = 512
_READ_SIZE: Final = 64 * 1024
#: The input's identity (the salt of derived event ids) is a hash of its first bytes,
#: which can be read from a pipe too, before anything is sent.
HEAD_BYTES: Final = 64 * 1024
_EXTENSIONS: Final = {
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".json": "ndjson",
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
}
#: Lines that are not JSON objects at the start of an input before it is taken for
#: not NDJSON at all (a wrong --format).
_NOT_NDJSON: Final = 20


def read_head(f: BinaryIO) -> bytes:
    """The input's first ``HEAD_BYTES`` (fewer if it is shorter)."""
    parts: list[bytes] = []
    size = 0
    while size < HEAD_BYTES:
        chunk = f.read(HEAD_BYTES - size)
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


def detect_format(opts: ImportOptions, head: bytes) -> str:
    """``--format``, else the file's extension; stdin: NDJSON if it starts with ``{``."""
    if opts.format is not None:
        return opts.format
    if opts.path == "-":
        # No name to go by: an object on the first line means NDJSON.
        return "ndjson" if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{") else "csv"
    ext = os.path.splitext(opts.path)[1].lower()
    if ext in _EXTENSIONS:
        return _EXTENSIONS[ext]
    raise UsageError(
        f"cannot tell the format of {opts.path!r} from its extension; pass --format "
        f"{' or '.join(FORMATS)} (.ndjson/.jsonl are NDJSON, .csv CSV, .tsv TSV)"
    )


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


def records_of(
    fmt: str, head: bytes, source: BinaryIO
) -> Callable[[Callable[[], object]], Iterator[Record]]:
    """The record iterator factory ``Reader`` wants, for ``fmt``."""

    def records(before_read: Callable[[], object]) -> Iterator[Record]:
        lines = input_lines(head, source, before_read)
        if fmt == "ndjson":
            return ndjson_records(lines)
        return csv_records(lines, "\t" if fmt == "tsv" else ",")

    return records


# -- records to operations ---------------------------------------------------------------


def is_blank(rec: Record) -> bool:
    """An empty line, or a CSV row of empty cells: skipped, not an error."""
    if rec.fields is not None:
        return all(not v.strip() for v in rec.fields)
    return rec.error is None and not rec.raw.strip()


class LineParser:
    """Turns records into operations with the SDK's own checks.

    It owns what reading a format needs to remember: the CSV header's columns, and
    (NDJSON) whether any line was an object yet, so that a wrong ``--format`` is one
    clear error rather than one rejected line after another.
    """

    def __init__(self, path: str, fmt: str, options: LineOptions, head: bytes) -> None:
        self.path = path
        self.fmt = fmt
        self.options = options
        #: Derived event ids are salted with the input's identity (see ``line_event_id``).
        self.salt = hashlib.sha256(head).digest()
        self.columns: CsvColumns | None = None
        self._objects_seen = False
        self._not_objects = 0

    @property
    def wants_header(self) -> bool:
        """A CSV or TSV input whose header has not been read yet."""
        return self.fmt != "ndjson" and self.columns is None

    def take_header(self, rec: Record) -> None:
        """Read the CSV header; a bad one stops the run (``Fatal``)."""
        if rec.error is not None or rec.fields is None:
            raise Fatal(f"{self.path}: the CSV header (line {rec.line}) {rec.error}", EXIT_USAGE)
        try:
            self.columns = CsvColumns(rec.fields, self.options)
        except HeaderError as exc:
            hint = ""
            if rec.fields[0].lstrip().startswith("{"):
                hint = "; the input looks like NDJSON: pass --format ndjson"
            raise Fatal(
                f"{self.path}: CSV header (line {rec.line}): {exc}{hint}", EXIT_USAGE
            ) from None

    def operation(self, rec: Record) -> Operation:
        """The record's operation; ``ValidationError`` names what is wrong with it."""
        if rec.error is not None:
            raise ValidationError("line", rec.error)
        if self.columns is None:
            raw = rec.raw
            if rec.line == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]  # a byte order mark
            try:
                obj = parse_ndjson(raw)
            except ValidationError:
                if not self._objects_seen:
                    self._not_objects += 1
                raise
            self._objects_seen = True
        else:
            assert rec.fields is not None
            obj = self.columns.line_object(rec.fields)
        return build(
            obj, self.options, functools.partial(line_event_id, self.salt, rec.line, rec.raw)
        )

    def check_format(self, rec: Record) -> None:
        """After a rejected line: stop (``Fatal``) if the input starts with many lines
        that are not JSON objects at all, as a wrong format is one error, not one per line."""
        if self._objects_seen or self._not_objects < _NOT_NDJSON:
            return
        looks_csv = b"," in rec.raw or b"\t" in rec.raw
        raise Fatal(
            f"{self.path}: the first {_NOT_NDJSON} lines are not JSON objects, so "
            "this is not NDJSON"
            + ("; for CSV or TSV pass --format csv or --format tsv" if looks_csv else "")
            + " (see the errors file or --dry-run for each line)",
            EXIT_USAGE,
        )
