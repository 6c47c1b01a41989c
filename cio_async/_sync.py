"""``CustomerIO``: a blocking facade for synchronous code (Django, Celery, scripts).

It runs an ``AsyncCustomerIO`` on a private event loop thread through an anyio
blocking portal, so sync code gets the same pooling, batching, retries and
accounting. Fire-and-forget calls (``track``, ``page``, ``screen``, ``send``) hand
the event to the loop thread without waiting for it; the rest wait for their answer.

Fork-safe: a child process (gunicorn ``preload_app``, multiprocessing) starts its own
loop thread and client on first use and never re-sends what the parent had queued.
At interpreter exit the client is flushed with ``config.batch.shutdown_timeout``.
"""

from __future__ import annotations

import atexit
import functools
import inspect
import os
import queue
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import anyio
from anyio.from_thread import BlockingPortal

from ._client import AsyncCustomerIO
from ._errors import ClientClosedError
from ._model import Operation, PersonRef
from ._stats import Stats
from .delivery import FlushResult

__all__ = ["CustomerIO"]


class _Runner:
    """One event loop on a daemon thread, a blocking portal into it, and the client.

    A daemon thread (not anyio's ``start_blocking_portal``, whose worker thread is
    joined before ``atexit`` runs) so that a forgotten ``close()`` cannot hang the
    interpreter at exit, and the exit hook can still flush through the portal.
    """

    def __init__(self, factory: Callable[[], AsyncCustomerIO]) -> None:
        self.pid = os.getpid()
        handoff: queue.Queue[BlockingPortal | BaseException] = queue.Queue()

        async def serve() -> None:
            async with BlockingPortal() as portal:
                handoff.put(portal)
                await portal.sleep_until_stopped()

        def run() -> None:
            try:
                anyio.run(serve, backend="asyncio")
            except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
                handoff.put(exc)

        self._thread = threading.Thread(target=run, name="cio_async-loop", daemon=True)
        self._thread.start()
        got = handoff.get()
        if isinstance(got, BaseException):
            raise got
        self.portal = got
        try:
            self.client = self.portal.call(self._start, factory)
        except BaseException:
            self._stop()
            raise

    @staticmethod
    async def _start(factory: Callable[[], AsyncCustomerIO]) -> AsyncCustomerIO:
        client = factory()
        await client.start()
        return client

    def _stop(self) -> None:
        self.portal.call(self.portal.stop)
        self._thread.join()

    def close(self, timeout: float | None) -> FlushResult:
        try:
            result: FlushResult = self.portal.call(self.client.aclose, timeout)
            return result
        finally:
            self._stop()


class _Proxy:
    """``client.v1`` / ``client.app`` for sync code: every method runs on the loop
    thread; coroutines are awaited there, async iterators (``app.search_people``) are
    collected into a list."""

    def __init__(self, owner: CustomerIO, attr: str) -> None:
        self._owner = owner
        self._attr = attr

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        attr = self._attr

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._owner._call_on(
                lambda c: functools.partial(_resolve, getattr(getattr(c, attr), name)),
                *args,
                **kwargs,
            )

        call.__name__ = name
        return call


async def _resolve(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    result = fn(*args, **kwargs)
    if inspect.isawaitable(result):
        return await result
    if hasattr(result, "__aiter__") and hasattr(result, "collect"):
        return await result.collect()
    return result


class CustomerIO:
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

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._args = args
        self._kwargs = kwargs
        self._lock = threading.Lock()
        self._closed = False
        self._current: _Runner | None = None
        self.v1: Any = _Proxy(self, "v1")
        self.app: Any = _Proxy(self, "app")
        self._runner()
        atexit.register(_close_at_exit, weakref.ref(self))

    def _runner(self) -> _Runner:
        runner = self._current
        if runner is not None and runner.pid == os.getpid():
            return runner
        with self._lock:
            if self._closed:
                raise ClientClosedError("the client is closed; create a new CustomerIO")
            runner = self._current
            if runner is None or runner.pid != os.getpid():
                # First use, or first use in a forked child: the parent's loop thread
                # does not exist here and its queue is the parent's to deliver, so
                # start afresh (never close the copy: its sockets are the parent's).
                self._current = runner = _Runner(
                    lambda: AsyncCustomerIO(*self._args, **self._kwargs)
                )
            return runner

    def _call_on(
        self, pick: Callable[[AsyncCustomerIO], Callable[..., Any]], *args: Any, **kwargs: Any
    ) -> Any:
        runner = self._runner()
        return runner.portal.call(functools.partial(pick(runner.client), *args, **kwargs))

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._call_on(lambda c: getattr(c, method), *args, **kwargs)

    @property
    def client(self) -> AsyncCustomerIO:
        """The underlying ``AsyncCustomerIO`` (lives on the loop thread)."""
        return self._runner().client

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

    # -- waited calls ------------------------------------------------------------------

    def identify(
        self, person: PersonRef, attributes: Mapping[str, Any] | None = None, **kw: Any
    ) -> bool:
        """Identify (deduplicated on the loop thread). Waits for admission only,
        unless ``wait=True``."""
        return bool(self._call("identify", person, attributes, **kw))

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

    def flush(self, timeout: float | None = None) -> FlushResult:
        """Deliver everything queued so far (or until ``timeout``)."""
        result: FlushResult = self._call("flush", timeout)
        return result

    def stats(self) -> Stats:
        """The client's stats snapshot."""
        runner = self._runner()
        result: Stats = runner.portal.call(runner.client.stats)
        return result

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self, timeout: float | None = None) -> FlushResult:
        """Flush (within ``timeout``), close the client and stop the loop thread.
        Idempotent."""
        with self._lock:
            if self._closed:
                return FlushResult(0, 0, 0, 0)
            self._closed = True
            runner, self._current = self._current, None
        if runner is None or runner.pid != os.getpid():
            return FlushResult(0, 0, 0, 0)
        return runner.close(timeout)

    def __enter__(self) -> CustomerIO:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _close_at_exit(ref: weakref.ref[CustomerIO]) -> None:
    client = ref()
    if client is not None and not client.closed:
        client.close()
