"""``AsyncCustomerIO``: the client users hold. Wires the parts and owns the lifecycle."""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

import aiohttp

from ._config import (
    AppConfig,
    BatchPolicy,
    ClientConfig,
    PoolConfig,
    Region,
    RetryPolicy,
    SpoolConfig,
)
from ._core import ClientCore, Closer
from ._dedup import AsyncDedupCache, DedupCache, MemoryDedupCache, canonical
from ._dropped import DROPPED, Dropped
from ._encode import to_unix_seconds
from ._errors import ConfigurationError, ValidationError
from ._lastresort import LastResort
from ._model import (
    Operation,
    Person,
    PersonRef,
    RelationshipRef,
    as_person,
    person_ident,
)
from ._stats import Hooks, OnDrop, OnError, Recorder, Stats
from ._validate import check_finite
from .app._api import AppAPI
from .delivery import (
    BatchEndpoint,
    QueueBackend,
    TrackBatchEndpoint,
    encode_event,
    event_encoder,
    no_fast_path,
)
from .http._ratelimit import RateBudget
from .http._transport import Transport
from .track._api import AccountRegion, TrackV1, TrackV2

if TYPE_CHECKING:
    from .spool import SpoolBackend

__all__ = ["AsyncCustomerIO"]

log = logging.getLogger("cio_async")


class _Probe:
    """Stands in for the dedup cache while an identify is built for a shared cache:
    records the key and fingerprint (answering "not seen") so ``identify`` can then
    await the shared cache with them; evictions go to the shared cache."""

    __slots__ = ("_shared", "fingerprint", "key")

    def __init__(self, shared: AsyncDedupCache) -> None:
        self._shared = shared
        self.key: str | None = None
        self.fingerprint: bytes | None = None

    def seen(self, person_key: str, fingerprint: bytes) -> bool:
        self.key = person_key
        self.fingerprint = fingerprint
        return False

    def evict(self, person_key: str) -> None:
        self.key = None
        self._shared.evict(person_key)

    def __len__(self) -> int:
        return len(self._shared)


_PERSON_CHANGES = frozenset({"identify", "delete", "suppress", "unsuppress", "merge"})


def _is_identify(op: Operation) -> bool:
    """A person identify? Looks at the payload's first bytes before decoding, so the
    lazily decoded operations handed to on_drop at shutdown stay undecoded."""
    if op.payload.find(b'"identify"', 0, 64) < 0:
        return False
    return op.type == "person" and op.action == "identify"


class AsyncCustomerIO(ClientCore):
    """The asyncio Customer.io client.

    Person and object operations (``identify``, ``track``, ``page``, ``screen``,
    ``delete``, devices, relationships, ``send(op)``) go through a batching
    pipeline to Track v2 ``/api/v2/batch``: the call validates, encodes and queues
    the operation and returns at once. Pass ``wait=True`` to wait until Customer.io
    accepted it (or get the error that stopped it). ``client.v1`` and ``client.v2``
    make one direct request per call.

    Args:
        site_id: Track API site id (HTTP Basic user).
        track_api_key: Track API key.
        app_api_key: App API key (Bearer), for transactional messages and lookups.
        region: ``Region.US`` (default), ``Region.EU``, ``"us"``/``"eu"`` or
            ``Region.custom(...)``.
        config: a full ``ClientConfig``; exclusive with credentials and region.
        pool, retry, batch: override those parts of the configuration.
        app_config: an ``AppConfig`` (App API rate limits, lookup cache, send
            retries); overrides ``config.app``.
        session: an ``aiohttp.ClientSession`` to borrow. It is never closed by this
            client, and its connector's limits apply instead of ``pool``.
        on_error: ``on_error(exc, operation)`` for every operation that failed and
            every background task that raised (``operation`` None then).
        on_drop: ``on_drop(operation, reason)`` for every operation dropped
            undelivered (``queue_full``, ``shutdown``); persist them if they matter.
        hooks: ``Hooks`` instances fed with request, retry, drop and batch events.
        queue: a ``QueueBackend`` where queued operations wait (default: in memory,
            ``MemoryBackend``).
        spool: a directory (or ``SpoolConfig``) for a durable spool: queued
            operations are written to disk, an awaited call returns once its
            operation is there, and a client started later replays what a crashed
            process left (README "Durability"). Exclusive with ``queue``.
        dedup_cache: a ``DedupCache`` for identify deduplication (default: an
            in-memory LRU sized by ``config.dedup_*``), or an ``AsyncDedupCache``
            shared by many processes (``cio_async.redis.RedisDedupCache``).
        region_check: ``"off"``, ``"warn"`` or ``"error"``: check at ``start()`` that
            the Track credentials belong to the configured region (overrides
            ``config.region_check``).
        rate_budget: a ``RateBudget`` handing out the rate limiters (Track pipeline
            and direct calls, App API): ``cio_async.redis.RedisRateBudget`` makes a
            fleet of processes share one budget per workspace.
        stream: send queued operations' batches there instead of to Customer.io
            (``cio_async.redis.RedisStreamTarget``: a Redis stream that ``cio-async
            relay`` processes deliver). Direct calls and the App API are unchanged.

    Construction does no I/O and needs no running loop: the session, its connection
    pool and the sender task start on first use, inside the loop. Use
    ``async with AsyncCustomerIO(...) as cio:`` or ``await cio.aclose()``.
    """

    _config: ClientConfig

    def __init__(
        self,
        site_id: str | None = None,
        track_api_key: str | None = None,
        *,
        app_api_key: str | None = None,
        region: Region | str | None = None,
        config: ClientConfig | None = None,
        pool: PoolConfig | None = None,
        retry: RetryPolicy | None = None,
        batch: BatchPolicy | None = None,
        app_config: AppConfig | None = None,
        session: aiohttp.ClientSession | None = None,
        on_error: OnError | None = None,
        on_drop: OnDrop | None = None,
        hooks: Iterable[Hooks] = (),
        queue: QueueBackend | None = None,
        dedup_cache: DedupCache | AsyncDedupCache | None = None,
        region_check: Literal["off", "warn", "error"] | None = None,
        spool: SpoolConfig | str | os.PathLike[str] | None = None,
        rate_budget: RateBudget | None = None,
        stream: BatchEndpoint | None = None,
    ) -> None:
        changes: dict[str, Any] = {
            k: v
            for k, v in (
                ("pool", pool),
                ("retry", retry),
                ("batch", batch),
                ("app", app_config),
                ("region_check", region_check),
                ("spool", SpoolConfig.of(spool)),
            )
            if v is not None
        }
        if config is not None:
            if site_id or track_api_key or app_api_key or region:
                raise ConfigurationError("pass either config= or credentials/region, not both")
            if changes:
                config = config.replace(**changes)
        else:
            if isinstance(region, str):
                region = Region.from_name(region)
            config = ClientConfig(
                site_id=site_id,
                track_api_key=track_api_key,
                app_api_key=app_api_key,
                region=region or Region.US,
                **changes,
            )
        if session is not None and not isinstance(session, aiohttp.ClientSession):
            raise ConfigurationError("session must be an aiohttp.ClientSession")
        self._config = config
        self._session_arg = session
        self._queue_arg = queue
        self._dedup_arg = dedup_cache
        self._rate_budget_arg = rate_budget
        self._stream_arg = stream
        self._open(Recorder(hooks, config.slow_call_threshold), on_error, on_drop)

    def _wire(self, recorder: Recorder) -> None:
        """Build the parts: at construction, and again in a forked child (see
        ``_after_fork``), where the parent's are bound to a loop that does not run."""
        config = self._config
        self._rec = recorder
        self._transport = Transport(
            config,
            self._session_arg,
            on_request=self._rec.request_end,
            on_retry=self._rec.retry,
            on_start=self._rec.request_start if self._rec.hooks else None,
            track_limiter=(
                self._rate_budget_arg.limiter("track")
                if self._rate_budget_arg is not None
                else None
            ),
        )
        #: A shared (awaitable) dedup cache; ``_dedup`` is then its local front.
        self._shared_dedup: AsyncDedupCache | None = None
        if self._dedup_arg is not None and inspect.iscoroutinefunction(
            getattr(self._dedup_arg, "seen", None)
        ):
            shared: AsyncDedupCache = self._dedup_arg  # type: ignore[assignment]
            self._shared_dedup = shared
            self._dedup: DedupCache | None = shared.local
        elif self._dedup_arg is not None:
            self._dedup = self._dedup_arg  # type: ignore[assignment]
        elif config.dedup_ttl > 0 and config.dedup_max_entries > 0:
            self._dedup = MemoryDedupCache(config.dedup_ttl, config.dedup_max_entries)
        else:
            self._dedup = None
        self._has_track = self._transport.has_track_credentials
        backend = self._queue_arg
        self._spool: SpoolBackend | None = None
        if config.spool is not None:
            if backend is not None:
                raise ConfigurationError("pass either queue= or spool=, not both")
            from .spool import SpoolBackend  # SQLite and threads only when asked for

            # In a forked child this is a new spool: its own file and lock.
            backend = self._spool = SpoolBackend(config.spool)
        self._wire_sender(
            self._stream_arg
            if self._stream_arg is not None
            else TrackBatchEndpoint(self._transport),
            config.batch,
            backend,
            config.pool.max_connections,
        )
        # Encoders for person events (see delivery._encoder): they encode and offer;
        # what they do not encode (None) or the accumulator declines (with the bytes)
        # goes the general way.
        self._fast = {
            a: event_encoder(a, self._offer) if self._has_track else no_fast_path
            for a in ("event", "page", "screen")
        }
        self._fast_event = self._fast["event"]
        self._person_listeners: list[Callable[[Person], None]] = []
        self.v1 = TrackV1(self._transport, on_person_change=self._forget)
        self.v2 = TrackV2(self._transport, on_operation=self._bypassed_dedup)
        #: The App API: transactional sends, broadcast triggers, cached lookups.
        self.app = AppAPI(
            self._transport,
            config.app,
            spawn=self.spawn,
            rate_budget=self._rate_budget_arg,
            attach=self._attach_app,
        )
        self._region_checked = False
        self._last_resort = LastResort()

    def _attach_app(self, on_person_change: Callable[[Person], None], close: Closer) -> None:
        # The App API's lookup cache forgets people this client changes, and closes
        # with the client (after its tasks, before the session).
        self._person_listeners.append(on_person_change)
        self._closers.append(close)

    @classmethod
    def from_env(cls, **kwargs: Any) -> AsyncCustomerIO:
        """A client configured from ``CUSTOMERIO_*`` environment variables (see
        ``ClientConfig.from_env``); other keyword arguments go to the constructor."""
        config_keys = set(ClientConfig.__dataclass_fields__)
        overrides = {k: kwargs.pop(k) for k in list(kwargs) if k in config_keys}
        return cls(config=ClientConfig.from_env(**overrides), **kwargs)

    # -- properties --------------------------------------------------------------------

    @property
    def config(self) -> ClientConfig:
        """The frozen configuration."""
        return self._config

    def __repr__(self) -> str:
        return (
            f"<AsyncCustomerIO region={self._config.region.name!r} "
            f"track_url={self._config.region.track_url!r} state={self._state.value}>"
        )

    def stats(self) -> Stats:
        """A typed snapshot of counters, queue depth and per-operation latency."""
        return self._snapshot(len(self._dedup) if self._dedup is not None else 0, self._spool)

    # -- callbacks ---------------------------------------------------------------------

    def _forget(self, *people: Person) -> None:
        """These people changed outside identify()'s cache: drop their dedup entries."""
        if self._dedup is not None:
            for p in people:
                self._evict(p.key)
        self._changed(*people)

    def _changed(self, *people: Person) -> None:
        """Tell listeners (e.g. the App API lookup cache) that these people changed."""
        for listener in self._person_listeners:
            for p in people:
                listener(p)

    def _bypassed_dedup(self, op: Operation) -> None:
        # A person-changing operation that did not go through identify()'s cache makes
        # the cached "last identify" stale for that person.
        if op.type != "person" or op.action not in _PERSON_CHANGES:
            return
        people = [Person._from_key(op.key)]
        if op.action == "merge":
            secondary = op.to_dict().get("secondary") or {}
            people += [Person._from_key(f"{k}:{v}") for k, v in secondary.items()]
        self._forget(*people)

    def _evict(self, key: str) -> None:
        shared = self._shared_dedup
        if shared is not None:
            shared.evict(key)  # the local front too
        elif self._dedup is not None:
            self._dedup.evict(key)

    def _unsent(self, op: Operation) -> None:
        # A failed or dropped identify must not suppress its own retry.
        if self._dedup and _is_identify(op):
            self._evict(op.key)

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Bind to the running loop and start the sender (done lazily otherwise).

        With a spool, also waits until its file is open (``SpoolError`` if it cannot
        be). With ``config.region_check`` on, also verifies that the Track credentials
        belong to the configured region (once). If that raises, the client is closed
        (nothing it started is left running) and the error propagates.
        """
        await super().start()
        if self._spool is not None:
            # The spool file is open and dead processes' files adopted (raises
            # SpoolError, naming the directory, when it cannot be opened).
            await self._spool.opened()
        if self._config.region_check != "off" and not self._region_checked:
            self._region_checked = True
            try:
                await self.check_region()
            except BaseException:
                # A failed start leaves nothing running: the sender task and the
                # session (its connector and sockets) are closed before raising.
                await self.aclose(0)
                raise

    async def check_region(self) -> AccountRegion:
        """Ask Customer.io which region these credentials belong to; warn (or raise
        ``ConfigurationError`` when ``config.region_check == "error"``) if that is not
        the configured ``Region.US``/``Region.EU``. Custom regions are not compared."""
        info = await self.v1.get_region()
        configured = self._config.region
        if configured.name in ("us", "eu") and info.region.lower() != configured.name:
            message = (
                f"these Track credentials belong to the {info.region.upper()} region "
                f"({info.url}) but the client is configured for {configured.name.upper()} "
                f"({configured.track_url}); pass region=Region.{info.region.upper()}"
            )
            if self._config.region_check == "error":
                raise ConfigurationError(message)
            log.warning("cio_async: %s", message)
        return info

    # -- pipeline operations -----------------------------------------------------------

    def _check_track(self) -> None:
        if not self._transport.has_track_credentials:
            raise ConfigurationError("this call needs site_id and track_api_key")

    def _identify_op(
        self,
        person: PersonRef,
        attributes: Mapping[str, Any] | None,
        update_only: bool,
        timestamp: object,
        subscription_preferences: Mapping[str, Any] | None,
        relationships: Iterable[RelationshipRef] | None,
        cache: DedupCache | None,
    ) -> tuple[Person, Operation] | None:
        """The person and the identify operation, or None when deduplicated (a hit
        builds neither)."""
        kind, value = person_ident(person)
        if cache is None:
            p = Person._trusted(kind, value)  # type: ignore[arg-type]
            return p, p.identify(
                attributes,
                timestamp=timestamp,
                update_only=update_only,
                subscription_preferences=subscription_preferences,
                relationships=relationships,
            )
        key = f"{kind}:{value}"
        if not update_only and subscription_preferences is None and relationships is None:
            # The common case: a cache hit costs one canonical encode and a dict lookup,
            # without building (or re-validating) the operation.
            try:
                fp: bytes | None = canonical(attributes)
            except TypeError:
                fp = None  # not JSON: identify() below raises a ValidationError naming it
            if fp is not None and cache.seen(key, fp):
                if timestamp is not None:
                    to_unix_seconds(timestamp, "timestamp")
                if fp.partition(b"null")[1]:  # (the cheapest search: see the encoder)
                    # NaN encodes like None: it must not pass as a repeat of a valid call.
                    check_finite("attributes", attributes)
                self._rec.deduplicated += 1
                return None
            p = Person._trusted(kind, value)  # type: ignore[arg-type]
            try:
                return p, p.identify(attributes, timestamp=timestamp)
            except ValidationError:
                cache.evict(key)  # invalid input must not suppress a later valid call
                raise
        p = Person._trusted(kind, value)  # type: ignore[arg-type]
        op = p.identify(
            attributes,
            timestamp=timestamp,
            update_only=update_only,
            subscription_preferences=subscription_preferences,
            relationships=relationships,
        )
        # Rare: fingerprint the whole operation, minus its timestamp.
        body = op.to_dict()
        body.pop("timestamp", None)
        if cache.seen(key, canonical(body)):
            self._rec.deduplicated += 1
            return None
        return p, op

    async def identify(
        self,
        person: PersonRef,
        attributes: Mapping[str, Any] | None = None,
        *,
        update_only: bool = False,
        timestamp: object = None,
        subscription_preferences: Mapping[str, Any] | None = None,
        relationships: Iterable[RelationshipRef] | None = None,
        dedup: bool = True,
        wait: bool = False,
    ) -> bool | Dropped:
        """Create or update a person.

        An identify identical to the last one queued for this person within
        ``config.dedup_ttl`` costs nothing (``dedup=False`` sends it anyway).
        Returns False when it was deduplicated, True when it was queued (and, with
        ``wait=True``, delivered), ``DROPPED`` (also falsy) when the ``drop_newest``
        policy dropped it because the queue was full. ``timestamp`` (default: now)
        orders updates.
        """
        if not self._has_track:
            self._check_track()
        shared = self._shared_dedup if dedup else None
        probe = _Probe(shared) if shared is not None else None
        made = self._identify_op(
            person,
            attributes,
            update_only,
            timestamp,
            subscription_preferences,
            relationships,
            probe if probe is not None else self._dedup if dedup else None,
        )
        if made is None:
            return False
        p, op = made
        if probe is not None and probe.key is not None:
            assert shared is not None
            assert probe.fingerprint is not None
            if await shared.seen(probe.key, probe.fingerprint):
                self._rec.deduplicated += 1
                return False
        self._changed(p)
        if not await self._enqueue(op, wait):
            return DROPPED  # on_drop's hook already forgot it in the dedup cache
        return True

    def identify_nowait(
        self,
        person: PersonRef,
        attributes: Mapping[str, Any] | None = None,
        *,
        update_only: bool = False,
        timestamp: object = None,
        subscription_preferences: Mapping[str, Any] | None = None,
        relationships: Iterable[RelationshipRef] | None = None,
        dedup: bool = True,
    ) -> bool | Dropped:
        """``identify`` without awaiting; safe from any thread (dedup applies on the
        loop thread only, where the cache lives). Returns as ``identify`` does;
        ``DROPPED`` only on the loop thread (elsewhere a drop is reported to
        ``on_drop`` once the loop sees it)."""
        if not self._has_track:
            self._check_track()
        use_dedup = dedup and self._delivery.on_loop_thread()
        made = self._identify_op(
            person,
            attributes,
            update_only,
            timestamp,
            subscription_preferences,
            relationships,
            self._dedup if use_dedup else None,
        )
        if made is None:
            return False
        p, op = made
        if self._person_listeners and self._delivery.on_loop_thread():
            self._changed(p)
        if not self._enqueue_nowait(op.payload):
            return DROPPED  # on_drop's hook already forgot it in the dedup cache
        return True

    async def _event(
        self,
        action: str,
        person: PersonRef,
        name: str,
        data: Mapping[str, Any] | None,
        id: str | None,
        timestamp: object,
        wait: bool,
    ) -> str:
        # ``track`` inlines the encoder attempt (it is the hottest call).
        if id is None and timestamp is None and not wait:
            admitted = self._fast[action](person, name, data)
            if admitted is not None:
                if type(admitted) is str:
                    return admitted
                if len(admitted) == 1:
                    await asyncio.sleep(0)
                elif not await self._enqueue(admitted[1], False, offered=True):  # type: ignore[arg-type]
                    return DROPPED
                return admitted[0]
        if not self._has_track:
            self._check_track()
        payload, event_id = encode_event(person, action, name, data, id, timestamp)
        if not await self._enqueue(payload, wait):
            return DROPPED
        return event_id

    def _encoded_nowait(self, admitted: tuple[str] | tuple[str, bytes]) -> str:
        """The rest of a ``*_nowait`` the encoder did not finish: ``(id,)`` was admitted
        (no yield without an await); ``(id, payload)`` was declined by the fast path
        and is admitted the general way."""
        if len(admitted) == 2 and not self._enqueue_nowait(admitted[1], offered=True):
            return DROPPED
        return admitted[0]

    def _event_nowait(
        self,
        action: str,
        person: PersonRef,
        name: str,
        data: Mapping[str, Any] | None,
        id: str | None,
        timestamp: object,
    ) -> str:
        if id is None and timestamp is None:
            admitted = self._fast[action](person, name, data)
            if type(admitted) is str:
                return admitted
            if admitted is not None:
                return self._encoded_nowait(admitted)  # type: ignore[arg-type]
        if not self._has_track:
            self._check_track()
        payload, event_id = encode_event(person, action, name, data, id, timestamp)
        if not self._enqueue_nowait(payload):
            return DROPPED
        return event_id

    async def track(
        self,
        person: PersonRef,
        name: str,
        data: Mapping[str, Any] | None = None,
        *,
        id: str | None = None,
        timestamp: object = None,
        wait: bool = False,
    ) -> str:
        """Record an event for a person. Returns its id (a ULID unless given), which
        makes retries harmless: Customer.io ignores repeats of an id; or ``DROPPED``
        (an empty, falsy string) when the ``drop_newest`` policy dropped the event
        because the queue was full (with ``wait=True`` a drop raises
        ``DeliveryAbandonedError`` instead)."""
        # _event's encoder attempt, inlined: one coroutine frame fewer on the
        # SDK's hottest call.
        if id is None and timestamp is None and not wait:
            # Read, then called (``self._fast_event(...)`` would be a method call on an
            # instance attribute, which CPython does not specialise).
            encode = self._fast_event
            admitted = encode(person, name, data)
            if type(admitted) is str:
                return admitted
            if admitted is not None:
                if len(admitted) == 1:
                    await asyncio.sleep(0)  # once per batch: let the sender run
                elif not await self._enqueue(admitted[1], False, offered=True):  # type: ignore[arg-type]
                    return DROPPED
                return admitted[0]
        return await self._event("event", person, name, data, id, timestamp, wait)

    def track_nowait(
        self,
        person: PersonRef,
        name: str,
        data: Mapping[str, Any] | None = None,
        *,
        id: str | None = None,
        timestamp: object = None,
    ) -> str:
        """``track`` without awaiting: validates and queues, never blocks. Safe to call
        from any thread once the client has started in its loop. Under the ``block``
        policy a full queue raises ``QueueFullError`` on the loop thread (elsewhere the
        event is dropped with reason ``queue_full`` and reported to ``on_drop``).
        Under ``drop_newest`` a drop on the loop thread returns ``DROPPED`` rather
        than the event id (from another thread the loop decides later: ``on_drop``)."""
        if id is None and timestamp is None:
            # The encoder attempt of ``_event_nowait``, inlined as in ``track``.
            encode = self._fast_event
            admitted = encode(person, name, data)
            if type(admitted) is str:
                return admitted
            if admitted is not None:
                return self._encoded_nowait(admitted)  # type: ignore[arg-type]
        return self._event_nowait("event", person, name, data, id, timestamp)

    async def page(
        self,
        person: PersonRef,
        url: str,
        data: Mapping[str, Any] | None = None,
        *,
        id: str | None = None,
        timestamp: object = None,
        wait: bool = False,
    ) -> str:
        """Record a page view. Returns the event id, or ``DROPPED`` (see ``track``)."""
        return await self._event("page", person, url, data, id, timestamp, wait)

    def page_nowait(
        self,
        person: PersonRef,
        url: str,
        data: Mapping[str, Any] | None = None,
        *,
        id: str | None = None,
        timestamp: object = None,
    ) -> str:
        """``page`` without awaiting (see ``track_nowait``)."""
        return self._event_nowait("page", person, url, data, id, timestamp)

    async def screen(
        self,
        person: PersonRef,
        name: str,
        data: Mapping[str, Any] | None = None,
        *,
        id: str | None = None,
        timestamp: object = None,
        wait: bool = False,
    ) -> str:
        """Record a mobile screen view. Returns the event id, or ``DROPPED`` (see
        ``track``)."""
        return await self._event("screen", person, name, data, id, timestamp, wait)

    def screen_nowait(
        self,
        person: PersonRef,
        name: str,
        data: Mapping[str, Any] | None = None,
        *,
        id: str | None = None,
        timestamp: object = None,
    ) -> str:
        """``screen`` without awaiting (see ``track_nowait``)."""
        return self._event_nowait("screen", person, name, data, id, timestamp)

    async def delete(self, person: PersonRef, *, wait: bool = False) -> Dropped | None:
        """Delete a person."""
        self._check_track()
        p = as_person(person)
        self._forget(p)
        return None if await self._enqueue(p.delete(), wait) else DROPPED

    async def suppress(self, person: PersonRef, *, wait: bool = False) -> Dropped | None:
        """Delete a person and block their identifiers from coming back."""
        self._check_track()
        p = as_person(person)
        self._forget(p)
        return None if await self._enqueue(p.suppress(), wait) else DROPPED

    async def unsuppress(self, person: PersonRef, *, wait: bool = False) -> Dropped | None:
        """Let a suppressed person's identifiers be used again."""
        self._check_track()
        p = as_person(person)
        self._forget(p)
        return None if await self._enqueue(p.unsuppress(), wait) else DROPPED

    async def merge(
        self, primary: PersonRef, secondary: PersonRef, *, wait: bool = False
    ) -> Dropped | None:
        """Merge ``secondary`` into ``primary`` (irreversible)."""
        self._check_track()
        a, b = as_person(primary, "primary"), as_person(secondary, "secondary")
        self._forget(a, b)
        return None if await self._enqueue(a.merge(b), wait) else DROPPED

    async def add_device(
        self,
        person: PersonRef,
        token: str,
        platform: str,
        *,
        last_used: object = None,
        attributes: Mapping[str, Any] | None = None,
        wait: bool = False,
    ) -> Dropped | None:
        """Add or update a push device (``ios`` or ``android``)."""
        self._check_track()
        op = as_person(person).add_device(
            token, platform, last_used=last_used, attributes=attributes
        )
        return None if await self._enqueue(op, wait) else DROPPED

    async def delete_device(
        self, person: PersonRef, token: str, *, wait: bool = False
    ) -> Dropped | None:
        """Remove a push device."""
        self._check_track()
        return (
            None if await self._enqueue(as_person(person).delete_device(token), wait) else DROPPED
        )

    async def add_relationships(
        self, person: PersonRef, relationships: Iterable[RelationshipRef], *, wait: bool = False
    ) -> Dropped | None:
        """Relate a person to objects."""
        self._check_track()
        return (
            None
            if await self._enqueue(as_person(person).add_relationships(relationships), wait)
            else DROPPED
        )

    async def delete_relationships(
        self, person: PersonRef, relationships: Iterable[RelationshipRef], *, wait: bool = False
    ) -> Dropped | None:
        """Remove relationships between a person and objects."""
        self._check_track()
        return (
            None
            if await self._enqueue(as_person(person).delete_relationships(relationships), wait)
            else DROPPED
        )

    async def send(self, operation: Operation, *, wait: bool = False) -> Dropped | None:
        """Queue any Track v2 operation (``Object(...).identify()``,
        ``Delivery(...).event(...)``, ...).

        This and the other queued calls without a result of their own (``delete``,
        ``suppress``, ``merge``, devices, relationships) return None, or ``DROPPED``
        when the ``drop_newest`` policy dropped the operation at the call."""
        self._check_track()
        if not isinstance(operation, Operation):
            raise ConfigurationError(
                "send() takes an Operation; build one with Person(...),"
                " Object(...) or Delivery(...)"
            )
        self._bypassed_dedup(operation)
        return None if await self._enqueue(operation, wait) else DROPPED

    async def submit(self, operation: Operation, *, urgent: bool = True) -> asyncio.Future[None]:
        """Queue ``operation`` and return a future for its delivery, without waiting.

        The future resolves when Customer.io accepted the operation, or raises the
        error that stopped it (``OperationRejectedError``, ``DeliveryAbandonedError``,
        ...). Use it to keep many operations in flight and still learn each outcome
        (bulk imports, checkpoints). Cancelling the future does not cancel delivery.
        ``urgent`` (the default) sends the current batch at once, as ``wait=True``
        does; ``urgent=False`` lets the operation wait for a full batch or the linger
        like any other, for producers that submit many and collect the outcomes.
        """
        self._check_track()
        if not isinstance(operation, Operation):
            raise ConfigurationError("submit() takes an Operation")
        self._bypassed_dedup(operation)
        return await self._submit(operation, urgent)

    def send_nowait(self, operation: Operation) -> Dropped | None:
        """``send`` without awaiting (see ``track_nowait``); ``DROPPED`` as ``send``."""
        self._check_track()
        if not isinstance(operation, Operation):
            raise ConfigurationError("send_nowait() takes an Operation")
        if self._delivery.on_loop_thread():
            self._bypassed_dedup(operation)
        return None if self._enqueue_nowait(operation.payload) else DROPPED

    async def track_anonymous(
        self,
        name: str,
        data: Mapping[str, Any] | None = None,
        *,
        anonymous_id: str | None = None,
        id: str | None = None,
        timestamp: object = None,
    ) -> str:
        """An anonymous (or invite) event: Track v2 has no such operation, so this is
        a direct v1 request (``client.v1.track_anonymous``). Returns the event id."""
        return await self.v1.track_anonymous(
            name, data, anonymous_id=anonymous_id, id=id, timestamp=timestamp
        )
