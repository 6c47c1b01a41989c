"""Several Pipelines sources (workspaces, regions) at once: route each call to one."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .._errors import ConfigurationError
from .._workspaces import Workspaces
from ._client import AsyncPipelines

__all__ = ["PipelinesRouter"]

#: ``resolver(user_id, anonymous_id) -> workspace name``.
CallResolver = Callable[["str | None", "str | None"], str]


class PipelinesRouter(Workspaces[AsyncPipelines]):
    """Holds one ``AsyncPipelines`` per workspace (a write key each, possibly in
    different regions) and sends each call to one of them, as ``WorkspaceRouter``
    does for Track: the explicit ``workspace=`` of a call, else
    ``resolver(user_id, anonymous_id)``, else ``default``::

        router = PipelinesRouter(
            {"us": AsyncPipelines(us_key), "eu": AsyncPipelines(eu_key)},
            resolver=lambda user, anon: "eu" if user in eu_users else "us",
        )
        async with router:
            await router.track("42", "purchase")

    The router owns its clients: closing it closes them.
    """

    def __init__(
        self,
        clients: Mapping[str, AsyncPipelines],
        *,
        resolver: CallResolver | None = None,
        default: str | None = None,
    ) -> None:
        super().__init__(clients, has_resolver=resolver is not None, default=default)
        self._resolver = resolver

    def client_for(
        self,
        user_id: object = None,
        anonymous_id: object = None,
        workspace: str | None = None,
    ) -> AsyncPipelines:
        """The client a call about this user goes to."""
        if workspace is None:
            if self._resolver is None:
                workspace = self._default
            else:
                workspace = self._resolver(
                    None if user_id is None else str(user_id),
                    None if anonymous_id is None else str(anonymous_id),
                )
        try:
            return self._clients[workspace]
        except KeyError:
            raise ConfigurationError(f"unknown workspace {workspace!r}") from None

    # -- routed calls (same arguments as AsyncPipelines, plus ``workspace=``) ----------

    def _route(
        self, args: tuple[Any, ...], kw: dict[str, Any], user_pos: int = 0
    ) -> AsyncPipelines:
        user = args[user_pos] if len(args) > user_pos else kw.get("user_id")
        return self.client_for(user, kw.get("anonymous_id"), kw.pop("workspace", None))

    async def identify(self, *args: Any, **kw: Any) -> str:
        """``AsyncPipelines.identify`` in the user's workspace."""
        return await self._route(args, kw).identify(*args, **kw)

    def identify_nowait(self, *args: Any, **kw: Any) -> str:
        """``AsyncPipelines.identify_nowait`` in the user's workspace."""
        return self._route(args, kw).identify_nowait(*args, **kw)

    async def track(self, *args: Any, **kw: Any) -> str:
        """``AsyncPipelines.track`` in the user's workspace."""
        return await self._route(args, kw).track(*args, **kw)

    def track_nowait(self, *args: Any, **kw: Any) -> str:
        """``AsyncPipelines.track_nowait`` in the user's workspace."""
        return self._route(args, kw).track_nowait(*args, **kw)

    async def page(self, *args: Any, **kw: Any) -> str:
        """``AsyncPipelines.page`` in the user's workspace."""
        return await self._route(args, kw).page(*args, **kw)

    async def screen(self, *args: Any, **kw: Any) -> str:
        """``AsyncPipelines.screen`` in the user's workspace."""
        return await self._route(args, kw).screen(*args, **kw)

    async def group(self, *args: Any, **kw: Any) -> str:
        """``AsyncPipelines.group`` in the user's workspace."""
        return await self._route(args, kw).group(*args, **kw)

    async def alias(self, *args: Any, **kw: Any) -> str:
        """``AsyncPipelines.alias`` in the user's workspace (routed by ``user_id``)."""
        return await self._route(args, kw, user_pos=1).alias(*args, **kw)

    async def batch(
        self,
        calls: Iterable[Mapping[str, Any]],
        *,
        workspace: str | None = None,
        wait: bool = False,
    ) -> list[str]:
        """A raw batch, all to one workspace (``workspace=``, else the default)."""
        return await self.client_for(workspace=workspace or self._default).batch(calls, wait=wait)
