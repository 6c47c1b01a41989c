"""What App API lookups return: people, their attributes and segments, and the
paginated people search."""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._model import Person

__all__ = ["PeopleSearch", "PersonAttributes", "PersonIdentifiers", "Segment"]


def _str_or_none(v: Any) -> str | None:
    return None if v is None or v == "" else str(v)


@dataclass(frozen=True, slots=True)
class PersonIdentifiers:
    """The identifiers Customer.io holds for one person."""

    id: str | None = None
    email: str | None = None
    cio_id: str | None = None

    @classmethod
    def _from_json(cls, data: Any) -> PersonIdentifiers:
        d = data if isinstance(data, Mapping) else {}
        return cls(*(_str_or_none(d.get(k)) for k in ("id", "email", "cio_id")))

    @property
    def person(self) -> Person:
        """A ``Person`` for this person: by ``cio_id`` (stable across id and email
        changes) when known, else by id, else by email."""
        if self.cio_id:
            return Person._trusted("cio_id", self.cio_id)
        if self.id:
            return Person._trusted("id", self.id)
        if self.email:
            return Person._trusted("email", self.email)
        raise ValueError("no identifiers")


@dataclass(frozen=True, slots=True)
class PersonAttributes:
    """A person's profile as ``GET /v1/customers/{id}/attributes`` returns it.

    Each call returns fresh objects (cached lookups are decoded anew), so mutating
    ``attributes`` never corrupts the cache.
    """

    identifiers: PersonIdentifiers
    attributes: dict[str, Any]
    unsubscribed: bool = False
    devices: list[Any] = field(default_factory=list)
    timestamps: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def id(self) -> str | None:
        return self.identifiers.id

    @property
    def email(self) -> str | None:
        return self.identifiers.email

    @property
    def cio_id(self) -> str | None:
        return self.identifiers.cio_id

    @classmethod
    def _from_json(cls, customer: Any) -> PersonAttributes:
        c: dict[str, Any] = dict(customer) if isinstance(customer, Mapping) else {}
        attrs = c.get("attributes")
        attrs = dict(attrs) if isinstance(attrs, Mapping) else {}
        ids = c.get("identifiers")
        if not isinstance(ids, Mapping):
            ids = {k: c.get(k, attrs.get(k)) for k in ("id", "email", "cio_id")}
        devices = c.get("devices")
        stamps = c.get("timestamps")
        return cls(
            identifiers=PersonIdentifiers._from_json(ids),
            attributes=attrs,
            unsubscribed=bool(c.get("unsubscribed", attrs.get("unsubscribed", False))),
            devices=list(devices) if isinstance(devices, list) else [],
            timestamps=dict(stamps) if isinstance(stamps, Mapping) else {},
            raw=c,
        )


@dataclass(frozen=True, slots=True)
class Segment:
    """A segment a person belongs to."""

    id: int
    name: str | None = None
    type: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def _from_json(cls, data: Any) -> Segment:
        d: dict[str, Any] = dict(data) if isinstance(data, Mapping) else {}
        sid = d.get("id")
        return cls(
            id=int(sid) if isinstance(sid, (int, str)) and str(sid).isdigit() else -1,
            name=_str_or_none(d.get("name")),
            type=_str_or_none(d.get("type")),
            raw=d,
        )


#: Fetch one page: (cursor or None) -> (people, next cursor or None).
PageFetcher = Callable[[str | None], Awaitable[tuple[list[PersonIdentifiers], str | None]]]


class PeopleSearch:
    """An async iterator over the people matching a filter, fetching pages of up to
    ``page_size`` as it goes and following Customer.io's ``next`` cursor::

        async for who in cio.app.search_people({"segment": {"id": 7}}):
            print(who.id, who.email)

    Nothing is requested until iteration starts; stopping early requests no more
    pages. ``pages`` counts the requests made so far.
    """

    def __init__(self, fetch: PageFetcher) -> None:
        self._fetch = fetch
        self._buffer: deque[PersonIdentifiers] = deque()
        self._cursor: str | None = None
        self._done = False
        self.pages = 0

    def __aiter__(self) -> PeopleSearch:
        return self

    async def __anext__(self) -> PersonIdentifiers:
        while not self._buffer:
            if self._done:
                raise StopAsyncIteration
            people, cursor = await self._fetch(self._cursor)
            self.pages += 1
            self._buffer.extend(people)
            # An empty page ends the search even if a cursor came back, so a server
            # that keeps answering "next" cannot loop us forever.
            self._done = not cursor or not people
            self._cursor = cursor
        return self._buffer.popleft()

    async def collect(self, limit: int | None = None) -> list[PersonIdentifiers]:
        """Everyone (or the first ``limit``) as a list."""
        out: list[PersonIdentifiers] = []
        async for p in self:
            out.append(p)
            if limit is not None and len(out) >= limit:
                break
        return out
