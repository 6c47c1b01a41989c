"""``CustomerIO``: a blocking facade for synchronous code (Django, Celery, scripts).

It runs an ``AsyncCustomerIO`` on a private event loop thread through an anyio
blocking portal, so sync code gets the same pooling, batching, retries and
accounting. Fire-and-forget calls (``track``, ``page``, ``screen``, ``send``) hand
the event to the loop thread without waiting for it; the rest wait for their answer.

The loop thread starts on first use, not at construction. Fork-safe: a child process
(gunicorn ``preload_app``, multiprocessing, Celery prefork) starts its own loop thread
and client on first use and never re-sends what the parent had queued. The client is
flushed with ``config.batch.shutdown_timeout`` at interpreter exit (``atexit``) and
when a multiprocessing or billiard (Celery prefork) child exits (its finalizers run
before its ``os._exit``);
Celery and gunicorn workers call ``close()`` from their exit hooks (see the README).
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from typing import Any

from ._client import AsyncCustomerIO
from ._config import ClientConfig
from ._dropped import DROPPED, Dropped
from ._loop_thread import LoopThreadFacade
from ._model import Operation, PersonRef, RelationshipRef
from ._sync_api import SyncAppAPI, SyncTrackV1, SyncTrackV2, future_of
from .track._api import AccountRegion

__all__ = ["CustomerIO"]


async def _resolve(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    result = fn(*args, **kwargs)
    if inspect.isawaitable(result):
        return await result
    if hasattr(result, "__aiter__") and hasattr(result, "collect"):
        return await result.collect()
    return result


class CustomerIO(LoopThreadFacade[AsyncCustomerIO]):
    """The blocking Customer.io client: same arguments as ``AsyncCustomerIO``.

    ::

        cio = CustomerIO(site_id, track_api_key)
        cio.identify("42", {"plan": "pro"})
        cio.track("42", "purchase", {"amount": 30})     # returns at once
        cio.v1.submit_form("newsletter", {"email": "a@example.com"})
        cio.app.send(TransactionalEmail(...))            # App API, same methods

        cio.close()                                       # or use `with CustomerIO(...)`

    Callbacks (``on_error``, ``on_drop``, hooks) run on the loop thread.
    """

    v1: SyncTrackV1
    v2: SyncTrackV2
    app: SyncAppAPI

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._args = args
        self._kwargs = kwargs
        #: Track v1 calls (``AsyncCustomerIO.v1``), blocking.
        self.v1 = SyncTrackV1(self._on_loop)
        #: Raw Track v2 calls (``AsyncCustomerIO.v2``), blocking.
        self.v2 = SyncTrackV2(self._on_loop)
        #: The App API (``AsyncCustomerIO.app``), blocking; ``app.send_nowait`` does not.
        self.app = SyncAppAPI(self._on_loop)
        super().__init__()

    def _prepare(self) -> None:
        # Built now so bad arguments fail here; it binds to nothing until the loop
        # thread (started on first use) starts it.
        self._prepared: tuple[int, AsyncCustomerIO] | None = (
            os.getpid(),
            AsyncCustomerIO(*self._args, **self._kwargs),
        )

    def _make_client(self) -> AsyncCustomerIO:
        prepared, self._prepared = self._prepared, None
        if prepared is not None and prepared[0] == os.getpid():
            return prepared[1]
        return AsyncCustomerIO(*self._args, **self._kwargs)

    def _call_on(
        self, pick: Callable[[AsyncCustomerIO], Callable[..., Any]], *args: Any, **kwargs: Any
    ) -> Any:
        runner = self._runner()
        return runner.portal.call(functools.partial(pick(runner.client), *args, **kwargs))

    def _on_loop(self, fn: Callable[[AsyncCustomerIO], Any], *, wait: bool = True) -> Any:
        runner = self._runner()
        if wait:
            return runner.portal.call(_resolve, fn, runner.client)
        return runner.portal.call(fn, runner.client)

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._call_on(lambda c: getattr(c, method), *args, **kwargs)

    # -- fire and forget ---------------------------------------------------------------

    def track(
        self, person: PersonRef, name: str, data: Mapping[str, Any] | None = None, **kw: Any
    ) -> str:
        """Queue an event and return its id at once (``track_nowait`` on the loop)."""
        return self._runner().client.track_nowait(person, name, data, **kw)

    def page(
        self, person: PersonRef, url: str, data: Mapping[str, Any] | None = None, **kw: Any
    ) -> str:
        """Queue a page view and return its id at once."""
        return self._runner().client.page_nowait(person, url, data, **kw)

    def screen(
        self, person: PersonRef, name: str, data: Mapping[str, Any] | None = None, **kw: Any
    ) -> str:
        """Queue a screen view and return its id at once."""
        return self._runner().client.screen_nowait(person, name, data, **kw)

    def send(self, operation: Operation) -> None:
        """Queue any Track v2 operation at once."""
        self._runner().client.send_nowait(operation)

    # The ``*_nowait`` names of ``AsyncCustomerIO``: the same non-blocking calls.
    track_nowait = track
    page_nowait = page
    screen_nowait = screen
    send_nowait = send

    def identify_nowait(
        self, person: PersonRef, attributes: Mapping[str, Any] | None = None, **kw: Any
    ) -> bool | Dropped:
        """Queue an identify at once (``identify_nowait`` on the calling thread:
        deduplication applies on the loop thread only)."""
        return self._runner().client.identify_nowait(person, attributes, **kw)

    # -- waited calls ------------------------------------------------------------------

    def identify(
        self, person: PersonRef, attributes: Mapping[str, Any] | None = None, **kw: Any
    ) -> bool | Dropped:
        """Identify (deduplicated on the loop thread). Waits for admission only,
        unless ``wait=True``. Returns as ``AsyncCustomerIO.identify`` does."""
        result = self._call("identify", person, attributes, **kw)
        return DROPPED if result is DROPPED else bool(result)

    def track_and_wait(
        self, person: PersonRef, name: str, data: Mapping[str, Any] | None = None, **kw: Any
    ) -> str:
        """Track and block until Customer.io accepted the event (or raise)."""
        return str(self._call("track", person, name, data, wait=True, **kw))

    def delete(self, person: PersonRef, **kw: Any) -> None:
        """Delete a person."""
        self._call("delete", person, **kw)

    def suppress(self, person: PersonRef, **kw: Any) -> None:
        """Suppress a person."""
        self._call("suppress", person, **kw)

    def unsuppress(self, person: PersonRef, **kw: Any) -> None:
        """Unsuppress a person."""
        self._call("unsuppress", person, **kw)

    def merge(self, primary: PersonRef, secondary: PersonRef, **kw: Any) -> None:
        """Merge ``secondary`` into ``primary``."""
        self._call("merge", primary, secondary, **kw)

    def add_device(self, person: PersonRef, token: str, platform: str, **kw: Any) -> None:
        """Add or update a push device (``ios`` or ``android``)."""
        self._call("add_device", person, token, platform, **kw)

    def delete_device(self, person: PersonRef, token: str, **kw: Any) -> None:
        """Remove a push device."""
        self._call("delete_device", person, token, **kw)

    def add_relationships(
        self, person: PersonRef, relationships: Iterable[RelationshipRef], **kw: Any
    ) -> None:
        """Relate a person to objects."""
        self._call("add_relationships", person, relationships, **kw)

    def delete_relationships(
        self, person: PersonRef, relationships: Iterable[RelationshipRef], **kw: Any
    ) -> None:
        """Remove relationships between a person and objects."""
        self._call("delete_relationships", person, relationships, **kw)

    def submit(self, operation: Operation, *, urgent: bool = True) -> Future[None]:
        """Queue ``operation`` and return a ``concurrent.futures.Future`` for its
        delivery, without waiting (see ``AsyncCustomerIO.submit``)."""

        async def submit(client: AsyncCustomerIO) -> Future[None]:
            return future_of(await client.submit(operation, urgent=urgent))

        result: Future[None] = self._on_loop(submit)
        return result

    def track_anonymous(self, name: str, data: Mapping[str, Any] | None = None, **kw: Any) -> str:
        """An anonymous (or invite) event, a direct v1 request; returns its id."""
        return str(self._call("track_anonymous", name, data, **kw))

    def check_region(self) -> AccountRegion:
        """See ``AsyncCustomerIO.check_region``."""
        result: AccountRegion = self._call("check_region")
        return result

    def start(self) -> None:
        """Start the loop thread and the client now (done on first use otherwise)."""
        self._runner()

    @classmethod
    def from_env(cls, **kwargs: Any) -> CustomerIO:
        """A client configured from ``CUSTOMERIO_*`` environment variables (see
        ``ClientConfig.from_env``); other keyword arguments go to the constructor."""
        config_keys = set(ClientConfig.__dataclass_fields__)
        overrides = {k: kwargs.pop(k) for k in list(kwargs) if k in config_keys}
        return cls(config=ClientConfig.from_env(**overrides), **kwargs)

    @property
    def config(self) -> ClientConfig:
        """The frozen configuration."""
        return self._runner().client.config
