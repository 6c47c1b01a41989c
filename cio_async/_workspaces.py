"""``Workspaces``: the routers' shared half, one client per workspace name and the
lifecycle over all of them (start, flush, close, stats).

``WorkspaceRouter`` (Track) and ``PipelinesRouter`` differ only in how a call picks
its workspace; holding and closing the clients is here, once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Generic, Protocol, TypeVar

from ._errors import ConfigurationError
from ._stats import Stats
from .delivery import FlushResult

__all__ = ["Workspaces"]


class _Client(Protocol):
    async def start(self) -> None: ...

    async def flush(self, timeout: float | None = None) -> FlushResult: ...

    async def aclose(self, timeout: float | None = None) -> FlushResult: ...

    def stats(self) -> Stats: ...


C = TypeVar("C", bound=_Client)
W = TypeVar("W", bound="Workspaces[Any]")


class Workspaces(Generic[C]):
    """Internal base of the routers: the clients by workspace name, owned (closing the
    router closes them), with the default workspace checked at construction."""

    def __init__(
        self, clients: Mapping[str, C], *, has_resolver: bool, default: str | None
    ) -> None:
        if not clients:
            raise ConfigurationError(f"{type(self).__name__} needs at least one client")
        if default is not None and default not in clients:
            raise ConfigurationError(f"default workspace {default!r} is not among the clients")
        if not has_resolver and default is None and len(clients) > 1:
            raise ConfigurationError("give a resolver or a default workspace")
        self._clients = dict(clients)
        self._default = default if default is not None else next(iter(clients))

    @property
    def workspaces(self) -> Mapping[str, C]:
        """The clients by workspace name."""
        return dict(self._clients)

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Start every client, one after another (a failing one stops the rest)."""
        for client in self._clients.values():
            await client.start()

    async def __aenter__(self: W) -> W:
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
