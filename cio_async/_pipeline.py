"""The delivery pipeline: admission, batching, the sender task and batch delivery.

One sender task (owned here) takes batches off the queue and hands each to a
delivery task (owned by a ``TaskSet``); at most ``max_in_flight`` are in flight.
Every admitted operation ends in exactly one of: delivered, failed (reported to
``on_error``), dropped (reported to ``on_drop``). Nothing is lost silently.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from ._config import BatchPolicy, RetryPolicy
from ._errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    CustomerIOError,
    DeliveryAbandonedError,
    OperationRejectedError,
    PermissionDeniedError,
    QueueFullError,
    RateLimitError,
    RequestTooLargeError,
)
from ._model import Operation
from ._queue import Item, MemoryQueue, QueueBackend, Waited, op_of
from ._retry import should_retry
from ._stats import Recorder
from ._tasks import TaskSet
from ._track import parse_batch_errors
from ._transport import Response, Transport

log = logging.getLogger("cio_async")
_get_ident = threading.get_ident
_get_running_loop = asyncio.get_running_loop

_HEAD = b'{"batch":['
_TAIL = b"]}"


@dataclass(frozen=True, slots=True)
class FlushResult:
    """What happened while ``flush()`` waited.

    ``delivered``/``failed``/``dropped`` count operations settled during the call;
    ``pending`` counts operations admitted before the call that were still
    undelivered when it returned (non-zero only on timeout).
    """

    delivered: int
    failed: int
    dropped: int
    pending: int

    @property
    def complete(self) -> bool:
        return self.pending == 0


class BatchTarget(Protocol):
    """Somewhere else a batch can go instead of Track's ``/api/v2/batch`` (a Redis
    stream: ``cio_async.redis.RedisStreamTarget``). ``send`` makes one attempt and
    raises a ``CustomerIOError`` (retryable ones are retried)."""

    op: str

    def body(self, items: Sequence[bytes]) -> bytes:
        """The request body for these payloads."""

    async def send(self, body: bytes, headers: Mapping[str, str] | None) -> Response:
        """One attempt; the 2xx response or an error."""


def _unsettled(items: Sequence[Item], settled: list[Sequence[Item]]) -> list[Item]:
    done = {id(i) for chunk in settled for i in chunk}
    return [i for i in items if id(i) not in done]


def _consume(fut: asyncio.Future[None]) -> None:
    # The error also goes to on_error and the log; retrieving it here keeps asyncio from
    # complaining about an unretrieved exception when the waiter gave up.
    if not fut.cancelled():
        fut.exception()


class Pipeline:
    """Batches operations into ``/api/v2/batch`` requests. Internal; the client owns it.

    ``_fastpath`` admits person events into the default queue directly and so shares
    this class's admission state (``_fast_loop``, the queue bounds, ``_woken``, the
    linger timer): a change to how ``_admit`` queues must be made there too."""

    def __init__(
        self,
        transport: Transport,
        policy: BatchPolicy,
        recorder: Recorder,
        *,
        on_failure: Callable[[BaseException, Operation | None], None],
        on_drop: Callable[[Operation, str], None],
        queue: QueueBackend | None = None,
        target: BatchTarget | None = None,
    ) -> None:
        self._t = transport
        self._target = target
        self._policy = policy
        self._rec = recorder
        self._on_failure = on_failure
        self._on_drop = on_drop
        self._queue: QueueBackend = queue if queue is not None else MemoryQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread_id = 0
        self._sender: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._space: asyncio.Event | None = None
        self._slots: asyncio.Semaphore | None = None
        self._tasks = TaskSet(lambda exc, name: self._on_failure(exc, None))
        self._inflight: dict[int, int] = {}
        self._batch_ids = itertools.count()
        self._flush_target = 0
        self._waited_queued = 0
        self._timer: asyncio.TimerHandle | None = None
        self._linger_due = False
        self._paused_until = 0.0
        self._closing = False
        #: The loop the fast path may admit on: set at start, cleared when closing or
        #: when the sender dies (one attribute to test instead of three).
        self._fast_loop: asyncio.AbstractEventLoop | None = None
        self._dead: BaseException | None = None
        self._flush_waiters: list[tuple[int, asyncio.Future[None]]] = []
        # Bound once so the hot path does no attribute lookups on the policy.
        self._max_events = policy.max_queue_events
        self._max_bytes = policy.max_queue_bytes
        self._batch_events = policy.max_batch_events
        self._batch_bytes = policy.max_batch_bytes
        self._block = policy.when_full == "block"
        self._since_yield = 0
        #: True while the sender is known to be awake (see ``_wake_for_batch``).
        self._woken = False

    # -- state -------------------------------------------------------------------------

    @property
    def admitted(self) -> int:
        """Operations admitted so far: everything the queue ever took, plus those
        dropped at admission (drop_newest, late cross-thread calls)."""
        q = self._queue
        return q.head_seq + q.events + self._rec.admitted

    @property
    def queue_depth(self) -> int:
        return self._queue.events

    @property
    def queue_bytes(self) -> int:
        return self._queue.nbytes

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    @property
    def started(self) -> bool:
        return self._sender is not None

    def _start(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
            self._fast_loop = loop
            self._thread_id = threading.get_ident()
            self._wake = asyncio.Event()
            self._space = asyncio.Event()
            self._slots = asyncio.Semaphore(self._policy.max_in_flight)
            self._sender = loop.create_task(self._run(), name="cio_async-sender")
            self._sender.add_done_callback(self._sender_done)
        elif self._loop is not loop:
            raise RuntimeError(
                "this AsyncCustomerIO is bound to another event loop; create one per loop"
            )
        return loop

    def close_fast_path(self) -> None:
        """Stop admitting through the fast paths (``try_admit``, ``_fastpath``) at once;
        ``close()`` follows (aclose() starts it in a task)."""
        self._fast_loop = None

    def on_loop_thread(self) -> bool:
        """True on the loop's thread (or before the pipeline started)."""
        return self._loop is None or threading.get_ident() == self._thread_id

    def _check_admission(self) -> None:
        if self._closing:
            raise ClientClosedError("the client is closing; no new operations are accepted")
        if self._dead is not None:
            raise CustomerIOError(f"the delivery task died: {self._dead!r}") from self._dead

    # -- admission ---------------------------------------------------------------------

    def _full(self, size: int) -> bool:
        q = self._queue
        return q.events >= self._max_events or q.nbytes + size > self._max_bytes

    async def admit(
        self, op: Operation | bytes, wait: bool, urgent: bool = True
    ) -> asyncio.Future[None] | None:
        """Queue ``op`` (waiting for space under the ``block`` policy)."""
        if self._loop is None or self._loop is not asyncio.get_running_loop():
            self._start()
        self._check_admission()
        payload = op.payload if isinstance(op, Operation) else op
        if self._block and self._full(len(payload)):
            await self._wait_for_space(len(payload))
        if not wait:
            self._admit(payload)
            if self.yield_due():
                await asyncio.sleep(0)
            return None
        assert self._loop is not None
        fut: asyncio.Future[None] = self._loop.create_future()
        fut.add_done_callback(_consume)
        operation = op if isinstance(op, Operation) else Operation.from_payload(op)
        self._admit(Waited(operation, fut, urgent))
        return fut

    def try_admit(self, payload: bytes) -> int:
        """Admit ``payload`` at once if nothing stands in the way (started on this loop,
        open, room in the queue). Returns 0 when the caller must take the slow way, 1
        when admitted, 2 when admitted and the caller should yield to the loop (once per
        batch's worth, so a producer awaiting in a tight loop never starves the sender).
        Person events have a faster, fused path (``_fastpath``).
        """
        q = self._queue
        loop = self._fast_loop
        if (
            loop is None
            or q.events >= self._max_events
            or q.nbytes + len(payload) > self._max_bytes
            or loop is not _get_running_loop()
        ):
            return 0
        self._admit(payload)  # counted as admitted through the queue's sequence numbers
        return 2 if self.yield_due() else 1

    def yield_due(self) -> bool:
        """True once per batch's worth of admissions (see ``try_admit``)."""
        self._since_yield += 1
        if self._since_yield >= self._batch_events:
            self._since_yield = 0
            return True
        return False

    async def _wait_for_space(self, size: int) -> None:
        assert self._loop is not None
        assert self._space is not None
        deadline = self._loop.time() + self._policy.block_timeout
        while self._full(size):
            self._check_admission()
            remaining = deadline - self._loop.time()
            if remaining <= 0:
                self._rec.refused += 1
                raise QueueFullError(
                    f"delivery queue full ({self._queue.events} operations, "
                    f"{self._queue.nbytes} bytes) for {self._policy.block_timeout}s"
                )
            self._space.clear()
            try:
                await asyncio.wait_for(self._space.wait(), remaining)
            except asyncio.TimeoutError:
                pass
        self._check_admission()

    def admit_nowait(self, payload: bytes) -> None:
        """Queue an encoded operation without waiting; callable from any thread."""
        if _get_ident() == self._thread_id:
            if self._closing or self._dead is not None:
                self._check_admission()
            q = self._queue
            if self._block and (
                q.events >= self._max_events or q.nbytes + len(payload) > self._max_bytes
            ):
                self._rec.refused += 1
                raise QueueFullError("delivery queue full; a non-waiting call cannot block")
            self._admit(payload)
            return
        loop = self._loop
        if loop is None:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                raise RuntimeError(
                    "the client has not started: use it once from its event loop "
                    "(e.g. 'async with AsyncCustomerIO(...)') before calling *_nowait "
                    "from other threads"
                ) from None
            self._start()
            self.admit_nowait(payload)
            return
        self._check_admission()
        loop.call_soon_threadsafe(self._admit_from_thread, payload)

    def _admit_from_thread(self, payload: bytes) -> None:
        if self._closing or self._dead is not None:
            self._rec.admitted += 1
            self._settle_dropped([payload], "shutdown" if self._closing else "sender_died")
            return
        if self._block and self._full(len(payload)):
            self._rec.admitted += 1
            self._settle_dropped([payload], "queue_full")
            return
        self._admit(payload)

    def _admit(self, item: bytes) -> None:
        q = self._queue
        size = len(item)
        rec = self._rec
        if q.events >= self._max_events or q.nbytes + size > self._max_bytes:
            if self._policy.when_full == "drop_oldest":
                evicted: list[Item] = []
                while q.events and self._full(size):
                    old = q.pop_oldest()
                    if old is not None:
                        evicted.append(old)
                self._settle_dropped(evicted, "queue_full")
                self._check_flush_waiters()
            elif self._policy.when_full == "drop_newest":
                rec.admitted += 1
                self._settle_dropped([item], "queue_full")
                return
        q.append(item)
        if type(item) is Waited and item.urgent:
            self._waited_queued += 1
            self._wake_sender()
        elif q.events >= self._batch_events or q.nbytes >= self._batch_bytes:
            if not self._woken:
                self._wake_for_batch()
        elif self._timer is None and not self._linger_due:
            assert self._loop is not None
            self._timer = self._loop.call_later(self._policy.linger, self._linger_elapsed)

    def _linger_elapsed(self) -> None:
        self._timer = None
        self._linger_due = True
        self._wake_sender()

    def _wake_sender(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _wake_for_batch(self) -> None:
        """A full batch is queued: wake the sender. ``_woken`` stays true until the
        sender next goes to sleep, so admissions test a plain attribute rather than
        call ``Event.is_set()`` each time."""
        if self._wake is not None:
            self._woken = True
            self._wake.set()

    # -- the sender --------------------------------------------------------------------

    def _ready(self) -> bool:
        q = self._queue
        if not q.events:
            return False
        return (
            self._linger_due
            or self._waited_queued > 0
            or self._closing
            or q.head_seq < self._flush_target
            or q.events >= self._batch_events
            or q.nbytes >= self._batch_bytes
        )

    async def _run(self) -> None:
        assert self._wake is not None
        assert self._slots is not None
        assert self._loop is not None
        wake, slots, loop = self._wake, self._slots, self._loop
        while True:
            if not self._ready():
                self._woken = False  # before clear(): see _wake_for_batch
                wake.clear()
                await wake.wait()
                continue
            pause = self._paused_until - loop.time()
            if pause > 0:
                # A 429 pauses the whole sender: no new batches until the pause ends.
                # Not asyncio.wait_for: before Python 3.12 it swallows a cancellation
                # that lands as the wait ends, and close() wakes the sender and cancels
                # it in one go, which then waited for the sender forever.
                # _woken stays true: full batches need not wake a sender that cannot
                # send before the timer (flush, close and waiters still wake it).
                self._woken = True
                wake.clear()
                timer = loop.call_later(pause, wake.set)
                try:
                    await wake.wait()
                finally:
                    timer.cancel()
                continue
            await slots.acquire()
            first, items = self._queue.take(self._batch_events, self._batch_bytes)
            if not items:
                slots.release()
                continue
            self._after_take(items)
            batch_id = next(self._batch_ids)
            self._inflight[batch_id] = first
            _task = self._tasks.spawn(self._deliver_batch(batch_id, items), "cio_async-batch")

    def _after_take(self, items: list[Item]) -> None:
        if self._waited_queued:
            self._waited_queued -= sum(1 for i in items if type(i) is Waited and i.urgent)
        q = self._queue
        if not q.events:
            self._linger_due = False
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        else:
            # What is left (short of a full batch) gets its own linger interval rather
            # than going out at once as a sliver; flush, waiters and size still win.
            self._linger_due = False
            if self._timer is None:
                assert self._loop is not None
                self._timer = self._loop.call_later(self._policy.linger, self._linger_elapsed)
        self._notify_space()

    def _notify_space(self) -> None:
        if self._space is not None:
            self._space.set()

    def _sender_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        # Nothing may hang on a dead sender: fail everything queued with its error.
        self._dead = exc
        self._fast_loop = None
        log.error("cio_async sender task died; failing queued operations", exc_info=exc)
        items = self._queue.drain()
        self._settle_failed(items, exc, "sender_died")
        self._on_failure(exc, None)
        self._check_flush_waiters(force=True)

    # -- delivery ----------------------------------------------------------------------

    async def _deliver_batch(self, batch_id: int, items: list[Item]) -> None:
        settled: list[Sequence[Item]] = []  # the chunks settled so far (splits settle in parts)
        try:
            await self._deliver(items, settled)
        except asyncio.CancelledError:
            # Cancelled by aclose() past its deadline: hand what is left to on_drop.
            self._settle_dropped(_unsettled(items, settled), "shutdown")
            raise
        except Exception as exc:
            self._settle_failed(_unsettled(items, settled), exc, "internal")
            raise
        finally:
            del self._inflight[batch_id]
            assert self._slots is not None
            self._slots.release()
            self._check_flush_waiters()

    async def _deliver(self, items: Sequence[Item], settled: list[Sequence[Item]]) -> None:
        policy: RetryPolicy = self._policy.retry
        target = self._target
        body = b"".join((_HEAD, b",".join(items), _TAIL)) if target is None else target.body(items)
        started = time.monotonic()
        retry = 0
        while True:
            await self._respect_pause()
            t0 = time.monotonic()
            headers = {"X-Retry-Count": str(retry)} if retry else None
            try:
                if target is not None:
                    resp = await target.send(body, headers)
                else:
                    resp = await self._t.request(
                        "track",
                        "POST",
                        "/api/v2/batch",
                        body=body,
                        op="batch",
                        retry=RetryPolicy.NONE,
                        headers=headers,
                    )
            except (BadRequestError, RequestTooLargeError) as exc:
                self._rec.batch_sent(len(items), len(body), exc.status, time.monotonic() - t0)
                if len(items) == 1:
                    reason = "too_large" if isinstance(exc, RequestTooLargeError) else "rejected"
                    err = OperationRejectedError(reason, "", str(exc), exc.status)
                    self._settle_failed(items, err, reason, settled)
                    return
                # Isolate the bad operation(s): the halves go in order, so operations
                # for the same person keep their relative order.
                mid = len(items) // 2
                await self._deliver(items[:mid], settled)
                await self._deliver(items[mid:], settled)
                return
            except (AuthenticationError, PermissionDeniedError) as exc:
                self._rec.batch_sent(len(items), len(body), exc.status, time.monotonic() - t0)
                self._settle_failed(items, exc, "auth", settled)
                # Credentials do not fix themselves: fail what is queued now too.
                self._settle_failed(self._queue.drain(), exc, "auth")
                self._notify_space()
                self._check_flush_waiters()
                return
            except CustomerIOError as exc:
                if isinstance(exc, APIStatusError):
                    self._rec.batch_sent(len(items), len(body), exc.status, time.monotonic() - t0)
                retry += 1
                delay = None
                if retry < policy.max_attempts and should_retry(exc, policy, idempotent=True):
                    delay = policy.delay(retry - 1, getattr(exc, "retry_after", None))
                if delay is None or time.monotonic() - started + delay > policy.total_timeout:
                    reason = "retries_exhausted" if exc.retryable else "error"
                    self._settle_failed(items, exc, reason, settled)
                    return
                if isinstance(exc, RateLimitError):
                    self._pause(delay)
                self._rec.retry("batch", retry, delay, exc)
                await asyncio.sleep(delay)
                continue
            self._rec.batch_sent(len(items), len(body), resp.status, time.monotonic() - t0)
            errors = parse_batch_errors(resp.json()) if resp.status == 207 else ()
            if not errors:
                self._settle_delivered(items, settled)
                return
            bad = {e.batch_index: e for e in errors if 0 <= e.batch_index < len(items)}
            good = [it for n, it in enumerate(items) if n not in bad]
            self._settle_delivered(good, settled)
            for n, e in bad.items():
                err = OperationRejectedError(e.reason, e.field, e.message, 207)
                self._settle_failed([items[n]], err, "rejected", settled)
            return

    def _pause(self, seconds: float) -> None:
        assert self._loop is not None
        until = self._loop.time() + seconds
        if until > self._paused_until:
            self._rec.paused_seconds += until - max(self._paused_until, self._loop.time())
            self._paused_until = until
            log.warning("Customer.io rate limited the batch sender; pausing %.1fs", seconds)

    async def _respect_pause(self) -> None:
        assert self._loop is not None
        wait = self._paused_until - self._loop.time()
        if wait > 0:
            await asyncio.sleep(wait)

    # -- settling ----------------------------------------------------------------------

    def _settle_delivered(
        self, items: Sequence[Item], settled: list[Sequence[Item]] | None = None
    ) -> None:
        self._rec.delivered += len(items)
        if settled is not None:
            settled.append(items)
        for it in items:
            if type(it) is Waited and not it.future.done():
                it.future.set_result(None)

    def _settle_failed(
        self,
        items: Sequence[Item],
        exc: BaseException,
        reason: str,
        settled: list[Sequence[Item]] | None = None,
    ) -> None:
        if not items:
            return
        self._rec.failed[reason] += len(items)
        log.warning("%d operation(s) failed (%s): %s", len(items), reason, exc)
        if settled is not None:
            settled.append(items)
        for it in items:
            if type(it) is Waited and not it.future.done():
                it.future.set_exception(exc)
            self._on_failure(exc, op_of(it))

    def _settle_dropped(self, items: Sequence[Item], reason: str) -> None:
        if not items:
            return
        log.warning("%d operation(s) dropped undelivered (%s)", len(items), reason)
        self._drop([op_of(i) for i in items], reason)
        for it in items:
            if type(it) is Waited and not it.future.done():
                it.future.set_exception(DeliveryAbandonedError(reason))

    def _drop(self, ops: Sequence[Operation], reason: str) -> None:
        for op in ops:
            self._rec.drop(op, reason)
            self._on_drop(op, reason)

    # -- flush and close ---------------------------------------------------------------

    def _flush_done(self, target: int) -> bool:
        if self._queue.head_seq < target:
            return False
        return all(first >= target for first in self._inflight.values())

    def _check_flush_waiters(self, force: bool = False) -> None:
        if not self._flush_waiters:
            return
        keep = []
        for target, fut in self._flush_waiters:
            if fut.done():
                continue
            if force or self._flush_done(target):
                fut.set_result(None)
            else:
                keep.append((target, fut))
        self._flush_waiters = keep

    def _pending_before(self, target: int) -> int:
        q = self._queue
        queued = max(0, min(q.events, target - q.head_seq))
        # In-flight batches started before the target count in full (an upper bound).
        return queued + sum(1 for first in self._inflight.values() if first < target)

    async def flush(self, timeout: float | None) -> FlushResult:
        """Send everything admitted so far now; wait until settled or ``timeout``."""
        if self._loop is None:
            return FlushResult(0, 0, 0, 0)
        rec = self._rec
        d0, f0, x0 = rec.delivered, sum(rec.failed.values()), sum(rec.dropped.values())
        target = self._queue.head_seq + self._queue.events
        if target > self._flush_target:
            self._flush_target = target
        self._wake_sender()
        if not self._flush_done(target) and self._dead is None:
            fut: asyncio.Future[None] = self._loop.create_future()
            self._flush_waiters.append((target, fut))
            try:
                await asyncio.wait_for(asyncio.shield(fut), timeout)
            except asyncio.TimeoutError:
                pass
            finally:
                if not fut.done():
                    fut.cancel()
        return FlushResult(
            delivered=rec.delivered - d0,
            failed=sum(rec.failed.values()) - f0,
            dropped=sum(rec.dropped.values()) - x0,
            pending=0 if self._flush_done(target) else self._pending_before(target),
        )

    async def close(self, timeout: float | None) -> FlushResult:
        """Stop admission, flush with a deadline, drop (``shutdown``) what is left,
        and cancel and await every task."""
        self._closing = True
        self._fast_loop = None
        if self._space is not None:
            self._space.set()  # blocked admitters re-check and see the client closing
        if self._loop is None:
            return FlushResult(0, 0, 0, 0)
        result = await self.flush(timeout)
        x0 = sum(self._rec.dropped.values())
        # Past the deadline: stop the sender so it starts nothing new, cancel in-flight
        # deliveries (their items go to on_drop as "shutdown"), then drop what is queued.
        sender = self._sender
        if sender is not None and not sender.done():
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
        await self._tasks.cancel_all()
        self._settle_dropped(self._queue.drain(), "shutdown")
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._check_flush_waiters(force=True)
        dropped = sum(self._rec.dropped.values()) - x0
        return FlushResult(result.delivered, result.failed, result.dropped + dropped, 0)
