"""Several workspaces at once: route each call to the right client."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._client import AsyncCustomerIO
from ._errors import ConfigurationError
from ._model import Operation, Person, PersonRef, RelationshipRef, as_person
from ._stats import Stats
from .delivery import FlushResult

__all__ = ["WorkspaceRouter"]

#: Picks the workspace name for a person.
Resolver = Callable[[Person], str]


class WorkspaceRouter:
    """Holds one ``AsyncCustomerIO`` per workspace and sends each call to one of them.

    The workspace is the explicit ``workspace=`` argument of a call, or else what
    ``resolver(person)`` returns (e.g. EU residents to the EU workspace), or else
    ``default``. One ``aclose()`` closes every client::

        router = WorkspaceRouter(
            {"us": AsyncCustomerIO(us_site, us_key, region=Region.US),
             "eu": AsyncCustomerIO(eu_site, eu_key, region=Region.EU)},
            resolver=lambda person: "eu" if person.value in eu_ids else "us",
        )
        async with router:
            await router.track("42", "purchase")

    The router owns the clients it is given: closing it closes them.
    """

    def __init__(
        self,
        clients: Mapping[str, AsyncCustomerIO],
        *,
        resolver: Resolver | None = None,
        default: str | None = None,
    ) -> None:
        if not clients:
            raise ConfigurationError("WorkspaceRouter needs at least one client")
        if default is not None and default not in clients:
            raise ConfigurationError(f"default workspace {default!r} is not among the clients")
        if resolver is None and default is None and len(clients) > 1:
            raise ConfigurationError("give a resolver or a default workspace")
        self._clients = dict(clients)
        self._resolver = resolver
        self._default = default if default is not None else next(iter(clients))

    @property
    def workspaces(self) -> Mapping[str, AsyncCustomerIO]:
        """The clients by workspace name."""
        return dict(self._clients)

    def __getitem__(self, workspace: str) -> AsyncCustomerIO:
        try:
            return self._clients[workspace]
        except KeyError:
            raise ConfigurationError(f"unknown workspace {workspace!r}") from None

    def workspace_for(self, person: PersonRef, workspace: str | None = None) -> str:
        """The workspace a call about ``person`` goes to."""
        if workspace is not None:
            self[workspace]
            return workspace
        if self._resolver is None:
            return self._default
        name = self._resolver(as_person(person))
        if name not in self._clients:
            raise ConfigurationError(f"resolver chose unknown workspace {name!r}")
        return name

    def client_for(self, person: PersonRef, workspace: str | None = None) -> AsyncCustomerIO:
        """The client a call about ``person`` goes to."""
        return self._clients[self.workspace_for(person, workspace)]

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Start every client (region checks included, when configured)."""
        for client in self._clients.values():
            await client.start()

    async def __aenter__(self) -> WorkspaceRouter:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def flush(self, timeout: float | None = None) -> dict[str, FlushResult]:
        """Flush every workspace concurrently."""
        names = list(self._clients)
        results = await asyncio.gather(*(self._clients[n].flush(timeout) for n in names))
        return dict(zip(names, results, strict=True))

    async def aclose(self, timeout: float | None = None) -> dict[str, FlushResult]:
        """Close every client concurrently (each flushes with the deadline)."""
        names = list(self._clients)
        results = await asyncio.gather(
            *(self._clients[n].aclose(timeout) for n in names), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]
        return {n: r for n, r in zip(names, results, strict=True) if isinstance(r, FlushResult)}

    def stats(self) -> dict[str, Stats]:
        """Each workspace's stats snapshot."""
        return {name: c.stats() for name, c in self._clients.items()}

    # -- routed calls --------------------------------------------------------------------

    async def identify(
        self,
        person: PersonRef,
        attributes: Mapping[str, Any] | None = None,
        *,
        workspace: str | None = None,
        **kwargs: Any,
    ) -> bool:
        """``AsyncCustomerIO.identify`` in the person's workspace."""
        return await self.client_for(person, workspace).identify(person, attributes, **kwargs)

    def identify_nowait(
        self,
        person: PersonRef,
        attributes: Mapping[str, Any] | None = None,
        *,
        workspace: str | None = None,
        **kwargs: Any,
    ) -> bool:
        """``AsyncCustomerIO.identify_nowait`` in the person's workspace."""
        return self.client_for(person, workspace).identify_nowait(person, attributes, **kwargs)

    async def track(
        self,
        person: PersonRef,
        name: str,
        data: Mapping[str, Any] | None = None,
        *,
        workspace: str | None = None,
        **kwargs: Any,
    ) -> str:
        """``AsyncCustomerIO.track`` in the person's workspace."""
        return await self.client_for(person, workspace).track(person, name, data, **kwargs)

    def track_nowait(
        self,
        person: PersonRef,
        name: str,
        data: Mapping[str, Any] | None = None,
        *,
        workspace: str | None = None,
        **kwargs: Any,
    ) -> str:
        """``AsyncCustomerIO.track_nowait`` in the person's workspace."""
        return self.client_for(person, workspace).track_nowait(person, name, data, **kwargs)

    async def page(
        self,
        person: PersonRef,
        url: str,
        data: Mapping[str, Any] | None = None,
        *,
        workspace: str | None = None,
        **kwargs: Any,
    ) -> str:
        """``AsyncCustomerIO.page`` in the person's workspace."""
        return await self.client_for(person, workspace).page(person, url, data, **kwargs)

    async def screen(
        self,
        person: PersonRef,
        name: str,
        data: Mapping[str, Any] | None = None,
        *,
        workspace: str | None = None,
        **kwargs: Any,
    ) -> str:
        """``AsyncCustomerIO.screen`` in the person's workspace."""
        return await self.client_for(person, workspace).screen(person, name, data, **kwargs)

    async def delete(
        self, person: PersonRef, *, workspace: str | None = None, wait: bool = False
    ) -> None:
        """``AsyncCustomerIO.delete`` in the person's workspace."""
        await self.client_for(person, workspace).delete(person, wait=wait)

    async def suppress(
        self, person: PersonRef, *, workspace: str | None = None, wait: bool = False
    ) -> None:
        """``AsyncCustomerIO.suppress`` in the person's workspace."""
        await self.client_for(person, workspace).suppress(person, wait=wait)

    async def unsuppress(
        self, person: PersonRef, *, workspace: str | None = None, wait: bool = False
    ) -> None:
        """``AsyncCustomerIO.unsuppress`` in the person's workspace."""
        await self.client_for(person, workspace).unsuppress(person, wait=wait)

    async def add_device(
        self,
        person: PersonRef,
        token: str,
        platform: str,
        *,
        workspace: str | None = None,
        **kwargs: Any,
    ) -> None:
        """``AsyncCustomerIO.add_device`` in the person's workspace."""
        await self.client_for(person, workspace).add_device(person, token, platform, **kwargs)

    async def add_relationships(
        self,
        person: PersonRef,
        relationships: Iterable[RelationshipRef],
        *,
        workspace: str | None = None,
        wait: bool = False,
    ) -> None:
        """``AsyncCustomerIO.add_relationships`` in the person's workspace."""
        await self.client_for(person, workspace).add_relationships(person, relationships, wait=wait)

    async def send(
        self, operation: Operation, *, workspace: str | None = None, wait: bool = False
    ) -> None:
        """Queue any operation: person operations follow the resolver; others (objects,
        deliveries) go to ``workspace`` or the default workspace."""
        if workspace is None and operation.type == "person":
            client = self.client_for(Person._from_key(operation.key))
        else:
            client = self[workspace if workspace is not None else self._default]
        await client.send(operation, wait=wait)
