"""``AsyncPipelines``: the Customer.io Data Pipelines client.

A second encoder and endpoint on the same delivery pipeline as ``AsyncCustomerIO``:
calls are validated and encoded at the call, queued as bytes, batched into
``/v1/batch`` requests, retried (with the same ``messageId``), split on a 400 until
the bad call is isolated, and settled exactly once (delivered, failed to
``on_error``, dropped to ``on_drop``).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

import aiohttp

from .._config import BatchPolicy, ClientConfig, PoolConfig, RetryPolicy
from .._core import ClientCore
from .._dropped import DROPPED
from .._errors import ConfigurationError
from .._model import Operation
from .._stats import Hooks, Recorder, Stats
from ..delivery import ADMITTED_YIELD, DECLINED, QueueBackend
from ..http._transport import Transport
from ._encode import Encoder, PipelinesCall, track_encoder
from ._endpoint import PipelinesConfig, PipelinesEndpoint, warn_region_mismatch

__all__ = ["AsyncPipelines"]

#: ``on_error(exc, call)``: ``call`` is None for a failed background task.
OnCallError = Callable[[BaseException, "PipelinesCall | None"], Any]
#: ``on_drop(call, reason)``.
OnCallDrop = Callable[[PipelinesCall, str], Any]


class AsyncPipelines(ClientCore):
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

    _unit: ClassVar[str] = "call"
    _config: PipelinesConfig

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
        self._session_arg = session
        self._queue_arg = queue
        self._encoder = Encoder(config.context, config.integrations)
        #: The common track call, encoded in one frame (see ``track_encoder``).
        self._fast_track = track_encoder(self._encoder)
        self._open(Recorder(hooks, config.slow_call_threshold), on_error, on_drop)

    def _wire(self, recorder: Recorder) -> None:
        """Build the transport and sender: at construction, and again in a forked
        child, where the parent's are bound to a loop that does not run."""
        config = self._config
        self._rec = recorder
        self._transport = Transport(
            ClientConfig(
                pool=config.pool,
                retry=config.retry,
                batch=config.batch,
                user_agent=config.user_agent,
                slow_call_threshold=config.slow_call_threshold,
            ),
            self._session_arg,
            on_request=self._rec.request_end,
            on_retry=self._rec.retry,
            on_start=self._rec.request_start if self._rec.hooks else None,
            cdp=(config.base_url, config.authorization()),
        )
        # The same delivery core as the Track client: only the encoder (here) and the
        # endpoint (the wire format) differ.
        self._wire_sender(
            PipelinesEndpoint(config, self._transport),
            config.batch,
            self._queue_arg,
            config.pool.max_connections,
        )

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
        return self._snapshot()

    # -- callbacks ---------------------------------------------------------------------

    # The sender reports queued payloads as (lazily decoded) Operations; the payload
    # is the call's, so the callbacks get it as a PipelinesCall.
    def _for_user(self, op: Operation) -> PipelinesCall:
        return PipelinesCall.from_payload(op.payload)

    # -- admission ---------------------------------------------------------------------

    async def _queue_call(self, call: PipelinesCall, wait: bool) -> str:
        return call.message_id if await self._enqueue(call.payload, wait) else DROPPED

    def _queue_call_nowait(self, call: PipelinesCall) -> str:
        return call.message_id if self._enqueue_nowait(call.payload) else DROPPED

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
        return await self._queue_call(call, wait)

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
        return self._queue_call_nowait(call)

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
            # Attributes read, then called: a method call on an instance attribute
            # does not specialise in CPython, an attribute read does.
            encode, offer = self._fast_track, self._offer
            fast = encode(user_id, event, properties)
            if fast is not None:
                # _enqueue's common case, inlined: the hottest call saves a frame.
                payload, mid = fast
                admitted = offer(payload)
                if admitted == DECLINED:
                    ok = await self._enqueue(payload, False, offered=True)
                    return mid if ok else DROPPED
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
        return await self._queue_call(call, wait)

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
            encode = self._fast_track
            fast = encode(user_id, event, properties)
            if fast is not None:
                payload, mid = fast
                return mid if self._enqueue_nowait(payload) else DROPPED
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
        return self._queue_call_nowait(call)

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
        return await self._queue_call(call, wait)

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
        return self._queue_call_nowait(call)

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
        return await self._queue_call(call, wait)

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
        return self._queue_call_nowait(call)

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
        return await self._queue_call(call, wait)

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
        return self._queue_call_nowait(call)

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
        return await self._queue_call(call, wait)

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
        return self._queue_call_nowait(call)

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
                await self._queue_call(call, False)
            return [c.message_id for c in encoded]
        last = len(encoded) - 1
        futures = [await self._submit(c.payload, n == last) for n, c in enumerate(encoded)]
        await asyncio.shield(asyncio.gather(*futures))
        return [c.message_id for c in encoded]

    def batch_nowait(self, calls: Iterable[Mapping[str, Any]]) -> list[str]:
        """``batch`` without awaiting (see ``track_nowait``)."""
        encoded = self._encoder.batch(calls)
        return [self._queue_call_nowait(c) for c in encoded]

    async def submit(
        self, call: Mapping[str, Any] | PipelinesCall, *, urgent: bool = True
    ) -> asyncio.Future[None]:
        """Queue one call (a Segment-style dict or a ``PipelinesCall``) and return a
        future for its delivery without waiting for it. ``urgent`` (default) sends
        the current batch at once; ``urgent=False`` lets it wait for a full batch or
        the linger. Cancelling the future does not cancel delivery."""
        encoded = call if isinstance(call, PipelinesCall) else self._encoder.raw(call)
        return await self._submit(encoded.payload, urgent)

    def build(self, call: Mapping[str, Any]) -> PipelinesCall:
        """Validate and encode a Segment-style call dict without queueing it."""
        return self._encoder.raw(call)
