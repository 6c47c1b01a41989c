"""``AsyncCustomerIO``: the client users hold. Wires the parts and owns the lifecycle."""

from __future__ import annotations

import enum
import warnings
from types import TracebackType
from typing import Any

import aiohttp

from ._config import ClientConfig, PoolConfig, Region, RetryPolicy
from ._errors import ClientClosedError, ConfigurationError
from ._track import TrackV1, TrackV2
from ._transport import Transport

__all__ = ["AsyncCustomerIO"]


class _State(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    CLOSING = "closing"
    CLOSED = "closed"


class AsyncCustomerIO:
    """The asyncio Customer.io client.

    Args:
        site_id: Track API site id (HTTP Basic user).
        track_api_key: Track API key.
        app_api_key: App API key (Bearer), for transactional messages and lookups.
        region: ``Region.US`` (default), ``Region.EU`` or ``Region.custom(...)``.
        config: a full ``ClientConfig``; exclusive with the keyword arguments above.
        session: an ``aiohttp.ClientSession`` to borrow. It is never closed by this
            client, and its connector's limits apply instead of ``config.pool``.

    Construction does no I/O and needs no running loop: the session and its
    connection pool are created on first use, inside the loop. Use the client as
    ``async with AsyncCustomerIO(...) as cio:`` or call ``await cio.aclose()``.

    Attributes:
        v1: Track API v1, one request per call (``await cio.v1.identify(...)``).
        v2: Track API v2, ``entity(op)`` and raw ``batch(ops)``.
    """

    _state: _State = _State.CLOSED  # keeps __del__ quiet if __init__ raised

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
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        if config is not None:
            if site_id or track_api_key or app_api_key or region:
                raise ConfigurationError("pass either config= or credentials/region, not both")
            changes: dict[str, Any] = {}
            if pool is not None:
                changes["pool"] = pool
            if retry is not None:
                changes["retry"] = retry
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
                pool=pool or PoolConfig(),
                retry=retry or RetryPolicy(),
            )
        if session is not None and not isinstance(session, aiohttp.ClientSession):
            raise ConfigurationError("session must be an aiohttp.ClientSession")
        self._config = config
        self._transport = Transport(config, session)
        self.v1 = TrackV1(self._transport)
        self.v2 = TrackV2(self._transport)
        self._state = _State.NEW

    @classmethod
    def from_env(cls, **overrides: Any) -> AsyncCustomerIO:
        """Build a client from ``CUSTOMERIO_*`` environment variables (see
        ``ClientConfig.from_env``). Keyword ``overrides`` go to ``ClientConfig``."""
        session = overrides.pop("session", None)
        return cls(config=ClientConfig.from_env(**overrides), session=session)

    @property
    def config(self) -> ClientConfig:
        """The frozen configuration."""
        return self._config

    @property
    def closed(self) -> bool:
        """True once ``aclose()`` has begun."""
        return self._state in (_State.CLOSING, _State.CLOSED)

    def __repr__(self) -> str:
        return (
            f"<AsyncCustomerIO region={self._config.region.name!r} "
            f"track_url={self._config.region.track_url!r} state={self._state.value}>"
        )

    def _check_open(self) -> None:
        if self._state in (_State.CLOSING, _State.CLOSED):
            raise ClientClosedError("the client is closed; create a new AsyncCustomerIO")
        self._state = _State.RUNNING

    async def __aenter__(self) -> AsyncCustomerIO:
        self._check_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client: release the connection pool (if we created it).

        Idempotent; later calls on the client raise ``ClientClosedError``.
        """
        if self._state in (_State.CLOSING, _State.CLOSED):
            return
        self._state = _State.CLOSING
        try:
            await self._transport.aclose()
        finally:
            self._state = _State.CLOSED

    def __del__(self, _warn: Any = warnings.warn) -> None:
        if self._state is _State.CLOSED:
            return
        transport = getattr(self, "_transport", None)
        # Warn only when the client acquired something (a loop, a session).
        if transport is not None and transport.started and not transport.closed:
            _warn(
                f"unclosed {self!r}: call 'await client.aclose()' or use 'async with'",
                ResourceWarning,
                source=self,
                stacklevel=2,
            )
