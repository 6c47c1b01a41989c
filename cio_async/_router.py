"""Several workspaces at once: route each call to the right client."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._client import AsyncCustomerIO
from ._dropped import Dropped
from ._errors import ConfigurationError, ValidationError
from ._model import Operation, Person, PersonRef, RelationshipRef, as_person
from ._workspaces import Workspaces
from .app._api import AppAPI
from .track._api import TrackV1, TrackV2

__all__ = ["WorkspaceRouter"]

#: Picks the workspace name for a person.
Resolver = Callable[[Person], str]


class WorkspaceRouter(Workspaces[AsyncCustomerIO]):
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
        super().__init__(clients, has_resolver=resolver is not None, default=default)
        self._resolver = resolver

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

    def _client_for_operation(self, operation: Operation, workspace: str | None) -> AsyncCustomerIO:
        if not isinstance(operation, Operation):
            raise ConfigurationError(
                "takes an Operation; build one with Person(...), Object(...) or Delivery(...)"
            )
        if workspace is None and operation.type == "person":
            return self.client_for(Person._from_key(operation.key))
        return self[workspace if workspace is not None else self._default]

    @property
    def default(self) -> AsyncCustomerIO:
        """The default workspace's client."""
        return self._clients[self._default]

    @property
    def v1(self) -> TrackV1:
        """The default workspace's Track v1 calls (``router["eu"].v1`` for another)."""
        return self.default.v1

    @property
    def v2(self) -> TrackV2:
        """The default workspace's raw Track v2 calls (``router["eu"].v2`` for another)."""
        return self.default.v2

    @property
    def app(self) -> AppAPI:
        """The default workspace's App API (``router["eu"].app`` for another)."""
        return self.default.app

    @property
    def closed(self) -> bool:
        """True once every client is closed (or closing)."""
        return all(c.closed for c in self._clients.values())

    # -- routed calls --------------------------------------------------------------------

    async def identify(
        self,
        person: PersonRef,
        attributes: Mapping[str, Any] | None = None,
        *,
        workspace: str | None = None,
        **kwargs: Any,
    ) -> bool | Dropped:
        """``AsyncCustomerIO.identify`` in the person's workspace."""
        return await self.client_for(person, workspace).identify(person, attributes, **kwargs)

    def identify_nowait(
        self,
        person: PersonRef,
        attributes: Mapping[str, Any] | None = None,
        *,
        workspace: str | None = None,
        **kwargs: Any,
    ) -> bool | Dropped:
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
    ) -> Dropped | None:
        """``AsyncCustomerIO.delete`` in the person's workspace."""
        return await self.client_for(person, workspace).delete(person, wait=wait)

    async def suppress(
        self, person: PersonRef, *, workspace: str | None = None, wait: bool = False
    ) -> Dropped | None:
        """``AsyncCustomerIO.suppress`` in the person's workspace."""
        return await self.client_for(person, workspace).suppress(person, wait=wait)

    async def unsuppress(
        self, person: PersonRef, *, workspace: str | None = None, wait: bool = False
    ) -> Dropped | None:
        """``AsyncCustomerIO.unsuppress`` in the person's workspace."""
        return await self.client_for(person, workspace).unsuppress(person, wait=wait)

    async def add_device(
        self,
        person: PersonRef,
        token: str,
        platform: str,
        *,
        workspace: str | None = None,
        **kwargs: Any,
    ) -> Dropped | None:
        """``AsyncCustomerIO.add_device`` in the person's workspace."""
        return await self.client_for(person, workspace).add_device(
            person, token, platform, **kwargs
        )

    async def add_relationships(
        self,
        person: PersonRef,
        relationships: Iterable[RelationshipRef],
        *,
        workspace: str | None = None,
        wait: bool = False,
    ) -> Dropped | None:
        """``AsyncCustomerIO.add_relationships`` in the person's workspace."""
        return await self.client_for(person, workspace).add_relationships(
            person, relationships, wait=wait
        )

    async def delete_relationships(
        self,
        person: PersonRef,
        relationships: Iterable[RelationshipRef],
        *,
        workspace: str | None = None,
        wait: bool = False,
    ) -> Dropped | None:
        """``AsyncCustomerIO.delete_relationships`` in the person's workspace."""
        return await self.client_for(person, workspace).delete_relationships(
            person, relationships, wait=wait
        )

    async def delete_device(
        self, person: PersonRef, token: str, *, workspace: str | None = None, wait: bool = False
    ) -> Dropped | None:
        """``AsyncCustomerIO.delete_device`` in the person's workspace."""
        return await self.client_for(person, workspace).delete_device(person, token, wait=wait)

    async def merge(
        self,
        primary: PersonRef,
        secondary: PersonRef,
        *,
        workspace: str | None = None,
        wait: bool = False,
    ) -> Dropped | None:
        """``AsyncCustomerIO.merge`` in the primary's workspace. Without ``workspace=``,
        a secondary the resolver places in another workspace is refused: a merge
        cannot cross workspaces."""
        name = self.workspace_for(primary, workspace)
        if workspace is None and self._resolver is not None:
            other = self.workspace_for(secondary)
            if other != name:
                raise ValidationError(
                    "secondary",
                    f"belongs to workspace {other!r} and the primary to {name!r}; a merge "
                    "cannot cross workspaces (pass workspace= to merge in one)",
                )
        return await self._clients[name].merge(primary, secondary, wait=wait)

    def page_nowait(
        self,
        person: PersonRef,
        url: str,
        data: Mapping[str, Any] | None = None,
        *,
        workspace: str | None = None,
        **kwargs: Any,
    ) -> str:
        """``AsyncCustomerIO.page_nowait`` in the person's workspace."""
        return self.client_for(person, workspace).page_nowait(person, url, data, **kwargs)

    def screen_nowait(
        self,
        person: PersonRef,
        name: str,
        data: Mapping[str, Any] | None = None,
        *,
        workspace: str | None = None,
        **kwargs: Any,
    ) -> str:
        """``AsyncCustomerIO.screen_nowait`` in the person's workspace."""
        return self.client_for(person, workspace).screen_nowait(person, name, data, **kwargs)

    async def track_anonymous(
        self,
        name: str,
        data: Mapping[str, Any] | None = None,
        *,
        workspace: str | None = None,
        **kwargs: Any,
    ) -> str:
        """``AsyncCustomerIO.track_anonymous`` in ``workspace`` (default: the default
        workspace; there is no person to resolve)."""
        client = self[workspace if workspace is not None else self._default]
        return await client.track_anonymous(name, data, **kwargs)

    async def send(
        self, operation: Operation, *, workspace: str | None = None, wait: bool = False
    ) -> Dropped | None:
        """Queue any operation: person operations follow the resolver; others (objects,
        deliveries) go to ``workspace`` or the default workspace."""
        return await self._client_for_operation(operation, workspace).send(operation, wait=wait)

    def send_nowait(self, operation: Operation, *, workspace: str | None = None) -> Dropped | None:
        """``send`` without awaiting (see ``AsyncCustomerIO.send_nowait``)."""
        return self._client_for_operation(operation, workspace).send_nowait(operation)

    async def submit(
        self, operation: Operation, *, workspace: str | None = None, urgent: bool = True
    ) -> asyncio.Future[None]:
        """``AsyncCustomerIO.submit`` routed like ``send``: a future for the delivery."""
        client = self._client_for_operation(operation, workspace)
        return await client.submit(operation, urgent=urgent)
