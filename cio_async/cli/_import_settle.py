"""Settlement and the checkpoint of ``cio-async import``.

Every record, good or bad, joins one ordered ``Window``; a record leaves the front of
the window once it is *settled*: delivered, or written to the errors file (invalid,
or refused by Customer.io). The checkpoint is the line of the first record not yet
settled, with the SHA-256 of the input bytes before it, so a re-run can tell whether
it is resuming the same input (or one that only grew). A record whose delivery
failed for any other reason (shutdown, retries exhausted, credentials) stays
unsettled: the checkpoint never passes it, a re-run sends it again, and its
deterministic event id makes a repeat harmless.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import hashlib
import os
import time
from dataclasses import dataclass
from typing import Any, BinaryIO, Final

import orjson

from ._import_lines import LineOptions
from ._import_options import UsageError
from ._import_read import Record

__all__ = [
    "CHECKPOINT_VERSION",
    "Checkpoint",
    "CheckpointFile",
    "Entry",
    "ErrorsFile",
    "State",
    "Window",
    "atomic_write",
    "prepare_errors_file",
]

CHECKPOINT_VERSION: Final = 1
#: Bytes submitted but not settled before reading pauses: well under the pipeline's
#: queue, so admission never blocks.
_MAX_OUTSTANDING_BYTES: Final = 16_000_000


class State(enum.IntEnum):
    """Where a record is on its way to being settled."""

    PENDING = 0  # submitted, not settled
    FAILED = 1  # not delivered (shutdown, retries exhausted): not settled
    DELIVERED = 2
    INVALID = 3  # rejected before sending: written to the errors file
    REFUSED = 4  # rejected by Customer.io: written to the errors file
    SKIPPED = 5  # blank line, CSV header
    EARLIER = 6  # settled by an earlier run (before the checkpoint)


_SETTLED: Final = frozenset(
    {State.DELIVERED, State.INVALID, State.REFUSED, State.SKIPPED, State.EARLIER}
)


class Entry:
    """One record in the window."""

    __slots__ = ("line", "next_line", "raw", "size", "state")

    def __init__(self, rec: Record) -> None:
        self.line = rec.line
        self.next_line = rec.next_line
        self.raw = rec.raw
        self.size = 0
        self.state = State.PENDING


class Window:
    """The records from the first unsettled one on, in input order, and the checkpoint
    position they imply (``line``, ``offset`` and the ``prefix`` hash before it)."""

    def __init__(self, resume: Checkpoint | None, max_records: int) -> None:
        self.entries: collections.deque[Entry] = collections.deque()
        self.max_records = max_records
        #: Submitted, future not done yet.
        self.outstanding = 0
        self.outstanding_bytes = 0
        self.resume = resume
        #: The first line this run handles itself (earlier lines were settled before).
        self.resume_line = resume.next_line if resume else 1
        #: Whether the input before ``resume_line`` is the one the checkpoint was for.
        self.verified = resume is None
        self.line = 1
        self.offset = 0
        self.prefix = hashlib.sha256()
        #: Settled lines by state, over every run of this input.
        self.totals: collections.Counter[str] = collections.Counter(resume.totals if resume else {})

    @property
    def full(self) -> bool:
        """Reading pauses until some records are settled."""
        return (
            len(self.entries) >= self.max_records
            or self.outstanding_bytes >= _MAX_OUTSTANDING_BYTES
        )

    def add(self, rec: Record) -> Entry:
        entry = Entry(rec)
        self.entries.append(entry)
        return entry

    def submitted(self, entry: Entry, size: int) -> None:
        entry.size = size
        self.outstanding += 1
        self.outstanding_bytes += size

    def answered(self, entry: Entry) -> None:
        """A submitted record's future is done (settled or not)."""
        self.outstanding -= 1
        self.outstanding_bytes -= entry.size

    def settle(self, entry: Entry, state: State) -> None:
        entry.state = state
        self.advance()

    def advance(self) -> None:
        """Move the checkpoint past every settled record at the front of the window."""
        entries = self.entries
        while entries and entries[0].state in _SETTLED:
            e = entries.popleft()
            self.prefix.update(e.raw)
            self.line = e.next_line
            self.offset += len(e.raw)
            if e.state is not State.EARLIER:
                self.totals[e.state.name.lower()] += 1

    def verify_resume(self, rec: Record | None) -> bool:
        """Before sending anything: is this the input the checkpoint was written for?
        Call at the first record at or after ``resume_line`` (None: the input ended)."""
        assert self.resume is not None
        self.verified = (
            self.line == self.resume_line
            and self.offset == self.resume.offset
            and self.prefix.hexdigest() == self.resume.prefix_sha256
            and (rec is None or rec.line == self.resume_line)
        )
        return self.verified

    def finished(self, eof: bool) -> bool:
        """Every line of the input is settled."""
        return eof and not self.entries


# -- the files ---------------------------------------------------------------------------


def atomic_write(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new file."""
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


class ErrorsFile:
    """The errors file: one NDJSON entry per rejected line, opened at the first."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fh: BinaryIO | None = None

    def write(
        self,
        entry: Entry,
        stage: str,
        reason: str,
        field: str,
        message: str,
        status: int | None = None,
    ) -> None:
        record: dict[str, Any] = {
            "line": entry.line,
            "stage": stage,
            "reason": reason,
            "field": field,
            "message": message,
        }
        if status is not None:
            record["status"] = status
        record["input"] = entry.raw.rstrip(b"\r\n").decode("utf-8", "replace")
        if self._fh is None:
            self._fh = open(self.path, "ab")  # noqa: SIM115 - closed by close()
        self._fh.write(orjson.dumps(record) + b"\n")

    def sync(self) -> None:
        """Make what was written durable (before a checkpoint that counts on it)."""
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class CheckpointFile:
    """Saves the window's checkpoint position, after the errors file it counts on."""

    def __init__(
        self,
        path: str,
        *,
        input_path: str,
        fmt: str,
        options: LineOptions,
        errors: ErrorsFile | None,
        saved_line: int,
    ) -> None:
        self.path = path
        self._input = os.path.abspath(input_path) if input_path != "-" else "-"
        self._fmt = fmt
        self._options = options
        self._errors = errors
        self._saved_line = saved_line

    def save(self, window: Window, *, complete: bool, final: bool = False) -> None:
        """Write the checkpoint if it moved (always when ``final``)."""
        if window.line == self._saved_line and not final:
            return
        if self._errors is not None:
            # The errors file first: the checkpoint must never get ahead of it.
            self._errors.sync()
        data = {
            "version": CHECKPOINT_VERSION,
            "input": self._input,
            "format": self._fmt,
            "options": self._options.as_dict(),
            "next_line": window.line,
            "offset": window.offset,
            "prefix_sha256": window.prefix.hexdigest(),
            "complete": complete,
            "totals": dict(window.totals),
            "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        atomic_write(self.path, orjson.dumps(data, option=orjson.OPT_INDENT_2))
        self._saved_line = window.line
