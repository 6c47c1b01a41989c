"""Shutdown hooks for the places users run the client: aiohttp apps, ASGI apps
(FastAPI, Starlette) and plain workers stopped by SIGTERM/SIGINT.

Each starts the client with the app and closes it with the app: admission stops,
the queue is flushed within the deadline, and whatever cannot be delivered goes to
``on_drop`` with reason ``shutdown``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from aiohttp import web

from ._client import AsyncCustomerIO
from .pipelines import AsyncPipelines

__all__ = ["CLIENT_KEY", "aiohttp_cleanup_ctx", "asgi_lifespan", "install_signal_handlers"]

log = logging.getLogger("cio_async")

#: Either client: the hooks only start and close it.
Client = AsyncCustomerIO | AsyncPipelines

#: Where ``aiohttp_cleanup_ctx`` stores the client: ``request.app[CLIENT_KEY]``.
CLIENT_KEY: web.AppKey[AsyncCustomerIO] = web.AppKey("cio_async_client", AsyncCustomerIO)


def aiohttp_cleanup_ctx(
    client: Client,
    *,
    timeout: float | None = None,
    key: web.AppKey[Any] = CLIENT_KEY,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context for an aiohttp ``web.Application``::

        app.cleanup_ctx.append(aiohttp_cleanup_ctx(AsyncCustomerIO(...)))
        # in handlers: request.app[CLIENT_KEY].track_nowait(...)

    An ``AsyncPipelines`` works the same (store it under your own ``web.AppKey``).
    The client starts with the app and is flushed (``timeout`` seconds at most) and
    closed on app cleanup, after the server stopped taking requests.
    """

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        await client.start()
        app[key] = client
        try:
            yield
        finally:
            await client.aclose(timeout)

    return ctx


def asgi_lifespan(
    client: Client, *, timeout: float | None = None
) -> Callable[[Any], contextlib.AbstractAsyncContextManager[dict[str, Any]]]:
    """A lifespan for FastAPI/Starlette: ``FastAPI(lifespan=asgi_lifespan(client))``.

    On startup the client starts; on shutdown it is flushed (``timeout`` seconds at
    most) and closed. The lifespan state carries the client as ``"cio"`` (Starlette:
    ``request.state.cio``).
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[dict[str, Any]]:
        await client.start()
        try:
            yield {"cio": client}
        finally:
            await client.aclose(timeout)

    return lifespan


def install_signal_handlers(
    client: Client,
    *,
    timeout: float | None = None,
    signals: Iterable[signal.Signals] = (signal.SIGTERM, signal.SIGINT),
    on_closed: Callable[[], object] | None = None,
) -> asyncio.Event:
    """Close ``client`` gracefully when the process gets SIGTERM or SIGINT.

    Call from the running loop. Returns an event that is set once the client has
    flushed (within ``timeout``) and closed, so a worker can simply
    ``await install_signal_handlers(cio).wait()``; ``on_closed`` runs then too
    (e.g. to stop the rest of the program). Unix only (``loop.add_signal_handler``).
    """
    loop = asyncio.get_running_loop()
    closed = asyncio.Event()
    tasks: set[asyncio.Task[None]] = set()
    sigs = tuple(signals)

    async def shutdown(signame: str) -> None:
        log.info("cio_async: %s received; flushing and closing the client", signame)
        try:
            await client.aclose(timeout)
        finally:
            closed.set()
            for s in sigs:
                loop.remove_signal_handler(s)
            if on_closed is not None:
                try:
                    on_closed()
                except Exception:
                    log.exception("cio_async: on_closed callback raised")

    def handler(sig: signal.Signals) -> None:
        if tasks or closed.is_set():
            return  # already closing: a second signal changes nothing
        task = loop.create_task(shutdown(sig.name), name="cio_async-signal-shutdown")
        tasks.add(task)  # a strong reference until it finishes
        task.add_done_callback(tasks.discard)

    for sig in sigs:
        loop.add_signal_handler(sig, handler, sig)
    return closed
