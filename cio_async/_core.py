"""``ClientCore``: the lifecycle the queueing clients share.

``AsyncCustomerIO`` (Track) and ``AsyncPipelines`` differ in how a call is encoded and
where its batch goes (the endpoint). Everything else about a client lives here, once:
the state machine, the sender and admission onto it (``_enqueue``), the tasks the
client owns, ``start``/``flush``/``aclose`` with the shutdown deadline, the
unclosed-client warning, the wrappers around the user's ``on_error``/``on_drop`` and
the rebuild in a forked child.

A base class rather than a part the clients hold: the clients' hot admission paths
call ``self._enqueue`` and read ``self._offer`` directly, with no extra hop.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import warnings
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from ._errors import ClientClosedError
from ._lastresort import LastResort, failure_kind, lost_summary
from ._model import Operation
from ._stats import Recorder, Stats
from ._tasks import TaskSet
from .delivery import ADMITTED_YIELD, DECLINED, BatchEndpoint, FlushResult, QueueBackend, Sender
from .http._transport import Transport

if TYPE_CHECKING:
    from ._config import BatchPolicy
    from .spool import SpoolBackend

__all__ = ["ClientCore"]

log = logging.getLogger("cio_async")
T = TypeVar("T")
C = TypeVar("C", bound="ClientCore")

#: An awaitable the client runs at close, after its tasks and before its transport.
Closer = Callable[[], Awaitable[None]]


class _Config(Protocol):
    """What the core reads of a client's (frozen) configuration."""

    @property
    def batch(self) -> BatchPolicy: ...

    @property
    def slow_call_threshold(self) -> float | None: ...


class _State(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    CLOSING = "closing"
    CLOSED = "closed"


#: Clients that may need rebuilding in a forked child (see ``ClientCore._after_fork``).
_LIVE: weakref.WeakSet[ClientCore] = weakref.WeakSet()
#: What forked children dropped from their parent's clients: referenced forever so that
#: no finalizer closes (or warns about) the parent's session and tasks in the child.
_FORK_ORPHANS: list[object] = []


def _reset_clients_in_child() -> None:
    for client in list(_LIVE):
        try:
            client._after_fork()
        except Exception:  # an at-fork hook must not raise into os.fork()
            log.exception("cio_async: could not reset a client after fork")


# A hook, not a pid check on every call: the hot paths stay as they are.
os.register_at_fork(after_in_child=_reset_clients_in_child)


class ClientCore:
    """The lifecycle of a client that queues encoded calls for a ``Sender``.

    Internal. A client calls ``_open`` once with the user's callbacks; it builds its
    parts in ``_wire`` (again in a forked child) ending with ``_wire_sender``, and
    admits encoded payloads with ``_enqueue``/``_enqueue_nowait``/``_submit``.
    Subclass hooks: ``_unsent`` (an operation will not be delivered), ``_for_user``
    (what ``on_error``/``on_drop`` receive) and ``_closers`` (awaited at close).
    """

    _state: _State = _State.CLOSED  # keeps __del__ quiet if __init__ raised
    #: What the client queues, in log messages: "operation" (Track), "call" (Pipelines).
    _unit: ClassVar[str] = "operation"
    #: Set by clients that tell an application without logging about lost operations.
    _last_resort: LastResort | None = None

    _config: _Config
    _rec: Recorder
    _transport: Transport
    _delivery: Sender
    #: The one admission path: ``offer`` of ready bytes to the accumulator.
    _offer: Callable[[bytes], int]
    _tasks: TaskSet
    _closers: list[Closer]
    _closing: asyncio.Future[FlushResult] | None
    _user_on_error: Callable[..., Any] | None
    _user_on_drop: Callable[..., Any] | None

    # -- construction ------------------------------------------------------------------

    def _open(
        self,
        recorder: Recorder,
        on_error: Callable[..., Any] | None,
        on_drop: Callable[..., Any] | None,
    ) -> None:
        """Once, at the end of construction: keep the callbacks, build the parts
        (``_wire``) and watch for forks."""
        self._user_on_error = on_error
        self._user_on_drop = on_drop
        self._wire(recorder)
        _LIVE.add(self)

    def _wire(self, recorder: Recorder) -> None:
        """Build the client's parts (the subclass's); ends with ``_wire_sender``."""
        raise NotImplementedError

    def _wire_sender(
        self,
        endpoint: BatchEndpoint,
        policy: BatchPolicy,
        backend: QueueBackend | None,
        pool_size: int,
    ) -> None:
        """The sender, its admission path and the task set; the client is then NEW."""
        self._delivery = Sender(
            endpoint,
            policy,
            self._rec,
            on_failure=self._operation_failed,
            on_drop=self._operation_dropped,
            backend=backend,
            pool_size=pool_size,
        )
        self._offer = self._delivery.accumulator.offer
        self._tasks = TaskSet(self._task_failed)
        self._closers = []
        self._closing = None
        self._state = _State.NEW

    def _after_fork(self) -> None:
        """In a forked child: start afresh on first use.

        The inherited session, sender task, queue and whatever else the client built
        belong to the parent's loop, which does not run here; the parent still
        delivers its own queue. They are dropped, never closed (closing would touch
        the parent's sockets), and kept referenced so their finalizers never run in
        this process. A borrowed ``session`` or a custom ``queue`` is the caller's and
        is kept as given.
        """
        if self._state in (_State.CLOSING, _State.CLOSED):
            return  # the parent is closing it: it stays closed here
        # A NEW client may be bound too (direct calls start the transport without the
        # pipeline), so every open client is rebuilt; an unbound one cheaply.
        _FORK_ORPHANS.append((self._transport, self._delivery, self._tasks, self._closers))
        self._wire(Recorder(self._rec.hooks, self._config.slow_call_threshold))

    # -- state -------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once ``aclose()`` has begun."""
        return self._state in (_State.CLOSING, _State.CLOSED)

    def _snapshot(self, dedup_entries: int = 0, spool: SpoolBackend | None = None) -> Stats:
        return self._rec.snapshot(
            admitted=self._delivery.admitted,
            queue_depth=self._delivery.queue_depth,
            queue_bytes=self._delivery.queue_bytes,
            in_flight_batches=self._delivery.in_flight,
            concurrency_limit=self._delivery.concurrency.limit,
            in_flight_requests=self._transport.in_flight,
            connections_opened=self._transport.connections_opened,
            dedup_entries=dedup_entries,
            background_errors=self._rec.background_errors,
            spool=spool.stats() if spool is not None else None,
        )

    # -- callbacks ---------------------------------------------------------------------

    def _unsent(self, op: Operation) -> None:
        """Hook: ``op`` failed or was dropped (e.g. forget it in a dedup cache)."""

    def _for_user(self, op: Operation) -> object:
        """Hook: what ``on_error``/``on_drop`` receive for a queued ``op``."""
        return op

    def _call_user(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            result = fn(*args)
            if asyncio.iscoroutine(result):
                _task = self._tasks.spawn(result, "cio_async-callback")
        except Exception:
            log.exception("cio_async callback %r raised; ignored", fn)

    def _operation_failed(self, exc: BaseException, op: Operation | None) -> None:
        if op is not None:
            self._unsent(op)
        if self._user_on_error is not None:
            self._call_user(self._user_on_error, exc, None if op is None else self._for_user(op))
        elif op is not None and self._last_resort is not None:
            # Nobody is told otherwise when the application configured no logging.
            self._last_resort.report(
                failure_kind(exc),
                f"deliveries to Customer.io are failing ({type(exc).__name__}: {exc}); "
                f"the {self._unit}s are lost. Configure logging or pass on_error= to see "
                "each failure.",
            )

    def _operation_dropped(self, op: Operation, reason: str) -> None:
        self._unsent(op)
        if self._user_on_drop is not None:
            self._call_user(self._user_on_drop, self._for_user(op), reason)

    def _task_failed(self, exc: BaseException, name: str) -> None:
        self._rec.background_errors += 1
        log.error("cio_async background task %s failed: %r", name, exc, exc_info=exc)
        if self._user_on_error is not None:
            self._call_user(self._user_on_error, exc, None)

    # -- lifecycle ---------------------------------------------------------------------

    def _check_open(self) -> None:
        state = self._state
        if state is _State.RUNNING:
            return
        if state is _State.NEW:
            self._state = _State.RUNNING
            return
        raise ClientClosedError(f"the client is closed; create a new {type(self).__name__}")

    async def start(self) -> None:
        """Bind to the running loop and start the sender (done lazily otherwise)."""
        self._check_open()
        self._delivery.start()

    async def __aenter__(self: C) -> C:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def flush(self, timeout: float | None = None) -> FlushResult:
        """Send everything admitted so far and wait until each one was delivered or
        failed, or ``timeout`` seconds passed. Returns what happened."""
        return await self._delivery.flush(timeout)

    async def aclose(self, timeout: float | None = None) -> FlushResult:
        """Stop accepting calls, flush with a deadline (default
        ``config.batch.shutdown_timeout``), hand everything still undelivered to
        ``on_drop`` with reason ``shutdown``, cancel and await every task the client
        owns, and close the session if the client created it.

        Idempotent: later calls return the first call's result. Cancelling the caller
        does not abort the cleanup halfway.
        """
        if self._closing is None:
            self._state = _State.CLOSING
            self._delivery.stop_admission()
            deadline = self._config.batch.shutdown_timeout if timeout is None else timeout
            self._closing = asyncio.ensure_future(self._shutdown(deadline))
        return await asyncio.shield(self._closing)

    async def _shutdown(self, timeout: float) -> FlushResult:
        try:
            result = await self._delivery.close(timeout)
            await self._tasks.cancel_all()
            for close in self._closers:
                await close()
        finally:
            try:
                await self._transport.aclose()
            finally:
                self._state = _State.CLOSED
        if result.dropped:
            log.warning("cio_async closed with %d %s(s) undelivered", result.dropped, self._unit)
        if self._last_resort is not None:
            lost = lost_summary(self._rec.failed, self._rec.dropped)
            if lost:
                self._last_resort.report(
                    "closed", f"closed with {self._unit}s lost since the client started: {lost}"
                )
        return result

    def spawn(
        self, coro: Coroutine[Any, Any, T], *, name: str = "cio_async-task"
    ) -> asyncio.Task[T]:
        """Run ``coro`` in the background, owned by the client.

        The client keeps a strong reference, reports a failure to ``on_error``, the
        log and ``stats().background_errors``, and cancels it on ``aclose()``. Use it
        for calls that cannot be batched, e.g.
        ``cio.spawn(cio.v1.submit_form("signup", data))``.
        """
        try:
            self._check_open()
        except ClientClosedError:
            coro.close()
            raise
        return self._tasks.spawn(coro, name)

    def __del__(self, _warn: Any = warnings.warn) -> None:
        if self._state is _State.CLOSED:
            return
        transport = getattr(self, "_transport", None)
        pipeline = getattr(self, "_delivery", None)
        started = (transport is not None and transport.started and not transport.closed) or (
            pipeline is not None and pipeline.started
        )
        if not started:
            return
        _warn(
            f"unclosed {self!r}: call 'await client.aclose()' or use 'async with'",
            ResourceWarning,
            source=self,
            stacklevel=2,
        )
        last_resort = self._last_resort
        queued = pipeline.queue_depth if pipeline is not None else 0
        batches = pipeline.in_flight if pipeline is not None else 0
        if last_resort is not None and (queued or batches):
            message = (
                f"an {type(self).__name__} was never closed: {queued} queued {self._unit}(s)"
                + (f" and {batches} batch(es) in flight" if batches else "")
                + " were lost; call 'await client.aclose()' or use 'async with'"
            )
            log.error("cio_async: %s", message)
            last_resort.report("unclosed", message)

    # -- admission ---------------------------------------------------------------------

    async def _enqueue(self, op: Operation | bytes, wait: bool, offered: bool = False) -> bool:
        """Admit ``op``; False when ``drop_newest`` dropped it at the call. ``offered``:
        the caller already offered it and the accumulator declined."""
        if not wait and not offered:
            # The common case: queued synchronously, no further coroutine frames.
            # (``_offer`` read, then called: a method call on an instance attribute
            # does not specialise in CPython, an attribute read does.)
            offer = self._offer
            admitted = offer(op.payload if isinstance(op, Operation) else op)
            if admitted != DECLINED:
                if admitted == ADMITTED_YIELD:
                    await asyncio.sleep(0)  # once per batch: let the sender run
                return True
        if self._state is not _State.RUNNING:
            self._check_open()
        fut = await self._delivery.admit(op, wait)
        if fut is False:
            return False
        if fut is not None:
            # Shielded: cancelling this caller does not cancel the delivery.
            await asyncio.shield(fut)
        return True

    def _enqueue_nowait(self, payload: bytes, offered: bool = False) -> bool:
        """Queue ``payload``; False when ``drop_newest`` dropped it at the call."""
        offer = self._offer  # read, then called (see ``_enqueue``)
        if not offered and offer(payload) != DECLINED:
            return True
        if self._state is not _State.RUNNING:
            self._check_open()
        return self._delivery.admit_nowait(payload)

    async def _submit(self, op: Operation | bytes, urgent: bool) -> asyncio.Future[None]:
        """Admit ``op`` with a future for its delivery (a drop fails the future)."""
        if self._state is not _State.RUNNING:
            self._check_open()
        fut = await self._delivery.admit(op, True, urgent)
        assert isinstance(fut, asyncio.Future)  # with a waiter, a drop fails the future
        return fut
