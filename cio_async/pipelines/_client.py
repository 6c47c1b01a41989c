"""``AsyncPipelines``: the Customer.io Data Pipelines client.

A second encoder and endpoint on the same delivery pipeline as ``AsyncCustomerIO``:
calls are validated and encoded at the call, queued as bytes, batched into
``/v1/batch`` requests, retried (with the same ``messageId``), split on a 400 until
the bad call is isolated, and settled exactly once (delivered, failed to
``on_error``, dropped to ``on_drop``).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import warnings
from collections.abc import Callable, Coroutine, Iterable, Mapping
from types import TracebackType
from typing import Any, TypeVar

import aiohttp

from .._config import BatchPolicy, ClientConfig, PoolConfig, RetryPolicy
from .._dropped import DROPPED
from .._errors import ClientClosedError, ConfigurationError
from .._model import Operation
from .._stats import Hooks, Recorder, Stats
from .._tasks import TaskSet
from ..delivery import ADMITTED_YIELD, DECLINED, FlushResult, QueueBackend, Sender
from ..http._transport import Transport
from ._encode import Encoder, PipelinesCall, track_encoder
from ._endpoint import PipelinesConfig, PipelinesEndpoint, warn_region_mismatch

__all__ = ["AsyncPipelines"]

log = logging.getLogger("cio_async")
T = TypeVar("T")

#: ``on_error(exc, call)``: ``call`` is None for a failed background task.
OnCallError = Callable[[BaseException, "PipelinesCall | None"], Any]
#: ``on_drop(call, reason)``.
OnCallDrop = Callable[[PipelinesCall, str], Any]


class _State(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    CLOSING = "closing"
    CLOSED = "closed"


class AsyncPipelines:
    """The asyncio client for Customer.io's Data Pipelines API (``cdp.customer.io/v1``).

    The Segment-style calls (``identify``, ``track``, ``page``, ``screen``,
    ``group``, ``alias`` and a raw ``batch``) validate and encode the call, queue it
    and return its ``messageId`` at once; ``wait=True`` waits until Customer.io
    accepted it (or raises what stopped it); ``*_nowait`` never awaits and may be
    called from other threads once the client runs; ``submit`` returns a future.

    Args:
        write_key: the source's write key (HTTP Basic user, empty password).
        region: ``"us"`` or ``"eu"``; default: the region the key names
            (``pk_eu_...``), else US. A key sent to the other region's host warns
            (``PipelinesRegionWarning``): Customer.io would answer 200 and keep nothing.
        url: another base URL (a proxy, ``StandIn.pipelines_url``).
        strict: send ``X-Strict-Mode: 1`` (default) so invalid calls and bad keys are
            answered 400/401 instead of a 200 that drops them.
        gzip: compress batch bodies (off by default; see the README).
        context, integrations: defaults every call carries; a call's own keys win.
        config: a full ``PipelinesConfig``; exclusive with the arguments above.
        pool, retry, batch: override those parts of the configuration.
        session: an ``aiohttp.ClientSession`` to borrow (never closed here).
        on_error, on_drop, hooks, queue: as for ``AsyncCustomerIO``.

    Use ``async with AsyncPipelines(key) as cdp:`` or ``await cdp.aclose()``.
    """

    _state: _State = _State.CLOSED  # keeps __del__ quiet if __init__ raised

    def __init__(
        self,
        write_key: str | None = None,
        *,
        region: str | None = None,
        url: str | None = None,
        strict: bool | None = None,
        gzip: bool | None = None,
        context: Mapping[str, Any] | None = None,
        integrations: Mapping[str, Any] | None = None,
        config: PipelinesConfig | None = None,
        pool: PoolConfig | None = None,
        retry: RetryPolicy | None = None,
        batch: BatchPolicy | None = None,
        session: aiohttp.ClientSession | None = None,
        on_error: OnCallError | None = None,
        on_drop: OnCallDrop | None = None,
        hooks: Iterable[Hooks] = (),
        queue: QueueBackend | None = None,
    ) -> None:
        changes: dict[str, Any] = {
            k: v
            for k, v in (
                ("strict", strict),
                ("gzip", gzip),
                ("context", context),
                ("integrations", integrations),
                ("pool", pool),
                ("retry", retry),
                ("batch", batch),
            )
            if v is not None
        }
        if config is not None:
            if write_key or region or url:
                raise ConfigurationError("pass either config= or write_key/region/url, not both")
            if changes:
                config = config.replace(**changes)
        else:
            if write_key is None:
                raise ConfigurationError("a Pipelines client needs write_key (or config=)")
            config = PipelinesConfig(write_key=write_key, region=region, url=url, **changes)
        if session is not None and not isinstance(session, aiohttp.ClientSession):
            raise ConfigurationError("session must be an aiohttp.ClientSession")
        warn_region_mismatch(config)
        self._config = config
        self._user_on_error = on_error
        self._user_on_drop = on_drop
        self._rec = Recorder(hooks, config.slow_call_threshold)
        self._encoder = Encoder(config.context, config.integrations)
        #: The common track call, encoded in one frame (see ``track_encoder``).
        self._fast_track = track_encoder(self._encoder)
        self._transport = Transport(
            ClientConfig(
                pool=config.pool,
                retry=config.retry,
                batch=config.batch,
                user_agent=config.user_agent,
                slow_call_threshold=config.slow_call_threshold,
            ),
            session,
            on_request=self._rec.request_end,
            on_retry=self._rec.retry,
            on_start=self._rec.request_start if self._rec.hooks else None,
            cdp=(config.base_url, config.authorization()),
        )
        # The same delivery core as the Track client: only the encoder (here) and the
        # endpoint (the wire format) differ.
        self._delivery = Sender(
            PipelinesEndpoint(config, self._transport),
            config.batch,
            self._rec,
            on_failure=self._call_failed,
            on_drop=self._call_dropped,
            backend=queue,
            pool_size=config.pool.max_connections,
        )
        #: The one admission path: ``offer`` of ready bytes to the accumulator.
        self._offer = self._delivery.accumulator.offer
        self._tasks = TaskSet(self._task_failed)
        self._closing: asyncio.Future[FlushResult] | None = None
        self._state = _State.NEW

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **kwargs: Any) -> AsyncPipelines:
        """A client from ``CUSTOMERIO_WRITE_KEY`` (and ``CUSTOMERIO_PIPELINES_REGION``,
        ``CUSTOMERIO_PIPELINES_URL`` when set); keyword arguments win."""
        e = os.environ if env is None else env
        kwargs.setdefault("write_key", e.get("CUSTOMERIO_WRITE_KEY"))
        kwargs.setdefault("region", e.get("CUSTOMERIO_PIPELINES_REGION") or None)
        kwargs.setdefault("url", e.get("CUSTOMERIO_PIPELINES_URL") or None)
        return cls(**kwargs)

    # -- properties --------------------------------------------------------------------

    @property
    def config(self) -> PipelinesConfig:
        """The frozen configuration."""
        return self._config

    @property
    def closed(self) -> bool:
        """True once ``aclose()`` has begun."""
        return self._state in (_State.CLOSING, _State.CLOSED)

    @property
    def context(self) -> dict[str, Any]:
        """The default context every call carries (with ``library``)."""
        return self._encoder.context

    def __repr__(self) -> str:
        return (
            f"<AsyncPipelines region={self._config.resolved_region!r} "
            f"url={self._config.base_url!r} state={self._state.value}>"
        )

    def stats(self) -> Stats:
        """A typed snapshot of counters, queue depth and latency."""
        return self._rec.snapshot(
            admitted=self._delivery.admitted,
            queue_depth=self._delivery.queue_depth,
            queue_bytes=self._delivery.queue_bytes,
            in_flight_batches=self._delivery.in_flight,
            concurrency_limit=self._delivery.concurrency.limit,
            in_flight_requests=self._transport.in_flight,
            connections_opened=self._transport.connections_opened,
            dedup_entries=0,
            background_errors=self._rec.background_errors,
        )

    # -- callbacks ---------------------------------------------------------------------

    def _call_user(self, fn: Any, *args: Any) -> None:
        try:
            result = fn(*args)
            if asyncio.iscoroutine(result):
                _task = self._tasks.spawn(result, "cio_async-callback")
        except Exception:
            log.exception("cio_async callback %r raised; ignored", fn)

    # The sender reports queued payloads as (lazily decoded) Operations; the payload
    # is the call's, so the callbacks get it as a PipelinesCall.

    def _call_failed(self, exc: BaseException, op: Operation | None) -> None:
        if self._user_on_error is not None:
            call = None if op is None else PipelinesCall.from_payload(op.payload)
            self._call_user(self._user_on_error, exc, call)

    def _call_dropped(self, op: Operation, reason: str) -> None:
        if self._user_on_drop is not None:
            self._call_user(self._user_on_drop, PipelinesCall.from_payload(op.payload), reason)

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
        raise ClientClosedError("the client is closed; create a new AsyncPipelines")

    async def start(self) -> None:
        """Bind to the running loop and start the sender (done lazily otherwise)."""
        self._check_open()
        self._delivery.start()

    async def __aenter__(self) -> AsyncPipelines:
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
        """Send everything queued so far; wait until each call was delivered or
        failed, or ``timeout`` seconds passed. Returns what happened."""
        return await self._delivery.flush(timeout)

    async def aclose(self, timeout: float | None = None) -> FlushResult:
        """Stop accepting calls, flush with a deadline (default
        ``config.batch.shutdown_timeout``), hand what is still undelivered to
        ``on_drop`` (``shutdown``), and close everything the client owns. Idempotent."""
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
        finally:
            try:
                await self._transport.aclose()
            finally:
                self._state = _State.CLOSED
        if result.dropped:
            log.warning("cio_async closed with %d call(s) undelivered", result.dropped)
        return result

    def spawn(
        self, coro: Coroutine[Any, Any, T], *, name: str = "cio_async-task"
    ) -> asyncio.Task[T]:
        """Run ``coro`` in the background, owned (and cancelled on close) by the client."""
        try:
            self._check_open()
        except ClientClosedError:
            coro.close()
            raise
        return self._tasks.spawn(coro, name)

    def __del__(self, _warn: Any = warnings.warn) -> None:
        if self._state is _State.CLOSED:
            return
        pipeline = getattr(self, "_delivery", None)
        transport = getattr(self, "_transport", None)
        started = (transport is not None and transport.started and not transport.closed) or (
            pipeline is not None and pipeline.started
        )
        if started:
            _warn(
                f"unclosed {self!r}: call 'await client.aclose()' or use 'async with'",
                ResourceWarning,
                source=self,
                stacklevel=2,
            )

    # -- admission ---------------------------------------------------------------------

    async def _enqueue(self, call: PipelinesCall, wait: bool) -> str:
        return await self._enqueue_bytes(call.payload, call.message_id, wait)

    async def _enqueue_bytes(self, payload: bytes, message_id: str, wait: bool) -> str:
        if not wait:
            admitted = self._offer(payload)
            if admitted != DECLINED:
                if admitted == ADMITTED_YIELD:
                    await asyncio.sleep(0)  # once per batch: let the sender run
                return message_id
        if self._state is not _State.RUNNING:
            self._check_open()
        fut = await self._delivery.admit(payload, wait)
        if fut is False:
            return DROPPED  # drop_newest: the queue was full
        if fut is not None:
            # Shielded: cancelling this caller does not cancel the delivery.
            await asyncio.shield(fut)
        return message_id

    def _enqueue_nowait(self, call: PipelinesCall) -> str:
        return self._enqueue_bytes_nowait(call.payload, call.message_id)

    def _enqueue_bytes_nowait(self, payload: bytes, message_id: str) -> str:
        if self._offer(payload) != DECLINED:
            return message_id
        if self._state is not _State.RUNNING:
            self._check_open()
        if not self._delivery.admit_nowait(payload):
            return DROPPED  # drop_newest on the loop thread: the queue was full
        return message_id

    def _build(
        self,
        type_: str,
        fields: Mapping[str, Any],
        user_id: object,
        anonymous_id: object,
        context: object,
        integrations: object,
        timestamp: object,
        message_id: object,
    ) -> PipelinesCall:
        return self._encoder.call(
            type_,
            fields,
            user_id=user_id,
            anonymous_id=anonymous_id,
            context=context,
            integrations=integrations,
            timestamp=timestamp,
            message_id=message_id,
        )

    # -- the calls ---------------------------------------------------------------------

    async def identify(
        self,
        user_id: str | int | None = None,
        traits: Mapping[str, Any] | None = None,
        *,
        anonymous_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        integrations: Mapping[str, Any] | None = None,
        timestamp: object = None,
        message_id: str | None = None,
        wait: bool = False,
    ) -> str:
        """Create or update a person (``traits``). Returns the ``messageId``."""
        call = self._build(
            "identify",
            {"traits": traits},
            user_id,
            anonymous_id,
            context,
            integrations,
            timestamp,
            message_id,
        )
        return await self._enqueue(call, wait)

    def identify_nowait(
        self,
        user_id: str | int | None = None,
        traits: Mapping[str, Any] | None = None,
        *,
        anonymous_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        integrations: Mapping[str, Any] | None = None,
        timestamp: object = None,
        message_id: str | None = None,
    ) -> str:
        """``identify`` without awaiting; safe from any thread once started."""
        call = self._build(
            "identify",
            {"traits": traits},
            user_id,
            anonymous_id,
            context,
            integrations,
            timestamp,
            message_id,
        )
        return self._enqueue_nowait(call)

    async def track(
        self,
        user_id: str | int | None = None,
        event: str | None = None,
        properties: Mapping[str, Any] | None = None,
        *,
        anonymous_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        integrations: Mapping[str, Any] | None = None,
        timestamp: object = None,
        message_id: str | None = None,
        wait: bool = False,
    ) -> str:
        """Record ``event`` for a person. Returns the ``messageId``."""
        if (
            anonymous_id is None
            and context is None
            and integrations is None
            and timestamp is None
            and message_id is None
            and not wait
        ):
            fast = self._fast_track(user_id, event, properties)
            if fast is not None:
                # _enqueue_bytes' common case, inlined: the hottest call saves a frame.
                payload, mid = fast
                admitted = self._offer(payload)
                if admitted == DECLINED:
                    return await self._enqueue_bytes(payload, mid, False)
                if admitted == ADMITTED_YIELD:
                    await asyncio.sleep(0)  # once per batch: let the sender run
                return mid
        call = self._build(
            "track",
            {"event": event, "properties": properties},
            user_id,
            anonymous_id,
            context,
            integrations,
            timestamp,
            message_id,
        )
        return await self._enqueue(call, wait)

    def track_nowait(
        self,
        user_id: str | int | None = None,
        event: str | None = None,
        properties: Mapping[str, Any] | None = None,
        *,
        anonymous_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        integrations: Mapping[str, Any] | None = None,
        timestamp: object = None,
        message_id: str | None = None,
    ) -> str:
        """``track`` without awaiting: validates and queues, never blocks. Under the
        ``block`` policy a full queue raises ``QueueFullError`` on the loop thread
        (elsewhere the call is dropped with reason ``queue_full``, to ``on_drop``)."""
        if (
            anonymous_id is None
            and context is None
            and integrations is None
            and timestamp is None
            and message_id is None
        ):
            fast = self._fast_track(user_id, event, properties)
            if fast is not None:
                return self._enqueue_bytes_nowait(*fast)
        call = self._build(
            "track",
            {"event": event, "properties": properties},
            user_id,
            anonymous_id,
            context,
            integrations,
            timestamp,
            message_id,
        )
        return self._enqueue_nowait(call)

    async def page(
        self,
        user_id: str | int | None = None,
        category: str | None = None,
        name: str | None = None,
        properties: Mapping[str, Any] | None = None,
        *,
        anonymous_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        integrations: Mapping[str, Any] | None = None,
        timestamp: object = None,
        message_id: str | None = None,
        wait: bool = False,
    ) -> str:
        """Record a page view. Returns the ``messageId``."""
        call = self._build(
            "page",
            {"category": category, "name": name, "properties": properties},
            user_id,
            anonymous_id,
            context,
            integrations,
            timestamp,
            message_id,
        )
        return await self._enqueue(call, wait)

    def page_nowait(
        self,
        user_id: str | int | None = None,
        category: str | None = None,
        name: str | None = None,
        properties: Mapping[str, Any] | None = None,
        *,
        anonymous_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        integrations: Mapping[str, Any] | None = None,
        timestamp: object = None,
        message_id: str | None = None,
    ) -> str:
        """``page`` without awaiting (see ``track_nowait``)."""
        call = self._build(
            "page",
            {"category": category, "name": name, "properties": properties},
            user_id,
            anonymous_id,
            context,
            integrations,
            timestamp,
            message_id,
        )
        return self._enqueue_nowait(call)

    async def screen(
        self,
        user_id: str | int | None = None,
        category: str | None = None,
        name: str | None = None,
        properties: Mapping[str, Any] | None = None,
        *,
        anonymous_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        integrations: Mapping[str, Any] | None = None,
        timestamp: object = None,
        message_id: str | None = None,
        wait: bool = False,
    ) -> str:
        """Record a mobile screen view. Returns the ``messageId``."""
        call = self._build(
            "screen",
            {"category": category, "name": name, "properties": properties},
            user_id,
            anonymous_id,
            context,
            integrations,
            timestamp,
            message_id,
        )
        return await self._enqueue(call, wait)

    def screen_nowait(
        self,
        user_id: str | int | None = None,
        category: str | None = None,
        name: str | None = None,
        properties: Mapping[str, Any] | None = None,
        *,
        anonymous_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        integrations: Mapping[str, Any] | None = None,
        timestamp: object = None,
        message_id: str | None = None,
    ) -> str:
        """``screen`` without awaiting (see ``track_nowait``)."""
        call = self._build(
            "screen",
            {"category": category, "name": name, "properties": properties},
            user_id,
            anonymous_id,
            context,
            integrations,
            timestamp,
            message_id,
        )
        return self._enqueue_nowait(call)

    async def group(
        self,
        user_id: str | int | None = None,
        group_id: str | int | None = None,
        traits: Mapping[str, Any] | None = None,
        *,
        anonymous_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        integrations: Mapping[str, Any] | None = None,
        timestamp: object = None,
        message_id: str | None = None,
        wait: bool = False,
    ) -> str:
        """Relate a person to a group (an object), with the group's ``traits``."""
        call = self._build(
            "group",
            {"groupId": group_id, "traits": traits},
            user_id,
            anonymous_id,
            context,
            integrations,
            timestamp,
            message_id,
        )
        return await self._enqueue(call, wait)

    def group_nowait(
        self,
        user_id: str | int | None = None,
        group_id: str | int | None = None,
        traits: Mapping[str, Any] | None = None,
        *,
        anonymous_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        integrations: Mapping[str, Any] | None = None,
        timestamp: object = None,
        message_id: str | None = None,
    ) -> str:
        """``group`` without awaiting (see ``track_nowait``)."""
        call = self._build(
            "group",
            {"groupId": group_id, "traits": traits},
            user_id,
            anonymous_id,
            context,
            integrations,
            timestamp,
            message_id,
        )
        return self._enqueue_nowait(call)

    async def alias(
        self,
        previous_id: str | int | None = None,
        user_id: str | int | None = None,
        *,
        context: Mapping[str, Any] | None = None,
        integrations: Mapping[str, Any] | None = None,
        timestamp: object = None,
        message_id: str | None = None,
        wait: bool = False,
    ) -> str:
        """Merge ``previous_id`` (an earlier id) into ``user_id``."""
        call = self._build(
            "alias",
            {"previousId": previous_id},
            user_id,
            None,
            context,
            integrations,
            timestamp,
            message_id,
        )
        return await self._enqueue(call, wait)

    def alias_nowait(
        self,
        previous_id: str | int | None = None,
        user_id: str | int | None = None,
        *,
        context: Mapping[str, Any] | None = None,
        integrations: Mapping[str, Any] | None = None,
        timestamp: object = None,
        message_id: str | None = None,
    ) -> str:
        """``alias`` without awaiting (see ``track_nowait``)."""
        call = self._build(
            "alias",
            {"previousId": previous_id},
            user_id,
            None,
            context,
            integrations,
            timestamp,
            message_id,
        )
        return self._enqueue_nowait(call)

    async def batch(self, calls: Iterable[Mapping[str, Any]], *, wait: bool = False) -> list[str]:
        """Queue Segment-style call dicts (``{"type": "track", "userId": ...,
        "event": ...}``), checked like the typed calls; ``messageId`` and
        ``timestamp`` are filled in where absent. They must fit one request (500 KB);
        they join the queue in order and go out in batches with other calls. Returns
        the ``messageId`` of each; with ``wait=True`` waits for all (raising the first
        error)."""
        encoded = self._encoder.batch(calls)
        if not wait:
            for call in encoded:
                await self._enqueue(call, False)
            return [c.message_id for c in encoded]
        if self._state is not _State.RUNNING:
            self._check_open()
        futures = []
        last = len(encoded) - 1
        for n, call in enumerate(encoded):
            fut = await self._delivery.admit(call.payload, True, urgent=n == last)
            assert isinstance(fut, asyncio.Future)  # with wait, a drop settles the future
            futures.append(fut)
        await asyncio.shield(asyncio.gather(*futures))
        return [c.message_id for c in encoded]

    def batch_nowait(self, calls: Iterable[Mapping[str, Any]]) -> list[str]:
        """``batch`` without awaiting (see ``track_nowait``)."""
        encoded = self._encoder.batch(calls)
        return [self._enqueue_nowait(c) for c in encoded]

    async def submit(
        self, call: Mapping[str, Any] | PipelinesCall, *, urgent: bool = True
    ) -> asyncio.Future[None]:
        """Queue one call (a Segment-style dict or a ``PipelinesCall``) and return a
        future for its delivery without waiting for it. ``urgent`` (default) sends
        the current batch at once; ``urgent=False`` lets it wait for a full batch or
        the linger. Cancelling the future does not cancel delivery."""
        encoded = call if isinstance(call, PipelinesCall) else self._encoder.raw(call)
        if self._state is not _State.RUNNING:
            self._check_open()
        fut = await self._delivery.admit(encoded.payload, True, urgent)
        assert isinstance(fut, asyncio.Future)  # with wait, a drop settles the future
        return fut

    def build(self, call: Mapping[str, Any]) -> PipelinesCall:
        """Validate and encode a Segment-style call dict without queueing it."""
        return self._encoder.raw(call)
