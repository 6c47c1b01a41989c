"""``cio-async import``: bulk-load people and events through the batching pipeline.

The run, in order:

- A reader thread splits the input (a file or a pipe, which may block) into
  *records* (one NDJSON line, or one CSV record, which may span lines) and hands
  them to the loop in chunks.
- The loop turns each record into an operation (``_import_lines.build``, i.e. the
  SDK's own validation) and ``client.submit()``\\ s it. Every record, good or bad,
  joins one ordered window; a record leaves the front of the window once it is
  *settled*: delivered, or written to the errors file (invalid, or refused by
  Customer.io). The checkpoint is the line of the first record not yet settled.
- Futures that fail for any other reason (shutdown, retries exhausted, credentials)
  leave their record unsettled: the checkpoint never passes it, a re-run sends it
  again, and its deterministic event id makes a repeat harmless.

The checkpoint also holds the SHA-256 of the input bytes before that line, so a
re-run can tell whether it is resuming the same input (or one that only grew).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import enum
import functools
import hashlib
import io
import os
import signal
import stat
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Final, TextIO

import orjson

from ._client import AsyncCustomerIO
from ._config import BatchPolicy, ClientConfig
from ._errors import (
    AuthenticationError,
    ConfigurationError,
    CustomerIOError,
    DeliveryAbandonedError,
    OperationRejectedError,
    PermissionDeniedError,
    ValidationError,
)
from ._import_io import (
    CHECKPOINT_VERSION,
    Checkpoint,
    Reader,
    Record,
    UsageError,
    atomic_write,
    csv_records,
    input_lines,
    ndjson_records,
    prepare_errors_file,
)
from ._import_lines import CsvColumns, HeaderError, LineOptions, build, line_event_id, parse_ndjson
from ._model import Operation
from ._progress import Progress, format_duration
from .pipelines import AsyncPipelines, PipelinesCall, PipelinesConfig
from .pipelines._encode import Encoder
from .pipelines._lines import line_call

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_REJECTED",
    "EXIT_USAGE",
    "FORMATS",
    "ImportOptions",
    "run_import",
]

#: Every line was delivered (or there was nothing left to import).
EXIT_OK: Final = 0
#: The import finished, but some lines were rejected (see the errors file).
EXIT_REJECTED: Final = 1
#: Usage, configuration or input problem; nothing was sent after it was found.
EXIT_USAGE: Final = 2
#: Delivery failed (Customer.io unreachable, retries exhausted); re-run to resume.
EXIT_FAILED: Final = 3
#: Stopped by Ctrl-C / SIGTERM; re-run to resume.
EXIT_INTERRUPTED: Final = 130

FORMATS: Final = ("ndjson", "csv", "tsv")
_EXTENSIONS: Final = {
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".json": "ndjson",
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
}
#: The input's identity (the salt of derived event ids) is a hash of its first bytes,
#: which can be read from a pipe too, before anything is sent.
_HEAD_BYTES: Final = 64 * 1024
_SHOW_ERRORS: Final = 10
#: Lines that are not JSON objects at the start of an input before it is taken for
#: not NDJSON at all (a wrong --format).
_NOT_NDJSON: Final = 20


@dataclass
class ImportOptions:
    """What ``cio-async import`` was asked to do (built from the command line)."""

    path: str
    format: str | None = None
    lines: LineOptions = field(default_factory=LineOptions)
    dry_run: bool = False
    errors: str | None = None
    checkpoint: str | None = None
    restart: bool = False
    sandbox: bool = False
    region: str | None = None
    #: ``track`` (Track v2 operations) or ``pipelines`` (the Data Pipelines API).
    api: str = "track"
    quiet: bool = False
    batch_size: int = 1000
    concurrency: int = 8
    drain_timeout: float = 5.0
    checkpoint_interval: float = 1.0
    retry_timeout: float = 900.0


# -- the run ---------------------------------------------------------------------------


class _State(enum.IntEnum):
    PENDING = 0  # submitted, not settled
    FAILED = 1  # not delivered (shutdown, retries exhausted): not settled
    DELIVERED = 2
    INVALID = 3  # rejected before sending: written to the errors file
    REFUSED = 4  # rejected by Customer.io: written to the errors file
    SKIPPED = 5  # blank line, CSV header
    EARLIER = 6  # settled by an earlier run (before the checkpoint)


_SETTLED: Final = frozenset(
    {_State.DELIVERED, _State.INVALID, _State.REFUSED, _State.SKIPPED, _State.EARLIER}
)


class _Entry:
    __slots__ = ("line", "next_line", "raw", "size", "state")

    def __init__(self, rec: Record) -> None:
        self.line = rec.line
        self.next_line = rec.next_line
        self.raw = rec.raw
        self.size = 0
        self.state = _State.PENDING


class _Fatal(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class _Import:
    """One run of ``cio-async import``, inside the event loop."""

    def __init__(
        self,
        opts: ImportOptions,
        *,
        fmt: str,
        source: BinaryIO,
        head: bytes,
        total_bytes: int | None,
        config: ClientConfig | PipelinesConfig | None,
        errors_path: str | None,
        checkpoint_path: str | None,
        resume: Checkpoint | None,
        out: TextIO,
        err: TextIO,
    ) -> None:
        self.opts = opts
        self.fmt = fmt
        self.source = source
        self.head = head
        self.salt = hashlib.sha256(head).digest()
        self.total_bytes = total_bytes
        self.config = config
        self.errors_path = errors_path
        self.checkpoint_path = checkpoint_path
        self.resume = resume
        self.resume_line = resume.next_line if resume else 1
        self.out = out
        self.err = err
        self.progress = Progress(err, plain_every=5.0)
        self.client: AsyncCustomerIO | AsyncPipelines | None = None
        #: Pipelines calls are checked with this encoder (a dry run has no client).
        self.encoder = Encoder() if opts.api == "pipelines" else None
        self.columns: CsvColumns | None = None
        # The window: every record from the first unsettled one on, in input order.
        self.window: collections.deque[_Entry] = collections.deque()
        self.window_max = max(1000, opts.batch_size * (opts.concurrency + 2))
        self.bytes_max = 16_000_000  # well under the pipeline's queue, so admission never blocks
        self.outstanding = 0  # submitted, future not done
        self.outstanding_bytes = 0
        # The checkpoint: the first line not settled, and the hash of all bytes before it.
        self.prefix = hashlib.sha256()
        self.ck_line = 1
        self.ck_offset = 0
        self.verified = resume is None
        self.saved_line = self.resume_line
        self.totals: collections.Counter[str] = collections.Counter(resume.totals if resume else {})
        # This run's counts.
        self.counts: collections.Counter[str] = collections.Counter()
        self.kinds: collections.Counter[str] = collections.Counter()
        self.read_bytes = 0
        self.read_line = 1
        self.started = time.monotonic()
        self.eof = False
        self.stopping = False
        self.force = False
        self.stop_deadline: float | None = None
        self.interrupted: str | None = None
        self.failure: BaseException | None = None
        self.fatal: _Fatal | None = None
        self.errors_fh: BinaryIO | None = None
        self.errors_shown = 0
        self.objects_seen = False
        self.not_objects = 0
        self.wake: asyncio.Event
        self.loop: asyncio.AbstractEventLoop

    # -- lifecycle -----------------------------------------------------------------------

    async def run(self) -> int:
        self.loop = asyncio.get_running_loop()
        self.wake = asyncio.Event()
        handled = self._install_signals()
        server = None
        ticker = None

        def records(before_read: Callable[[], object]) -> Iterator[Record]:
            lines = input_lines(self.head, self.source, before_read)
            if self.fmt == "ndjson":
                return ndjson_records(lines)
            return csv_records(lines, "\t" if self.fmt == "tsv" else ",")

        reader = Reader(records, self.loop, self.wake)
        try:
            if self.opts.dry_run:
                pass  # no client: nothing can be sent
            elif self.opts.sandbox:
                from .testing import StandIn

                server = await StandIn().start()
                if self.opts.api == "pipelines":
                    self.client = self._make_client(**server.pipelines_kwargs())
                else:
                    self.client = self._make_client(**server.client_kwargs())
            elif self.config is not None:
                self.client = self._make_client(config=self.config)
            if self.client is not None:
                await self.client.start()
            reader.start()
            ticker = self.loop.create_task(self._tick(), name="cio-import-ticker")
            try:
                await self._pump(reader)
            except _Fatal as exc:
                self.fatal = exc
            if self.client is not None:
                await self._drain(self.client)
        finally:
            if ticker is not None:
                ticker.cancel()
                await asyncio.gather(ticker, return_exceptions=True)
            if self.client is not None:
                await self.client.aclose(timeout=0)
                await asyncio.sleep(0)  # let the last delivery callbacks run
            reader.close(join=self.opts.path != "-")
            self.progress.done()
            if server is not None:
                self._print_sandbox(server)
                await server.close()
        try:
            self._save_checkpoint(final=True)
            if self.errors_fh is not None:
                self.errors_fh.close()
            return self._summary()
        finally:
            # Only now: a signal during the final save changes nothing.
            self._remove_signals(handled)

    def _make_client(self, **kwargs: Any) -> AsyncCustomerIO | AsyncPipelines:
        batch = BatchPolicy(
            max_batch_events=self.opts.batch_size,
            max_in_flight=self.opts.concurrency,
            linger=0.05,
            retry=dataclasses.replace(BatchPolicy().retry, total_timeout=self.opts.retry_timeout),
        )
        if self.opts.api == "pipelines":
            return AsyncPipelines(**kwargs, batch=batch)
        return AsyncCustomerIO(**kwargs, batch=batch)

    def _install_signals(self) -> list[signal.Signals]:
        handled = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.loop.add_signal_handler(sig, self._on_signal, sig.name)
            except (NotImplementedError, RuntimeError):  # Windows, or not the main thread
                continue
            handled.append(sig)
        return handled

    def _remove_signals(self, handled: list[signal.Signals]) -> None:
        for sig in handled:
            self.loop.remove_signal_handler(sig)

    def _on_signal(self, name: str) -> None:
        if self.stopping and self.interrupted:
            self.force = True
            self.progress.note("stopping now")
        else:
            self.interrupted = name
            self._stop()
            if self.client is not None:
                self.progress.note(
                    f"{name}: stopping; waiting up to {self.opts.drain_timeout:g}s for what is "
                    "in flight (again to stop at once)"
                )
        self.wake.set()

    def _stop(self) -> None:
        if not self.stopping:
            self.stopping = True
            self.stop_deadline = self.loop.time() + self.opts.drain_timeout
        self.wake.set()

    # -- reading and submitting ----------------------------------------------------------

    def _window_full(self) -> bool:
        return len(self.window) >= self.window_max or self.outstanding_bytes >= self.bytes_max

    async def _pump(self, reader: Reader) -> None:
        since_yield = 0
        while not self.stopping:
            if self._window_full():
                self.wake.clear()
                if self._window_full() and not self.stopping:
                    await self.wake.wait()
                continue
            try:
                item = reader.poll()
                if item is None:
                    self.wake.clear()
                    item = reader.poll()
                    if item is None:
                        await self.wake.wait()
                        continue
            except Exception as exc:  # noqa: BLE001 - raised by the reader thread
                raise _Fatal(f"cannot read {self.opts.path}: {exc}", EXIT_USAGE) from None
            if item is Reader.EOF:
                self.eof = True
                if not self.verified:
                    self._verify_resume(None)
                return
            assert isinstance(item, Record)
            await self._handle(item)
            since_yield += 1
            if since_yield >= self.opts.batch_size:
                # Submitting never blocks (the window is smaller than the queue), so
                # yield after about a batch: the sender and the callbacks need the loop.
                since_yield = 0
                await asyncio.sleep(0)

    async def _handle(self, rec: Record) -> None:
        entry = _Entry(rec)
        self.window.append(entry)
        self.read_bytes += len(rec.raw)
        self.read_line = rec.next_line
        earlier = rec.line < self.resume_line
        if not earlier and not self.verified:
            self._verify_resume(rec)
        blank = rec.fields == [] or (
            rec.fields is None and rec.error is None and not rec.raw.strip()
        )
        if rec.fields and all(not v.strip() for v in rec.fields):
            blank = True
        if self.fmt != "ndjson" and self.columns is None and not blank:
            if rec.error is not None or rec.fields is None:
                raise _Fatal(
                    f"{self.opts.path}: the CSV header (line {rec.line}) {rec.error}", EXIT_USAGE
                )
            try:
                self.columns = CsvColumns(rec.fields, self.opts.lines)
            except HeaderError as exc:
                hint = ""
                if rec.fields[0].lstrip().startswith("{"):
                    hint = "; the input looks like NDJSON: pass --format ndjson"
                raise _Fatal(
                    f"{self.opts.path}: CSV header (line {rec.line}): {exc}{hint}", EXIT_USAGE
                ) from None
            entry.state = _State.EARLIER if earlier else _State.SKIPPED
            self._advance()
            return
        if earlier:
            entry.state = _State.EARLIER
            self._advance()
            return
        if blank:
            entry.state = _State.SKIPPED
            self.counts["blank"] += 1
            self._advance()
            return
        if rec.error is not None:
            self._reject(entry, _State.INVALID, "invalid", "line", rec.error)
            return
        try:
            if self.columns is None:
                raw = rec.raw
                if rec.line == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]  # a byte order mark
                try:
                    obj = parse_ndjson(raw)
                except ValidationError as exc:
                    self._reject(entry, _State.INVALID, "invalid", exc.field, exc.message)
                    self._not_ndjson(rec)
                    return
                self.objects_seen = True
            else:
                assert rec.fields is not None
                obj = self.columns.line_object(rec.fields)
            derived = functools.partial(line_event_id, self.salt, rec.line, rec.raw)
            op: Operation | PipelinesCall
            if self.encoder is not None:
                op = line_call(obj, self.opts.lines, derived, self.encoder)
            else:
                op = build(obj, self.opts.lines, derived)
        except ValidationError as exc:
            self._reject(entry, _State.INVALID, "invalid", exc.field, exc.message)
            return
        self.kinds[op.type if isinstance(op, PipelinesCall) else op.action] += 1
        client = self.client
        if client is None:  # a dry run
            entry.state = _State.DELIVERED
            self.counts["valid"] += 1
            self._advance()
            return
        entry.size = len(op.payload)
        try:
            if isinstance(client, AsyncPipelines):
                assert isinstance(op, PipelinesCall)
                fut = await client.submit(op)
            else:
                assert isinstance(op, Operation)
                fut = await client.submit(op)
        except CustomerIOError as exc:
            self.failure = exc
            self._stop()
            return
        self.outstanding += 1
        self.outstanding_bytes += entry.size
        fut.add_done_callback(functools.partial(self._settled, entry))

    def _not_ndjson(self, rec: Record) -> None:
        """A wrong format is one error, not one per line: stop if the input starts
        with many lines that are not JSON objects at all."""
        if self.objects_seen:
            return
        self.not_objects += 1
        if self.not_objects >= _NOT_NDJSON:
            looks_csv = b"," in rec.raw or b"\t" in rec.raw
            raise _Fatal(
                f"{self.opts.path}: the first {_NOT_NDJSON} lines are not JSON objects, so "
                "this is not NDJSON"
                + ("; for CSV or TSV pass --format csv or --format tsv" if looks_csv else "")
                + " (see the errors file or --dry-run for each line)",
                EXIT_USAGE,
            )

    def _verify_resume(self, rec: Record | None) -> None:
        """Before sending anything: is this the input the checkpoint was written for?"""
        assert self.resume is not None
        same = (
            self.ck_line == self.resume_line
            and self.ck_offset == self.resume.offset
            and self.prefix.hexdigest() == self.resume.prefix_sha256
            and (rec is None or rec.line == self.resume_line)
        )
        if not same:
            raise _Fatal(
                f"{self.opts.path} is not the input the checkpoint {self.checkpoint_path} was "
                f"written for: its first {self.resume.offset:,} bytes (lines before "
                f"{self.resume_line:,}) changed. Pass --restart to import it from the start.",
                EXIT_USAGE,
            )
        self.verified = True

    def _settled(self, entry: _Entry, fut: asyncio.Future[None]) -> None:
        self.outstanding -= 1
        self.outstanding_bytes -= entry.size
        exc = DeliveryAbandonedError("cancelled") if fut.cancelled() else fut.exception()
        if exc is None:
            entry.state = _State.DELIVERED
            self.counts["delivered"] += 1
        elif isinstance(exc, OperationRejectedError):
            self._reject(
                entry, _State.REFUSED, exc.reason, exc.field, exc.message, status=exc.status
            )
            return
        else:
            entry.state = _State.FAILED
            self.counts["undelivered"] += 1
            if not self.stopping and self.failure is None:
                self.failure = exc
                self._stop()
        self._advance()
        self.wake.set()

    def _reject(
        self,
        entry: _Entry,
        state: _State,
        reason: str,
        field: str,
        message: str,
        status: int | None = None,
    ) -> None:
        entry.state = state
        stage = "validation" if state is _State.INVALID else "customerio"
        self.counts["invalid" if state is _State.INVALID else "refused"] += 1
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
        if self.errors_path is not None:
            if self.errors_fh is None:
                self.errors_fh = open(self.errors_path, "ab")  # noqa: SIM115 - closed in run()
            self.errors_fh.write(orjson.dumps(record) + b"\n")
        where = f"{field}: " if field and field != "line" else ""
        text = f"line {entry.line}: " + (
            f"{where}{message}"
            if state is _State.INVALID
            else f"refused by Customer.io ({reason}): {where}{message}"
        )
        if self.opts.dry_run:
            print(text, file=self.out)
        elif self.errors_shown < _SHOW_ERRORS:
            self.errors_shown += 1
            self.progress.note(text)
            if self.errors_shown == _SHOW_ERRORS:
                self.progress.note(
                    f"(further rejected lines only in {self.errors_path})"
                    if self.errors_path is not None
                    else "(further rejected lines not shown: pass --errors FILE to keep them)"
                )
        self._advance()
        self.wake.set()

    def _advance(self) -> None:
        """Move the checkpoint past every settled record at the front of the window."""
        window = self.window
        while window and window[0].state in _SETTLED:
            e = window.popleft()
            self.prefix.update(e.raw)
            self.ck_line = e.next_line
            self.ck_offset += len(e.raw)
            if e.state is not _State.EARLIER:
                self.totals[e.state.name.lower()] += 1

    # -- finishing -----------------------------------------------------------------------

    async def _drain(self, client: AsyncCustomerIO | AsyncPipelines) -> None:
        """Deliver what was submitted: without a deadline after the end of the input,
        with ``--drain-timeout`` once stopping; a second Ctrl-C stops at once."""
        flush = asyncio.ensure_future(client.flush())  # send what lingers, now
        try:
            while self.outstanding and not self.force:
                self.wake.clear()
                if not self.outstanding or self.force:
                    break
                if self.stop_deadline is None:
                    await self.wake.wait()
                    continue
                remaining = self.stop_deadline - self.loop.time()
                if remaining <= 0:
                    break
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), remaining)
        finally:
            # Whatever is still queued or in flight is dropped, and its lines stay
            # before the checkpoint: a re-run sends them again.
            await client.aclose(timeout=0)
            await flush

    async def _tick(self) -> None:
        last_save = time.monotonic()
        step = max(0.05, min(self.progress.every, self.opts.checkpoint_interval, 1.0))
        while True:
            await asyncio.sleep(step)
            if not self.opts.quiet:
                self.progress.show(self._status())
            if time.monotonic() - last_save >= self.opts.checkpoint_interval:
                last_save = time.monotonic()
                self._save_checkpoint()

    @property
    def _finished(self) -> bool:
        """Every line of the input is settled (even if a stop came in at the end)."""
        return self.eof and not self.window

    def _save_checkpoint(self, final: bool = False) -> None:
        if self.checkpoint_path is None or not self.verified or self.fatal is not None:
            # Nothing verified yet, or the run was stopped by a problem the person has
            # to fix (perhaps with other options): the earlier checkpoint stays.
            return
        if self.ck_line == self.saved_line and not final:
            return
        if self.errors_fh is not None:
            # The errors file first: the checkpoint must never get ahead of it.
            self.errors_fh.flush()
            os.fsync(self.errors_fh.fileno())
        data = {
            "version": CHECKPOINT_VERSION,
            "input": os.path.abspath(self.opts.path) if self.opts.path != "-" else "-",
            "format": self.fmt,
            "options": self.opts.lines.as_dict(),
            "next_line": self.ck_line,
            "offset": self.ck_offset,
            "prefix_sha256": self.prefix.hexdigest(),
            "complete": self._finished,
            "totals": dict(self.totals),
            "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        atomic_write(self.checkpoint_path, orjson.dumps(data, option=orjson.OPT_INDENT_2))
        self.saved_line = self.ck_line

    # -- reporting -----------------------------------------------------------------------

    def _status(self) -> str:
        elapsed = max(1e-6, time.monotonic() - self.started)
        c = self.counts
        done = c["delivered"] + c["invalid"] + c["refused"] + c["valid"]
        rate = done / elapsed
        parts = []
        if self.total_bytes:
            # Progress is what is settled (the checkpoint), not what was read ahead.
            frac = min(1.0, self.ck_offset / self.total_bytes)
            resumed = self.resume.offset if self.resume else 0
            width = 20
            filled = int(frac * width)
            bar = "[" + "#" * filled + "-" * (width - filled) + "]"
            parts.append(f"{bar} {frac * 100:3.0f}%")
            run_bytes = self.ck_offset - resumed
            if run_bytes > 0 and frac < 1:
                eta = (self.total_bytes - self.ck_offset) * elapsed / run_bytes
                parts.append(f"ETA {format_duration(eta)}")
        parts.append(f"line {self.read_line - 1:,}")
        parts.append(f"{rate:,.0f} lines/s")
        if self.client is not None:
            parts.append(f"delivered {c['delivered']:,}")
            parts.append(f"in flight {self.outstanding:,}")
            retried = self.client.stats().retried
            if retried:
                parts.append(f"retried {retried:,}")
        rejected = c["invalid"] + c["refused"]
        if rejected:
            parts.append(f"rejected {rejected:,}")
        return "  ".join(parts)

    def _print_sandbox(self, server: Any) -> None:
        counts = server.counts
        ops = ", ".join(f"{k} {counts[k]:,}" for k in sorted(counts) if "." in k) or "none"
        print(
            f"sandbox: the embedded stand-in received {counts['requests']:,} requests; "
            f"operations: {ops}; refused {counts['rejected_operations']:,}; "
            f"repeated events ignored {counts['duplicate_events_ignored']:,}",
            file=self.out,
        )

    def _summary(self) -> int:
        c = self.counts
        elapsed = time.monotonic() - self.started
        name = "stdin" if self.opts.path == "-" else self.opts.path
        lines_read = c["delivered"] + c["invalid"] + c["refused"] + c["valid"] + c["undelivered"]
        out = self.out
        if self.opts.dry_run:
            kinds = ", ".join(f"{n:,} {k}" for k, n in sorted(self.kinds.items()))
            print(
                f"dry run of {name}: {c['valid'] + c['invalid']:,} lines checked in "
                f"{elapsed:.1f}s: {c['valid']:,} valid ({kinds or 'none'}), "
                f"{c['invalid']:,} invalid"
                + (f", {c['blank']:,} blank" if c["blank"] else "")
                + ". Nothing was sent.",
                file=out,
            )
            if self.fatal is not None:
                print(f"error: {self.fatal}", file=self.err)
                return self.fatal.code
            if self.interrupted is not None:
                print(f"interrupted ({self.interrupted}) at line {self.read_line:,}", file=self.err)
                return EXIT_INTERRUPTED
            return EXIT_REJECTED if c["invalid"] else EXIT_OK
        nothing_left = False
        if self.resume is not None and self.resume_line > 1:
            if self.eof and not lines_read and self.verified:
                nothing_left = True
                print(
                    f"nothing to import: every line of {name} was settled by an earlier run "
                    f"({self.totals['delivered']:,} delivered, "
                    f"{self.totals['invalid'] + self.totals['refused']:,} rejected)",
                    file=out,
                )
            else:
                print(f"resumed {name} at line {self.resume_line:,}", file=out)
        rejected = c["invalid"] + c["refused"]
        if not nothing_left:
            print(
                f"import of {name}: {lines_read:,} lines in {elapsed:.1f}s "
                f"({lines_read / max(elapsed, 1e-6):,.0f}/s): {c['delivered']:,} delivered, "
                f"{rejected:,} rejected ({c['invalid']:,} invalid, {c['refused']:,} refused "
                f"by Customer.io), {c['undelivered'] + self.outstanding:,} not delivered",
                file=out,
            )
        total_rejected = self.totals["invalid"] + self.totals["refused"]
        if total_rejected and self.errors_path is not None:
            print(f"rejected lines, with reasons: {self.errors_path}", file=out)
        if self.checkpoint_path is not None and self.verified and self.fatal is None:
            state = "complete" if self._finished else ""
            print(
                f"checkpoint: next line {self.ck_line:,}{' (' + state + ')' if state else ''} "
                f"in {self.checkpoint_path}",
                file=out,
            )
        rerun = "run the same command again to resume"
        if self.fatal is not None:
            print(f"error: {self.fatal}", file=self.err)
            return self.fatal.code
        if self.interrupted is not None and not self._finished:
            print(
                f"interrupted ({self.interrupted}) before line {self.ck_line:,}: {rerun}"
                + ("" if self.checkpoint_path else " (no checkpoint: pass --checkpoint FILE)"),
                file=self.err,
            )
            return EXIT_INTERRUPTED
        if self.failure is not None and not self._finished:
            exc = self.failure
            if isinstance(exc, (AuthenticationError, PermissionDeniedError)):
                print(
                    f"error: Customer.io refused the credentials ({exc}). Check "
                    "CUSTOMERIO_SITE_ID and CUSTOMERIO_TRACK_API_KEY, and the region "
                    "(--region or CUSTOMERIO_REGION).",
                    file=self.err,
                )
                return EXIT_USAGE
            print(
                f"error: delivery failed, stopped before line {self.ck_line:,}: {exc}. "
                f"When Customer.io is reachable again, {rerun}.",
                file=self.err,
            )
            return EXIT_FAILED
        if self.window or not self.eof:  # pragma: no cover - every stop sets a reason
            return EXIT_FAILED
        return EXIT_REJECTED if total_rejected else EXIT_OK


# -- setting up ------------------------------------------------------------------------


def _detect_format(opts: ImportOptions, head: bytes) -> str:
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


def _read_head(f: BinaryIO) -> bytes:
    parts: list[bytes] = []
    size = 0
    while size < _HEAD_BYTES:
        chunk = f.read(_HEAD_BYTES - size)
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


def _config_from_env(opts: ImportOptions, env: Mapping[str, str]) -> ClientConfig | PipelinesConfig:
    e = dict(env)
    if opts.api == "pipelines":
        key = e.get("CUSTOMERIO_WRITE_KEY")
        if not key:
            raise UsageError(
                "missing Customer.io credentials: set CUSTOMERIO_WRITE_KEY (the write key "
                "of a Pipelines source; its region is read from the key, or set "
                "CUSTOMERIO_PIPELINES_REGION=eu / --region eu). Or check the file with "
                "--dry-run, or try it against a local stand-in with --sandbox."
            )
        try:
            return PipelinesConfig(
                write_key=key,
                region=opts.region or e.get("CUSTOMERIO_PIPELINES_REGION") or None,
                url=e.get("CUSTOMERIO_PIPELINES_URL") or None,
            )
        except ConfigurationError as exc:
            raise UsageError(f"bad configuration: {exc}") from None
    missing = [k for k in ("CUSTOMERIO_SITE_ID", "CUSTOMERIO_TRACK_API_KEY") if not e.get(k)]
    if missing:
        raise UsageError(
            f"missing Customer.io credentials: set {' and '.join(missing)} (Track API "
            "credentials, in Customer.io under Settings > API Credentials), and "
            "CUSTOMERIO_REGION=eu for an EU account. Or check the file with --dry-run, "
            "or try it against a local stand-in with --sandbox."
        )
    if opts.region is not None:
        e["CUSTOMERIO_REGION"] = opts.region
    try:
        return ClientConfig.from_env(e)
    except ConfigurationError as exc:
        text = str(exc)
        if text.startswith("region"):
            text = f"CUSTOMERIO_REGION: {text}"
        elif text.startswith("track_url") or text.startswith("app_url"):
            text = f"CUSTOMERIO_{text.split(' ', 1)[0].upper()}: {text}"
        raise UsageError(f"bad configuration: {text}") from None


def _default_path(opts: ImportOptions, suffix: str) -> str | None:
    if opts.path == "-":
        return None
    return opts.path + suffix


def run_import(
    opts: ImportOptions,
    *,
    env: Mapping[str, str] | None = None,
    stdin: BinaryIO | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run ``cio-async import`` and return its exit status."""
    out = out or sys.stdout
    err = err or sys.stderr
    env = os.environ if env is None else env
    try:
        return _run(opts, env, stdin, out, err)
    except UsageError as exc:
        print(f"cio-async import: error: {exc}", file=err)
        return EXIT_USAGE


def _run(
    opts: ImportOptions,
    env: Mapping[str, str],
    stdin: BinaryIO | None,
    out: TextIO,
    err: TextIO,
) -> int:
    config = None
    if not opts.dry_run and not opts.sandbox:
        config = _config_from_env(opts, env)
    if opts.path == "-":
        # Unbuffered, and not sys.stdin itself: the reader thread may be blocked in a
        # read when the process exits, and a buffered stream's lock would then make
        # interpreter shutdown abort.
        source: BinaryIO = (
            stdin if stdin is not None else io.FileIO(sys.stdin.fileno(), "rb", closefd=False)
        )
        total: int | None = None
    else:
        try:
            source = open(opts.path, "rb", buffering=0)  # noqa: SIM115 - closed below
        except OSError as exc:
            raise UsageError(f"cannot read {opts.path}: {exc.strerror or exc}") from None
        st = os.fstat(source.fileno())
        total = st.st_size if stat.S_ISREG(st.st_mode) else None
    try:
        try:
            head = _read_head(source)
        except OSError as exc:
            raise UsageError(f"cannot read {opts.path}: {exc.strerror or exc}") from None
        fmt = _detect_format(opts, head)

        # Dry runs and sandbox runs leave no state behind unless asked to: a sandbox
        # checkpoint would make the real import skip what only the sandbox received.
        quiet_state = opts.dry_run or opts.sandbox
        errors_path = opts.errors or (
            None if quiet_state else _default_path(opts, ".errors.ndjson")
        )
        if opts.path == "-" and errors_path is None and not quiet_state:
            errors_path = "cio-import-errors.ndjson"
        checkpoint_path = None
        if not opts.dry_run:
            checkpoint_path = opts.checkpoint or (
                None if opts.sandbox else _default_path(opts, ".checkpoint.json")
            )
        # Before anything is changed on disk.
        if errors_path is not None:
            _check_writable(errors_path, "errors file", "--errors")
        if checkpoint_path is not None:
            _check_writable(checkpoint_path, "checkpoint", "--checkpoint")
        resume = None
        if checkpoint_path is not None and opts.restart:
            # Gone now, not at the first save: a crash before it must not leave the
            # old checkpoint to skip lines this run was asked to send again.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(checkpoint_path)
        if checkpoint_path is not None and not opts.restart:
            resume = Checkpoint.load(checkpoint_path)
            if resume is not None and (
                resume.format != fmt or resume.options != opts.lines.as_dict()
            ):
                raise UsageError(
                    f"the checkpoint {checkpoint_path} was written for --format "
                    f"{resume.format} with {_describe_options(resume.options)}; this run "
                    f"reads --format {fmt} with {_describe_options(opts.lines.as_dict())}. "
                    "Use the same options to resume, or pass --restart."
                )
        if errors_path is not None:
            try:
                prepare_errors_file(errors_path, resume.next_line if resume else 1)
            except OSError as exc:
                raise UsageError(f"cannot write the errors file {errors_path}: {exc}") from None
        run = _Import(
            opts,
            fmt=fmt,
            source=source,
            head=head,
            total_bytes=total,
            config=config,
            errors_path=errors_path,
            checkpoint_path=checkpoint_path,
            resume=resume,
            out=out,
            err=err,
        )
        try:
            return asyncio.run(run.run())
        except KeyboardInterrupt:  # before the loop's own handler was installed
            print("interrupted", file=err)
            return EXIT_INTERRUPTED
    finally:
        if source is not stdin and opts.path != "-":
            source.close()


def _check_writable(path: str, what: str, option: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        problem = "does not exist"
    elif not os.access(directory, os.W_OK):
        problem = "is not writable"
    else:
        return
    raise UsageError(
        f"cannot write the {what} {path}: {directory} {problem} (pass {option} FILE elsewhere)"
    )


def _describe_options(options: Mapping[str, Any]) -> str:
    given = [f"--{k.replace('_', '-')} {v}" for k, v in options.items() if v is not None]
    return " ".join(given) if given else "no --kind/--event/--id-column"
