"""One run of ``cio-async import`` inside the event loop.

The run, in order:

- A reader thread splits the input (a file or a pipe, which may block) into
  *records* and hands them to the loop in chunks (``_import_read.Reader``).
- The loop turns each record into an operation (``LineParser``, i.e. the SDK's own
  validation) and ``client.submit()``\\ s it. Every record joins the settlement
  ``Window`` (``_import_settle``), which moves the checkpoint as records settle.
- A ticker redraws the status line (``_import_report``) and saves the checkpoint.
- At the end of the input, or on a stop, what was submitted is drained; then the
  final checkpoint is saved and the summary decides the exit status.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

from .._client import AsyncCustomerIO
from .._config import BatchPolicy, ClientConfig
from .._errors import (
    CustomerIOError,
    DeliveryAbandonedError,
    OperationRejectedError,
    ValidationError,
)
from ._import_options import EXIT_USAGE, Fatal, ImportOptions
from ._import_read import LineParser, Reader, Record, is_blank
from ._import_report import Report
from ._import_settle import CheckpointFile, Entry, ErrorsFile, State, Window

__all__ = ["ImportRun"]


class _Stop:
    """Why and how the run is stopping."""

    def __init__(self) -> None:
        self.stopping = False
        #: A second Ctrl-C: do not wait for what is in flight.
        self.force = False
        #: Loop time until which what is in flight may still be delivered.
        self.deadline: float | None = None
        #: The signal that stopped the run.
        self.interrupted: str | None = None
        #: The delivery failure that stopped the run.
        self.failure: BaseException | None = None
        #: The problem in the input or its options that stopped the run.
        self.fatal: Fatal | None = None


class ImportRun:
    """Reads, submits and settles records; owns the client and the signal handlers."""

    def __init__(
        self,
        opts: ImportOptions,
        *,
        records: Callable[[Callable[[], object]], Iterator[Record]],
        parser: LineParser,
        window: Window,
        report: Report,
        errors: ErrorsFile | None,
        checkpoint: CheckpointFile | None,
        config: ClientConfig | None,
        total_bytes: int | None,
    ) -> None:
        self.opts = opts
        self.records = records
        self.parser = parser
        self.window = window
        self.report = report
        self.errors = errors
        self.checkpoint = checkpoint
        self.config = config
        self.total_bytes = total_bytes
        self.client: AsyncCustomerIO | None = None
        self.eof = False
        self.stop = _Stop()
        self.wake: asyncio.Event
        self.loop: asyncio.AbstractEventLoop

    # -- lifecycle -----------------------------------------------------------------------

    async def run(self) -> int:
        self.loop = asyncio.get_running_loop()
        self.wake = asyncio.Event()
        handled = self._install_signals()
        server = None
        ticker = None
        reader = Reader(self.records, self.loop, self.wake)
        try:
            if self.opts.dry_run:
                pass  # no client: nothing can be sent
            elif self.opts.sandbox:
                from ..testing import StandIn

                server = await StandIn().start()
                self.client = self._make_client(**server.client_kwargs())
            elif self.config is not None:
                self.client = self._make_client(config=self.config)
            if self.client is not None:
                await self.client.start()
            reader.start()
            ticker = self.loop.create_task(self._tick(), name="cio-import-ticker")
            try:
                await self._pump(reader)
            except Fatal as exc:
                self.stop.fatal = exc
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
            self.report.progress.done()
            if server is not None:
                self.report.sandbox(server.counts)
                await server.close()
        try:
            self._save_checkpoint(final=True)
            if self.errors is not None:
                self.errors.close()
            stop = self.stop
            return self.report.summary(
                self.window,
                eof=self.eof,
                checkpoint_path=self.checkpoint.path if self.checkpoint else None,
                fatal=stop.fatal,
                interrupted=stop.interrupted,
                failure=stop.failure,
            )
        finally:
            # Only now: a signal during the final save changes nothing.
            self._remove_signals(handled)

    def _make_client(self, **kwargs: Any) -> AsyncCustomerIO:
        batch = BatchPolicy(
            max_batch_events=self.opts.batch_size,
            max_in_flight=self.opts.concurrency,
            linger=0.05,
            retry=dataclasses.replace(BatchPolicy().retry, total_timeout=self.opts.retry_timeout),
        )
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
        if self.stop.stopping and self.stop.interrupted:
            self.stop.force = True
            self.report.progress.note("stopping now")
        else:
            self.stop.interrupted = name
            self._stop()
            if self.client is not None:
                self.report.progress.note(
                    f"{name}: stopping; waiting up to {self.opts.drain_timeout:g}s for what is "
                    "in flight (again to stop at once)"
                )
        self.wake.set()

    def _stop(self) -> None:
        if not self.stop.stopping:
            self.stop.stopping = True
            self.stop.deadline = self.loop.time() + self.opts.drain_timeout
        self.wake.set()

    # -- reading and submitting ----------------------------------------------------------

    async def _pump(self, reader: Reader) -> None:
        since_yield = 0
        window = self.window
        while not self.stop.stopping:
            if window.full:
                self.wake.clear()
                if window.full and not self.stop.stopping:
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
                raise Fatal(f"cannot read {self.opts.path}: {exc}", EXIT_USAGE) from None
            if item is Reader.EOF:
                self.eof = True
                if not window.verified:
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

    def _verify_resume(self, rec: Record | None) -> None:
        if not self.window.verify_resume(rec):
            resume = self.window.resume
            assert resume is not None
            assert self.checkpoint is not None
            raise Fatal(
                f"{self.opts.path} is not the input the checkpoint {self.checkpoint.path} was "
                f"written for: its first {resume.offset:,} bytes (lines before "
                f"{resume.next_line:,}) changed. Pass --restart to import it from the start.",
                EXIT_USAGE,
            )

    async def _handle(self, rec: Record) -> None:
        window = self.window
        entry = window.add(rec)
        self.report.read_line = rec.next_line
        earlier = rec.line < window.resume_line
        if not earlier and not window.verified:
            self._verify_resume(rec)
        blank = is_blank(rec)
        if self.parser.wants_header and not blank:
            # Read even before the resume line: the columns are needed after it.
            self.parser.take_header(rec)
            window.settle(entry, State.EARLIER if earlier else State.SKIPPED)
            return
        if earlier:
            window.settle(entry, State.EARLIER)
            return
        if blank:
            self.report.counts["blank"] += 1
            window.settle(entry, State.SKIPPED)
            return
        try:
            op = self.parser.operation(rec)
        except ValidationError as exc:
            self._reject(entry, State.INVALID, "invalid", exc.field, exc.message)
            self.parser.check_format(rec)
            return
        self.report.kinds[op.action] += 1
        client = self.client
        if client is None:  # a dry run
            self.report.counts["valid"] += 1
            window.settle(entry, State.DELIVERED)
            return
        try:
            fut = await client.submit(op)
        except CustomerIOError as exc:
            self.stop.failure = exc
            self._stop()
            return
        window.submitted(entry, len(op.payload))
        fut.add_done_callback(functools.partial(self._settled, entry))

    def _settled(self, entry: Entry, fut: asyncio.Future[None]) -> None:
        self.window.answered(entry)
        exc = DeliveryAbandonedError("cancelled") if fut.cancelled() else fut.exception()
        if exc is None:
            self.report.counts["delivered"] += 1
            self.window.settle(entry, State.DELIVERED)
        elif isinstance(exc, OperationRejectedError):
            self._reject(
                entry, State.REFUSED, exc.reason, exc.field, exc.message, status=exc.status
            )
        else:
            self.report.counts["undelivered"] += 1
            self.window.settle(entry, State.FAILED)
            if not self.stop.stopping and self.stop.failure is None:
                self.stop.failure = exc
                self._stop()
        self.wake.set()

    def _reject(
        self,
        entry: Entry,
        state: State,
        reason: str,
        field: str,
        message: str,
        status: int | None = None,
    ) -> None:
        refused = state is State.REFUSED
        if self.errors is not None:
            stage = "customerio" if refused else "validation"
            self.errors.write(entry, stage, reason, field, message, status)
        self.report.rejected(
            entry.line, refused=refused, reason=reason, field=field, message=message
        )
        self.window.settle(entry, state)
        self.wake.set()

    # -- finishing -----------------------------------------------------------------------

    async def _drain(self, client: AsyncCustomerIO) -> None:
        """Deliver what was submitted: without a deadline after the end of the input,
        with ``--drain-timeout`` once stopping; a second Ctrl-C stops at once."""
        flush = asyncio.ensure_future(client.flush())  # send what lingers, now
        window = self.window
        stop = self.stop
        try:
            while window.outstanding and not stop.force:
                self.wake.clear()
                if not window.outstanding or stop.force:
                    break
                if stop.deadline is None:
                    await self.wake.wait()
                    continue
                remaining = stop.deadline - self.loop.time()
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
        progress = self.report.progress
        step = max(0.05, min(progress.every, self.opts.checkpoint_interval, 1.0))
        while True:
            await asyncio.sleep(step)
            if not self.opts.quiet:
                retried = self.client.stats().retried if self.client is not None else None
                progress.show(self.report.status(self.window, self.total_bytes, retried))
            if time.monotonic() - last_save >= self.opts.checkpoint_interval:
                last_save = time.monotonic()
                self._save_checkpoint()

    def _save_checkpoint(self, final: bool = False) -> None:
        if self.checkpoint is None or not self.window.verified or self.stop.fatal is not None:
            # Nothing verified yet, or the run was stopped by a problem the person has
            # to fix (perhaps with other options): the earlier checkpoint stays.
            return
        self.checkpoint.save(self.window, complete=self.window.finished(self.eof), final=final)
