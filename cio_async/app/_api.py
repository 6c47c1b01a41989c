"""The App API (``client.app``): transactional sends, broadcast triggers and people
lookups, one direct request per call (never batched).

Every call waits its turn at a client-side rate limiter (``AppConfig``). Sends and
triggers are not idempotent, so they are retried only when the request surely never
reached Customer.io or was refused with 429, unless the caller opts in. Attribute and
segment lookups are cached with async-lru and invalidated when this client
identifies, deletes, suppresses or merges that person.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Final, Literal

from async_lru import alru_cache

from .._config import AppConfig, RateLimit, RetryPolicy
from .._encode import dumps, loads
from .._errors import ClientClosedError, NotFoundError, ValidationError
from .._model import Person, PersonRef, as_person, quote_path
from .._validate import check_id, check_text
from ..http._ratelimit import Limiter, RateBudget, RateLimiter
from ..http._transport import Response, Transport
from ._messages import SendResult, TransactionalMessage, broadcast_body, check_filter
from ._people import PeopleSearch, PersonAttributes, PersonIdentifiers, Segment

__all__ = ["AppAPI"]

log = logging.getLogger("cio_async")

LookupIdType = Literal["id", "email", "cio_id"]
MAX_BATCH_IDS: Final = 100
MAX_SEARCH_PAGE: Final = 1000
_ID_TYPES: Final = ("id", "email", "cio_id")

#: ``client.spawn``: run a coroutine as a task the client owns.
Spawn = Callable[..., "asyncio.Task[Any]"]
#: How the owning client learns what it must call: once, at construction, with the
#: listener for people it changes and the coroutine function it awaits at close.
Attach = Callable[[Callable[[Person], None], Callable[[], Awaitable[None]]], None]


def _limiter(
    limit: RateLimit | None, budget: RateBudget | None = None, api: str = "app"
) -> Limiter | None:
    if limit is None:
        return None
    if budget is not None:
        return budget.limiter(api, limit)
    return RateLimiter(limit.limit, limit.per)


def _alias(kind: str, value: str) -> str:
    # Customer.io matches emails case-insensitively.
    return f"{kind}:{value.lower() if kind == 'email' else value}"


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)  # Python 3.11+
    return bool(cancelling()) if cancelling is not None else False


class AppAPI:
    """Customer.io's App API, as ``client.app`` (needs ``app_api_key``).

    Sends return a ``SendResult``; ``send_nowait`` runs one in the background as a
    task the client owns (failures go to ``on_error``). Lookups return typed results;
    ``get_attributes`` and ``get_segments`` are cached (``AppConfig.cache_ttl``).
    """

    def __init__(
        self,
        transport: Transport,
        config: AppConfig,
        spawn: Spawn,
        rate_budget: RateBudget | None = None,
        attach: Attach | None = None,
    ) -> None:
        self._t = transport
        self._config = config
        self._spawn = spawn
        self._closed = False
        self.limiter = _limiter(config.rate_limit, rate_budget, "app")
        self.send_limiter = _limiter(config.send_rate_limit, rate_budget, "app_send")
        self.broadcast_limiter = _limiter(config.broadcast_rate_limit, rate_budget, "app_broadcast")
        # Person key ("id:42", "email:a@x") -> cache keys holding that person, learned
        # from the identifiers each attribute lookup returned, so a change made under
        # one identifier invalidates lookups made under another.
        self._aliases: dict[str, set[tuple[str, str]]] = {}
        self._attributes_cache: Any = None
        self._segments_cache: Any = None
        if config.cache_ttl > 0 and config.cache_maxsize > 0:
            cache = alru_cache(maxsize=config.cache_maxsize, ttl=config.cache_ttl)
            self._attributes_cache = cache(self._fetch_attributes)
            self._segments_cache = cache(self._fetch_segments)
        if attach is not None:
            attach(self._person_changed, self._aclose)

    @property
    def config(self) -> AppConfig:
        return self._config

    def __repr__(self) -> str:
        return f"<AppAPI cache={'on' if self._attributes_cache else 'off'}>"

    # -- plumbing ----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError("the client is closed; create a new AsyncCustomerIO")

    async def _call(
        self,
        method: str,
        path: str,
        op: str,
        *,
        limiter: Limiter | None,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        idempotent: bool = True,
        retry: RetryPolicy | None = None,
    ) -> Response:
        self._check_open()
        return await self._t.request(
            "app",
            method,
            path,
            body=None if body is None else dumps(body),
            params=params,
            op=op,
            idempotent=idempotent,
            retry=retry,
            limiter=limiter,
        )

    def _unsafe(self, retry_unsafe: bool | None) -> bool:
        return self._config.retry_unsafe if retry_unsafe is None else bool(retry_unsafe)

    async def _aclose(self) -> None:
        """Cancel in-flight cached lookups and drop the cache: handed to the client
        (``attach``), which awaits it in ``aclose()``."""
        self._closed = True
        for cache in (self._attributes_cache, self._segments_cache):
            if cache is not None:
                await cache.cache_close()
                cache.cache_clear()  # also cancels the TTL timers on the loop
        self._aliases.clear()

    async def _cached(self, cache: Any, fetch: Any, person: Person, cached: bool) -> bytes:
        self._check_open()
        if not cached or cache is None:
            result: bytes = await fetch(person.kind, person.value)
            return result
        try:
            result = await cache(person.kind, person.value)
        except asyncio.CancelledError:
            # aclose() cancels the shared lookup task; tell waiters why, unless they
            # are being cancelled themselves.
            if self._closed and not _being_cancelled():
                raise ClientClosedError("the client was closed during the lookup") from None
            raise
        return result

    # -- cache invalidation ------------------------------------------------------------

    def _remember(self, key: tuple[str, str], customer: Any) -> None:
        if self._attributes_cache is None or not isinstance(customer, Mapping):
            return
        ids = customer.get("identifiers")
        if not isinstance(ids, Mapping):
            ids = customer
        if len(self._aliases) > 4 * self._config.cache_maxsize + 16:
            # Forgetting aliases could miss an invalidation: start over instead.
            self.cache_clear()
        for kind in _ID_TYPES:
            value = ids.get(kind)
            if value:
                self._aliases.setdefault(_alias(kind, str(value)), set()).add(key)

    def _person_changed(self, person: Person) -> None:
        """The person-change listener handed to the client (``attach``): forget every
        cached lookup of ``person``."""
        if self._attributes_cache is None:
            return
        keys: set[tuple[str, str]] = {(person.kind, person.value)}
        keys |= self._aliases.pop(_alias(person.kind, person.value), set())
        for key in keys:
            self._attributes_cache.cache_invalidate(*key)
            self._segments_cache.cache_invalidate(*key)

    def cache_clear(self) -> None:
        """Forget every cached lookup."""
        for cache in (self._attributes_cache, self._segments_cache):
            if cache is not None:
                cache.cache_clear()
        self._aliases.clear()

    def cache_info(self) -> dict[str, Any]:
        """Hits, misses and sizes of the lookup caches (empty when disabled)."""
        if self._attributes_cache is None:
            return {}
        return {
            "attributes": self._attributes_cache.cache_info(),
            "segments": self._segments_cache.cache_info(),
        }

    # -- transactional messages --------------------------------------------------------

    def _prepare(self, message: TransactionalMessage) -> dict[str, Any]:
        if not isinstance(message, TransactionalMessage):
            raise ValidationError(
                "message", "must be a TransactionalEmail, TransactionalPush, ... message"
            )
        return message.to_body()

    async def _send(
        self,
        channel: str,
        body: dict[str, Any],
        retry_unsafe: bool | None,
        retry: RetryPolicy | None,
    ) -> SendResult:
        resp = await self._call(
            "POST",
            f"/v1/send/{channel}",
            f"app.send_{channel}",
            body=body,
            limiter=self.send_limiter,
            idempotent=self._unsafe(retry_unsafe),
            retry=retry,
        )
        return SendResult._from_json(resp.json())

    async def send(
        self,
        message: TransactionalMessage,
        *,
        retry_unsafe: bool | None = None,
        retry: RetryPolicy | None = None,
    ) -> SendResult:
        """Send a transactional message (``POST /v1/send/{channel}``).

        Not retried once the request may have reached Customer.io (a timeout, a
        dropped connection, a 5xx), since a retry could deliver it twice; retried
        when it surely did not (connection refused, DNS) and on 429. Pass
        ``retry_unsafe=True`` (or set ``AppConfig.retry_unsafe``) to retry those too,
        and ``retry`` to override the ``RetryPolicy`` for this call.
        """
        body = self._prepare(message)
        return await self._send(message.channel, body, retry_unsafe, retry)

    def send_nowait(
        self,
        message: TransactionalMessage,
        *,
        retry_unsafe: bool | None = None,
        retry: RetryPolicy | None = None,
    ) -> asyncio.Task[SendResult]:
        """Validate ``message`` now, then send it in the background as a task the
        client owns: a failure goes to ``on_error(exc, None)``, the log and
        ``stats().background_errors``, and ``aclose()`` cancels it if still running.
        Call from the event loop's thread. Await the returned task for the result if
        you want it.
        """
        body = self._prepare(message)
        self._check_open()
        return self._spawn(
            self._send(message.channel, body, retry_unsafe, retry),
            name=f"cio_async-send-{message.channel}",
        )

    # -- broadcasts --------------------------------------------------------------------

    async def trigger_broadcast(
        self,
        broadcast_id: int,
        *,
        data: Mapping[str, Any] | None = None,
        recipients: Mapping[str, Any] | None = None,
        ids: Iterable[str | int] | None = None,
        emails: Iterable[str] | None = None,
        per_user_data: Iterable[Mapping[str, Any]] | None = None,
        data_file_url: str | None = None,
        id_ignore_missing: bool | None = None,
        email_ignore_missing: bool | None = None,
        email_add_duplicates: bool | None = None,
        retry_unsafe: bool | None = None,
        retry: RetryPolicy | None = None,
    ) -> int:
        """Trigger an API-triggered broadcast; returns the trigger id.

        With only ``data`` it goes to the broadcast's own audience. Otherwise give one
        recipient form: ``recipients`` (a segment/attribute filter), ``ids``,
        ``emails``, ``per_user_data`` (``[{"id" or "email": ..., "data": {...}}]``) or
        ``data_file_url`` (JSON lines). Lists hold at most 10,000 entries.
        ``id_ignore_missing`` goes with ids; ``email_ignore_missing`` and
        ``email_add_duplicates`` with emails; all three with per_user_data and
        data_file_url. Customer.io takes one trigger per 10 seconds: callers wait
        their turn. Retried like ``send``.
        """
        if isinstance(broadcast_id, bool) or not isinstance(broadcast_id, int) or broadcast_id < 1:
            raise ValidationError("broadcast_id", "must be a positive integer")
        body = broadcast_body(
            data=data,
            recipients=recipients,
            ids=ids,
            emails=emails,
            per_user_data=per_user_data,
            data_file_url=data_file_url,
            flags={
                "id_ignore_missing": id_ignore_missing,
                "email_ignore_missing": email_ignore_missing,
                "email_add_duplicates": email_add_duplicates,
            },
        )
        resp = await self._call(
            "POST",
            f"/v1/campaigns/{broadcast_id}/triggers",
            "app.trigger_broadcast",
            body=body,
            limiter=self.broadcast_limiter,
            idempotent=self._unsafe(retry_unsafe),
            retry=retry,
        )
        result = resp.json()
        trigger = result.get("id") if isinstance(result, Mapping) else None
        return int(trigger) if isinstance(trigger, (int, str)) and str(trigger).isdigit() else 0

    # -- lookups -----------------------------------------------------------------------

    async def _get_person(self, what: str, kind: str, value: str) -> Response:
        return await self._call(
            "GET",
            f"/v1/customers/{quote_path(value)}/{what}",
            f"app.get_{what}",
            params={"id_type": kind},
            limiter=self.limiter,
        )

    async def _fetch_attributes(self, kind: str, value: str) -> bytes:
        resp = await self._get_person("attributes", kind, value)
        data = resp.json()
        self._remember((kind, value), data.get("customer") if isinstance(data, Mapping) else None)
        return resp.body

    async def _fetch_segments(self, kind: str, value: str) -> bytes:
        return (await self._get_person("segments", kind, value)).body

    async def get_attributes(
        self, person: PersonRef, *, cached: bool = True
    ) -> PersonAttributes | None:
        """A person's attributes and identifiers, or None when Customer.io has no such
        person (``GET /v1/customers/{id}/attributes``).

        Cached for ``AppConfig.cache_ttl`` seconds; identifying, deleting,
        suppressing or merging that person through this client drops the entry (a
        change made elsewhere shows after the TTL). ``cached=False`` always asks.
        Concurrent lookups of one person share one request.
        """
        p = as_person(person)
        try:
            raw = await self._cached(self._attributes_cache, self._fetch_attributes, p, cached)
        except NotFoundError:
            return None
        data = loads(raw)
        customer = data.get("customer") if isinstance(data, Mapping) else None
        return PersonAttributes._from_json(customer)

    async def get_segments(self, person: PersonRef, *, cached: bool = True) -> list[Segment]:
        """The segments a person belongs to (``GET /v1/customers/{id}/segments``);
        cached like ``get_attributes``. Raises ``NotFoundError`` for an unknown person."""
        p = as_person(person)
        raw = await self._cached(self._segments_cache, self._fetch_segments, p, cached)
        data = loads(raw)
        segments = data.get("segments") if isinstance(data, Mapping) else None
        return [Segment._from_json(s) for s in segments or ()]

    async def find_by_email(self, email: str) -> list[PersonIdentifiers]:
        """Everyone with this email address (``GET /v1/customers?email=``)."""
        check_text("email", email, 1000)
        if "@" not in email:
            raise ValidationError("email", f"{email!r} is not an email address")
        resp = await self._call(
            "GET",
            "/v1/customers",
            "app.find_by_email",
            params={"email": email},
            limiter=self.limiter,
        )
        data = resp.json()
        results = data.get("results") if isinstance(data, Mapping) else None
        return [PersonIdentifiers._from_json(r) for r in results or ()]

    def search_people(
        self, filter: Mapping[str, Any], *, page_size: int = MAX_SEARCH_PAGE
    ) -> PeopleSearch:
        """An async iterator over everyone matching ``filter``
        (``POST /v1/customers``), following ``next`` from page to page::

            async for who in cio.app.search_people({"and": [
                {"segment": {"id": 7}},
                {"attribute": {"field": "plan", "operator": "eq", "value": "pro"}},
            ]}):
                ...

        ``page_size`` (1-1000) people per request.
        """
        check_filter("filter", filter)
        if isinstance(page_size, bool) or not isinstance(page_size, int):
            raise ValidationError("page_size", "must be an integer")
        if not 1 <= page_size <= MAX_SEARCH_PAGE:
            raise ValidationError("page_size", f"must be between 1 and {MAX_SEARCH_PAGE}")
        self._check_open()
        body = {"filter": filter}

        async def fetch(cursor: str | None) -> tuple[list[PersonIdentifiers], str | None]:
            params = {"limit": str(page_size)}
            if cursor:
                params["start"] = cursor
            resp = await self._call(
                "POST",
                "/v1/customers",
                "app.search_people",
                body=body,
                params=params,
                limiter=self.limiter,
            )
            data = resp.json()
            if not isinstance(data, Mapping):
                return [], None
            found = data.get("identifiers")
            if isinstance(found, list):
                people = [PersonIdentifiers._from_json(i) for i in found]
            else:  # older answers carry only ids
                people = [PersonIdentifiers(id=str(i)) for i in data.get("ids") or ()]
            nxt = data.get("next")
            return people, str(nxt) if nxt else None

        return PeopleSearch(fetch)

    async def get_attributes_batch(
        self, ids: Iterable[str | int], *, id_type: LookupIdType = "id"
    ) -> list[PersonAttributes]:
        """Attributes of many people (``POST /v1/customers/attributes``), 100 per
        request, the requests in flight together (within the rate limit). People
        Customer.io does not know are left out. Not cached."""
        if id_type not in _ID_TYPES:
            raise ValidationError("id_type", f"must be one of {', '.join(_ID_TYPES)}")
        if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
            raise ValidationError("ids", "must be a list of identifiers")
        values = [check_id(f"ids[{i}]", v) for i, v in enumerate(ids)]
        if not values:
            raise ValidationError("ids", "must not be empty")
        self._check_open()
        chunks = [values[i : i + MAX_BATCH_IDS] for i in range(0, len(values), MAX_BATCH_IDS)]

        async def fetch(chunk: list[str]) -> list[PersonAttributes]:
            resp = await self._call(
                "POST",
                "/v1/customers/attributes",
                "app.get_attributes_batch",
                body={"ids": chunk},
                params={"id_type": id_type},
                limiter=self.limiter,
            )
            data = resp.json()
            found = data.get("customers") if isinstance(data, Mapping) else None
            return [PersonAttributes._from_json(c) for c in found or ()]

        tasks = [asyncio.ensure_future(fetch(c)) for c in chunks]
        try:
            pages = await asyncio.gather(*tasks)
        except BaseException:
            # One chunk failed (or we were cancelled): stop the others, then raise.
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return [p for page in pages for p in page]
