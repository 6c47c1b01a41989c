"""The sender: all I/O for batches, and the settlement of every admitted operation.

One sender task (owned here) takes batches from the accumulator and hands each to a
delivery task (owned by a ``TaskSet``); a concurrency limit (fixed, or adaptive: it
grows while round trips stay fast and shrinks on 429s, 5xx, timeouts or rising
latency) bounds how many are in flight. Every admitted operation ends in exactly one
of: delivered, failed (reported to ``on_error``), dropped (reported to ``on_drop``).
Nothing is lost silently.

Retries follow the one retry rule (``_retry.retry_delay``); a batch is retried until
its time budget (``RetryPolicy.total_timeout``) is spent. During an outage one batch
probes at short intervals; the first request that succeeds wakes every batch asleep
in backoff, so delivery resumes about as soon as Customer.io is back.

A 5xx is split like a 400 only when the evidence blames the batch rather than the
service (see ``_blamed``): it has been answered with a server error (a 5xx other
than 502/503/504 and a CDN's 52x, which say the service or a gateway is down)
``ISOLATE_AFTER`` times, and some other request was answered since the first (the
service is up). Then a batch of several operations is split in halves, resent in
order, each half under the normal retry rule; a lone operation fails for good
(``OperationRejectedError``, reason ``server_error``). During an outage nothing else
succeeds, so nothing is split and the request count does not grow; without other
traffic there is no evidence either, and the batch is retried as in an outage.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeGuard

from .._config import BatchPolicy
from .._errors import (
    APIConnectionError,
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
from .._model import Operation
from .._stats import Recorder
from .._tasks import TaskSet
from ..http._retry import retry_delay, retry_headers
from ._accumulator import DROPPED_ON_ARRIVAL, Accumulator
from ._backend import MemoryBackend, QueueBackend, Waited
from ._concurrency import Concurrency
from ._endpoint import BatchEndpoint
from ._episodes import DropEpisodes

log = logging.getLogger("cio_async")

#: During an outage one batch (the probe) retries at least this often, so delivery
#: resumes within about this long after the server is back.
PROBE_INTERVAL = 0.5
#: A batch answered with a server error this many times, while other requests were
#: answered since its first, is split (a lone operation fails as ``server_error``).
#: Small: each halving costs this many requests for the half with the bad operation.
ISOLATE_AFTER = 3

#: 5xx statuses that say a gateway or the whole service is down or overloaded, never
#: that one request was bad: they never split a batch.
_SERVICE_STATUSES = frozenset({502, 503, 504, 520, 521, 522, 523, 524})


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
        """True when nothing admitted before the call is still pending."""
        return self.pending == 0


def _consume(fut: asyncio.Future[None]) -> None:
    # The error also goes to on_error and the log; retrieving it here keeps asyncio from
    # complaining about an unretrieved exception when the waiter gave up.
    if not fut.cancelled():
        fut.exception()


def _op_of(item: bytes) -> Operation:
    """The ``Operation`` behind a queued item; plain payloads decode lazily."""
    return item.op if type(item) is Waited else Operation.lazy(item)


class _AllSettled(frozenset[int]):
    """``_Flight.settled`` once the whole batch settled in one go: contains everything."""

    def __contains__(self, item: object) -> bool:
        return True


_ALL: set[int] = _AllSettled()  # type: ignore[assignment]


class _Flight:
    """One batch in flight: where it starts in sequence order, how many of its items
    are not settled yet, and which are (splits settle in parts)."""

    __slots__ = ("first", "fresh", "ids", "items", "open", "settled", "waited")

    def __init__(
        self,
        first: int,
        items: list[bytes],
        ids: Sequence[Any] | None,
        waited: bool,
        fresh: bool = False,
    ) -> None:
        self.first = first
        #: Sent with more batches in flight than ever before: its request opens a
        #: connection (keep-alive holds the ones used so far).
        self.fresh = fresh
        self.waited = waited  # holds awaited operations (futures to settle)
        self.items = items
        self.ids = ids
        self.open = len(items)
        self.settled: set[int] = set()  # positions settled so far


class _Blame:
    """The server errors one batch (or half) got: how many, and how many answers the
    sender had seen at the first (``Sender._answered`` grows with every answer)."""

    __slots__ = ("count", "mark")

    def __init__(self, mark: int) -> None:
        self.mark = mark
        self.count = 0


class Sender:
    """Delivers batches from an ``Accumulator`` over a ``BatchEndpoint``.

    Internal; the client owns it. ``sender.accumulator`` is where admissions go
    (``offer`` for the fast path); ``admit``/``admit_nowait`` add the ``block``
    policy, awaited operations and other threads.
    """

    def __init__(
        self,
        endpoint: BatchEndpoint,
        policy: BatchPolicy,
        recorder: Recorder,
        *,
        on_failure: Callable[[BaseException, Operation | None], None],
        on_drop: Callable[[Operation, str], None],
        backend: QueueBackend | None = None,
        pool_size: int = 25,
    ) -> None:
        self._endpoint = endpoint
        self._policy = policy
        self._rec = recorder
        self._on_failure = on_failure
        self._on_drop = on_drop
        self.backend: QueueBackend = backend if backend is not None else MemoryBackend()
        self.accumulator = Accumulator(
            self.backend,
            policy,
            wake=self._wake_sender,
            space=self._notify_space,
            dropped=self._settle_dropped,
        )
        self._acc = self.accumulator
        bound = pool_size if policy.max_in_flight is None else policy.max_in_flight
        if policy.concurrency == "adaptive":
            self.concurrency = Concurrency(initial=min(4, bound), maximum=bound)
        else:
            self.concurrency = Concurrency.fixed(bound)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread_id = 0
        self._sender: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._space: asyncio.Event | None = None
        self._slot_freed: asyncio.Event | None = None
        self._tasks = TaskSet(lambda exc, name: self._on_failure(exc, None))
        self._inflight: dict[int, _Flight] = {}
        #: The most batches ever in flight at once (see ``_Flight.fresh``).
        self._peak = 0
        self._batch_ids = itertools.count()
        self._paused_until = 0.0
        self._closing = False
        self._dead: BaseException | None = None
        self._flush_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._block = policy.when_full == "block"
        # Retry coordination (fast recovery): batches asleep in backoff, and the one
        # batch probing during an outage.
        self._sleepers: set[asyncio.Future[None]] = set()
        self._probe: object | None = None
        # Requests answered (2xx, 400, 413): evidence that the service is up.
        self._answered = 0
        # Drop episodes: one warning when drops start, a count when they stop.
        self._episodes = DropEpisodes()

    # -- state -------------------------------------------------------------------------

    @property
    def admitted(self) -> int:
        """Operations admitted so far: everything queued ever, plus those dropped at
        admission (drop_newest, late cross-thread calls)."""
        acc = self._acc
        return acc.head_seq + acc.events + acc.dropped_on_arrival + self._rec.admitted

    @property
    def queue_depth(self) -> int:
        """Operations queued, not yet in a batch."""
        return self._acc.events

    @property
    def queue_bytes(self) -> int:
        """Payload bytes queued."""
        return self._acc.nbytes

    @property
    def in_flight(self) -> int:
        """Batches being delivered (sending or waiting to retry)."""
        return len(self._inflight)

    @property
    def started(self) -> bool:
        """True once bound to a loop with its sender task running."""
        return self._sender is not None

    def start(self) -> asyncio.AbstractEventLoop:
        """Bind to the running loop and start the sender task (idempotent)."""
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
            self._episodes.bind(loop)
            self._thread_id = threading.get_ident()
            self._wake = asyncio.Event()
            self._space = asyncio.Event()
            self._slot_freed = asyncio.Event()
            self._sender = loop.create_task(self._run(), name="cio_async-sender")
            self._sender.add_done_callback(self._sender_done)
            if not self._closing:
                self._acc.open(loop)
        elif self._loop is not loop:
            raise RuntimeError(
                "this AsyncCustomerIO is bound to another event loop; create one per loop"
            )
        return loop

    def stop_admission(self) -> None:
        """Stop admitting at once (``aclose()`` then runs ``close`` in a task)."""
        self._closing = True
        self._acc.close()
        if self._space is not None:
            self._space.set()  # blocked admitters re-check and see the client closing

    def on_loop_thread(self) -> bool:
        """True on the loop's thread (or before the sender started)."""
        return self._loop is None or threading.get_ident() == self._thread_id

    def _check_admission(self) -> None:
        if self._closing:
            raise ClientClosedError("the client is closing; no new operations are accepted")
        if self._dead is not None:
            raise CustomerIOError(f"the delivery task died: {self._dead!r}") from self._dead

    # -- admission (everything the fast path, ``accumulator.offer``, declines) ----------

    async def admit(
        self, op: Operation | bytes, wait: bool, urgent: bool = True
    ) -> asyncio.Future[None] | Literal[False] | None:
        """Admit ``op``: wait for room under ``block``, apply the other policies, and
        for ``wait`` return the future its delivery settles. Without ``wait``: False
        when ``drop_newest`` dropped it (with ``wait`` the future says so)."""
        if self._loop is None or self._loop is not asyncio.get_running_loop():
            self.start()
        self._check_admission()
        acc = self._acc
        payload = op.payload if isinstance(op, Operation) else op
        if self._block and acc.full(len(payload)):
            await self._wait_for_space(len(payload))
        if not wait:
            commit = acc.admit(payload)
            if commit is not None:
                if commit is DROPPED_ON_ARRIVAL:
                    return False
                await commit
            elif acc.yield_due():
                await asyncio.sleep(0)
            return None
        assert self._loop is not None
        fut: asyncio.Future[None] = self._loop.create_future()
        fut.add_done_callback(_consume)
        operation = op if isinstance(op, Operation) else Operation.lazy(op)
        commit = acc.admit(Waited(operation, fut, urgent))
        if commit is not None:
            await commit
        return fut

    async def _wait_for_space(self, size: int) -> None:
        assert self._loop is not None
        assert self._space is not None
        deadline = self._loop.time() + self._policy.block_timeout
        acc = self._acc
        while acc.full(size):
            self._check_admission()
            remaining = deadline - self._loop.time()
            if remaining <= 0:
                self._rec.refused += 1
                raise QueueFullError(
                    f"delivery queue full ({acc.events} operations, "
                    f"{acc.nbytes} bytes) for {self._policy.block_timeout}s"
                )
            self._space.clear()
            try:
                await asyncio.wait_for(self._space.wait(), remaining)
            except asyncio.TimeoutError:
                pass
        self._check_admission()

    def admit_nowait(self, payload: bytes) -> bool:
        """Queue an encoded operation without waiting; callable from any thread. The
        caller tried ``accumulator.offer`` first (this is what it declined). False
        when ``drop_newest`` dropped it at the call (on the loop thread; from another
        thread the loop decides later, and ``on_drop`` hears of a drop)."""
        if threading.get_ident() == self._thread_id:
            self._check_admission()
            acc = self._acc
            if self._block and acc.full(len(payload)):
                self._rec.refused += 1
                raise QueueFullError("delivery queue full; a non-waiting call cannot block")
            return acc.admit(payload) is not DROPPED_ON_ARRIVAL
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
            self.start()
            return self.admit_nowait(payload)
        self._check_admission()
        loop.call_soon_threadsafe(self._admit_from_thread, payload)
        return True

    def _admit_from_thread(self, payload: bytes) -> None:
        if self._closing or self._dead is not None:
            self._rec.admitted += 1
            self._settle_dropped([payload], "shutdown" if self._closing else "sender_died")
            return
        if self._block and self._acc.full(len(payload)):
            self._rec.admitted += 1
            self._settle_dropped([payload], "queue_full")
            return
        self._acc.admit(payload)

    # -- the sender task ---------------------------------------------------------------

    def _wake_sender(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _notify_space(self) -> None:
        if self._space is not None:
            self._space.set()

    async def _run(self) -> None:
        assert self._wake is not None
        assert self._slot_freed is not None
        assert self._loop is not None
        wake, freed, loop, acc = self._wake, self._slot_freed, self._loop, self._acc
        limit = self.concurrency
        while True:
            if not acc.ready():
                acc.sleeping()  # before clear(): see Accumulator.offer
                wake.clear()
                await wake.wait()
                continue
            pause = self._paused_until - loop.time()
            if pause > 0:
                # A 429 pauses the whole sender: no new batches until the pause ends.
                # Not asyncio.wait_for: before Python 3.12 it swallows a cancellation
                # that lands as the wait ends.
                wake.clear()
                timer = loop.call_later(pause, wake.set)
                try:
                    await wake.wait()
                finally:
                    timer.cancel()
                continue
            if len(self._inflight) >= limit.limit:
                freed.clear()
                await freed.wait()
                continue
            first, batch, waited = acc.take()
            if not batch.items:
                continue
            batch_id = next(self._batch_ids)
            fresh = len(self._inflight) >= self._peak
            if fresh:
                self._peak = len(self._inflight) + 1
            flight = _Flight(first, batch.items, batch.ids, waited, fresh)
            self._inflight[batch_id] = flight
            _task = self._tasks.spawn(self._deliver_batch(batch_id, flight), "cio_async-batch")

    def _sender_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            # Cancelled by close(), or by the loop shutting down under a client that
            # was never closed: nothing admitted from now on may wait for this loop.
            self._acc.suspend()
            return
        exc = task.exception()
        if exc is None:
            return
        # Nothing may hang on a dead sender: fail everything queued with its error.
        self._dead = exc
        self._acc.close()
        log.error("cio_async sender task died; failing queued operations", exc_info=exc)
        self._settle_failed(self._acc.drain(), exc, "sender_died")
        self._on_failure(exc, None)
        self._check_flush_waiters(force=True)

    # -- delivery ----------------------------------------------------------------------

    async def _deliver_batch(self, batch_id: int, flight: _Flight) -> None:
        try:
            await self._deliver(flight, 0, len(flight.items))
        except asyncio.CancelledError:
            # Cancelled by aclose() past its deadline: hand what is left to on_drop.
            self._settle_dropped_flight(flight, "shutdown")
            raise
        except Exception as exc:
            self._settle(flight, range(len(flight.items)), "failed", exc, "internal")
            raise
        finally:
            del self._inflight[batch_id]
            if self._probe is flight:
                self._probe = None
            assert self._slot_freed is not None
            self._slot_freed.set()
            self._check_flush_waiters()

    async def _deliver(self, flight: _Flight, lo: int, hi: int) -> None:
        policy = self._policy.retry
        endpoint = self._endpoint
        rec = self._rec
        items = flight.items[lo:hi]
        n = hi - lo
        body = endpoint.body(items)
        started = time.monotonic()
        attempt = 0
        blame: _Blame | None = None
        while True:
            await self._respect_pause()
            t0 = time.monotonic()
            try:
                resp = await endpoint.send(body, retry_headers(attempt))
            except (BadRequestError, RequestTooLargeError) as exc:
                rec.batch_sent(n, len(body), exc.status, time.monotonic() - t0)
                self._succeeded()  # the server answered: it is up
                if n == 1:
                    reason = "too_large" if isinstance(exc, RequestTooLargeError) else "rejected"
                    err = OperationRejectedError(reason, "", str(exc), exc.status)
                    self._settle(flight, range(lo, hi), "failed", err, reason)
                    return
                # Isolate the bad operation(s): the halves go in order, so operations
                # for the same person keep their relative order.
                mid = lo + n // 2
                await self._deliver(flight, lo, mid)
                await self._deliver(flight, mid, hi)
                return
            except (AuthenticationError, PermissionDeniedError) as exc:
                rec.batch_sent(n, len(body), exc.status, time.monotonic() - t0)
                self._settle(flight, range(lo, hi), "failed", exc, "auth")
                # Credentials do not fix themselves: fail what is queued now too.
                self._settle_failed(self._acc.drain(), exc, "auth")
                self._check_flush_waiters()
                return
            except CustomerIOError as exc:
                seconds = time.monotonic() - t0
                if isinstance(exc, APIStatusError):
                    rec.batch_sent(n, len(body), exc.status, seconds)
                if _server_error(exc):
                    if blame is None:
                        blame = _Blame(self._answered)
                        if n == len(flight.items):
                            # Once per batch (not per retry, not per half): a bad
                            # operation must not throttle every other batch down to one
                            # in flight, which would also starve the evidence that
                            # isolates it.
                            self.concurrency.congested()
                    if self._blamed(blame):
                        await self._isolate(flight, lo, hi, exc)
                        return
                elif isinstance(exc, (RateLimitError, APIConnectionError)) or (
                    isinstance(exc, APIStatusError) and exc.status >= 500
                ):
                    self.concurrency.congested()
                attempt += 1
                delay = retry_delay(policy, attempt, exc, time.monotonic() - started)
                if delay is None:
                    reason = "retries_exhausted" if exc.retryable else "error"
                    self._settle(flight, range(lo, hi), "failed", exc, reason)
                    return
                if isinstance(exc, RateLimitError):
                    self._pause(delay)
                rec.retry(endpoint.op, attempt, delay, exc)
                await self._backoff(flight, delay, exc)
                continue
            seconds = time.monotonic() - t0
            rec.batch_sent(n, len(body), resp.status, seconds)
            self.concurrency.succeeded(seconds, len(self._inflight), flight.fresh)
            flight.fresh = False  # its halves and retries reuse the connection
            self._succeeded()
            bad = endpoint.rejected(resp, n)
            if not bad:
                self._settle(flight, range(lo, hi), "delivered")
                return
            self._settle(flight, [lo + i for i in range(n) if i not in bad], "delivered")
            for i, err in bad.items():
                self._settle(flight, (lo + i,), "failed", err, "rejected")
            return

    def _blamed(self, blame: _Blame) -> bool:
        """Count one more server error against a batch; True when the evidence points
        at the batch, not the service: ``ISOLATE_AFTER`` of them, and some other
        request answered since the first."""
        blame.count += 1
        return blame.count >= ISOLATE_AFTER and self._answered > blame.mark

    async def _isolate(self, flight: _Flight, lo: int, hi: int, exc: APIStatusError) -> None:
        """Isolate the operation a server error is blamed on: split in halves (in
        order, each under the normal retry rule), or fail a lone operation for good."""
        if hi - lo == 1:
            err = OperationRejectedError("server_error", "", str(exc), exc.status)
            self._settle(flight, (lo,), "failed", err, "server_error")
            return
        mid = lo + (hi - lo) // 2
        await self._deliver(flight, lo, mid)
        await self._deliver(flight, mid, hi)

    async def _backoff(self, flight: _Flight, delay: float, exc: CustomerIOError) -> None:
        """Sleep ``delay`` seconds, or less: the first batch to back off during an
        outage is the probe and retries at least every ``PROBE_INTERVAL`` (never
        before a ``Retry-After``), and any request that succeeds wakes every sleeper."""
        assert self._loop is not None
        if self._probe is None or self._probe is flight:
            self._probe = flight
            floor = getattr(exc, "retry_after", None) or 0.0
            delay = min(delay, max(PROBE_INTERVAL, floor))
        fut: asyncio.Future[None] = self._loop.create_future()
        timer = self._loop.call_later(delay, _resolve, fut)
        self._sleepers.add(fut)
        try:
            await fut
        finally:
            timer.cancel()
            self._sleepers.discard(fut)

    def _succeeded(self) -> None:
        """A request was answered: the outage (if any) is over; wake every batch
        asleep in backoff so delivery resumes now rather than after its sleep."""
        self._probe = None
        self._answered += 1
        if self._sleepers:
            for fut in self._sleepers:
                _resolve(fut)

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

    def _settle(
        self,
        flight: _Flight,
        positions: Sequence[int] | range,
        outcome: str,
        exc: BaseException | None = None,
        reason: str = "",
    ) -> None:
        """Settle these positions of an in-flight batch (skipping any already settled)."""
        done = flight.settled
        items = flight.items
        if not done and done is not _ALL and len(positions) == len(items):
            # The common case, a whole batch at once: no per-item bookkeeping.
            todo: Sequence[int] = range(len(items))
            chosen = items
            flight.settled = _ALL
        else:
            todo = [p for p in positions if p not in done]
            if not todo:
                return  # (a batch settled whole contains every position)
            done.update(todo)
            chosen = [items[p] for p in todo]
        flight.open -= len(todo)
        if flight.ids is not None:
            ids = flight.ids
            self.backend.ack([ids[p] for p in todo])
        if outcome == "delivered":
            self._rec.delivered += len(chosen)
            if flight.waited:
                for it in chosen:
                    if type(it) is Waited and not it.future.done():
                        it.future.set_result(None)
        else:
            assert exc is not None
            self._settle_failed(chosen, exc, reason)

    def _settle_dropped_flight(self, flight: _Flight, reason: str) -> None:
        todo = [p for p in range(len(flight.items)) if p not in flight.settled]
        if not todo:
            return
        flight.settled.update(todo)
        flight.open -= len(todo)
        if flight.ids is not None:
            ids = flight.ids
            self.backend.give_back([ids[p] for p in todo])
        self._settle_dropped([flight.items[p] for p in todo], reason)

    def _settle_failed(self, items: Sequence[bytes], exc: BaseException, reason: str) -> None:
        if not items:
            return
        self._rec.failed[reason] += len(items)
        log.warning("%d operation(s) failed (%s): %s", len(items), reason, exc)
        for it in items:
            if type(it) is Waited and not it.future.done():
                it.future.set_exception(exc)
            self._on_failure(exc, _op_of(it))

    def _settle_dropped(self, items: list[bytes], reason: str) -> None:
        """Hand dropped items to ``on_drop`` (lazily decoded) and count them. The log
        gets one warning when an episode of drops starts and one line with the count
        when it ends (``DROP_EPISODE_GAP`` seconds without a drop, or shutdown), not a
        line per operation."""
        if not items:
            return
        self._episodes.dropped(reason, len(items))
        rec, on_drop = self._rec, self._on_drop
        for it in items:
            op = it.op if type(it) is Waited else Operation.lazy(it)
            rec.drop(op, reason)
            on_drop(op, reason)
            if type(it) is Waited and not it.future.done():
                it.future.set_exception(DeliveryAbandonedError(reason))
        if reason == "shutdown":
            self._episodes.end()

    # -- flush and close ---------------------------------------------------------------

    def _flush_done(self, target: int) -> bool:
        if self._acc.head_seq < target:
            return False
        return all(f.first >= target or not f.open for f in self._inflight.values())

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
        """Operations admitted before sequence number ``target`` not yet settled."""
        acc = self._acc
        pending = max(0, min(acc.events, target - acc.head_seq))
        for f in self._inflight.values():
            if f.first < target and f.open:
                before = range(min(len(f.items), target - f.first))
                pending += sum(1 for p in before if p not in f.settled)
        return pending

    async def flush(self, timeout: float | None) -> FlushResult:
        """Send everything admitted so far now; wait until settled or ``timeout``."""
        if self._loop is None:
            return FlushResult(0, 0, 0, 0)
        rec = self._rec
        d0, f0, x0 = rec.delivered, sum(rec.failed.values()), sum(rec.dropped.values())
        target = self._acc.flush_to()
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
        and cancel and await every task.

        Handing each undelivered operation to ``on_drop`` costs time per operation, so
        the flush deadline is shortened by an estimate of it: ``close`` returns close
        to ``timeout`` even with a full queue."""
        self.stop_admission()
        if self._loop is None:
            await self.backend.aclose()
            return FlushResult(0, 0, 0, 0)
        flush_timeout = timeout
        if timeout is not None:
            flush_timeout = max(0.0, timeout - self._acc.events * _DROP_COST)
        result = await self.flush(flush_timeout)
        x0 = sum(self._rec.dropped.values())
        # Past the deadline: stop the sender so it starts nothing new, cancel in-flight
        # deliveries (their items go to on_drop as "shutdown"), then drop what is queued.
        sender = self._sender
        if sender is not None and not sender.done():
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
        await self._tasks.cancel_all()
        self._settle_dropped(self._acc.drain(), "shutdown")
        self._episodes.end()
        self._check_flush_waiters(force=True)
        await self.backend.aclose()
        dropped = sum(self._rec.dropped.values()) - x0
        return FlushResult(result.delivered, result.failed, result.dropped + dropped, 0)


#: Seconds ``close`` budgets per queued operation for handing it to ``on_drop``.
_DROP_COST = 1.5e-6


def _server_error(exc: CustomerIOError) -> TypeGuard[APIStatusError]:
    """A 5xx that may be the request's fault (not a gateway's or an unavailable
    service's: 502/503/504, a CDN's 52x)."""
    return (
        isinstance(exc, APIStatusError)
        and exc.status >= 500
        and exc.status not in _SERVICE_STATUSES
    )


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


__all__ = ["FlushResult", "Sender"]
