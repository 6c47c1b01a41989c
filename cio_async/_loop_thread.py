"""The blocking facades' shared half: a private event loop thread running an async
client, and the lifecycle around it (first use, forks, exit, ``close``).

``CustomerIO`` and ``Pipelines`` differ only in which async client they run and which
calls they forward; how that client lives on its thread is here, once.
"""

from __future__ import annotations

import atexit
import multiprocessing.util
import os
import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

import anyio
from anyio.from_thread import BlockingPortal

from ._errors import ClientClosedError
from ._stats import Stats
from .delivery import FlushResult

__all__ = ["LoopThreadFacade"]


class _Client(Protocol):
    async def start(self) -> None: ...

    async def flush(self, timeout: float | None = None) -> FlushResult: ...  # noqa: ASYNC109

    async def aclose(self, timeout: float | None = None) -> FlushResult: ...  # noqa: ASYNC109

    def stats(self) -> Stats: ...


C = TypeVar("C", bound=_Client)
F = TypeVar("F", bound="LoopThreadFacade[Any]")


class _Runner(Generic[C]):
    """One event loop on a daemon thread, a blocking portal into it, and the client.

    A daemon thread (not anyio's ``start_blocking_portal``, whose worker thread is
    joined before ``atexit`` runs) so that a forgotten ``close()`` cannot hang the
    interpreter at exit, and the exit hook can still flush through the portal.
    """

    def __init__(self, factory: Callable[[], C]) -> None:
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
    async def _start(factory: Callable[[], C]) -> C:
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


class LoopThreadFacade(Generic[C]):
    """A blocking client over an async client ``C`` on a private loop thread.

    Internal base of ``CustomerIO`` and ``Pipelines``. The loop thread and the client
    start on first use (``_runner()``), and again on first use in a forked child,
    whose parent's thread does not exist there and whose parent's queue is the
    parent's to deliver. The client is flushed at interpreter exit (``atexit``) and
    when a multiprocessing child exits. Subclasses build the client in
    ``_make_client`` and may do eager work (to fail on bad arguments) in ``_prepare``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closed = False
        self._current: _Runner[C] | None = None
        self._prepare()
        atexit.register(_close_at_exit, weakref.ref(self))

    def _prepare(self) -> None:
        """Hook, at construction: whatever makes bad arguments fail there."""

    def _make_client(self) -> C:
        """Hook: the async client, built on the loop thread."""
        raise NotImplementedError

    def _runner(self) -> _Runner[C]:
        runner = self._current
        if runner is not None and runner.pid == os.getpid():
            return runner
        with self._lock:
            if self._closed:
                raise ClientClosedError(f"the client is closed; create a new {type(self).__name__}")
            runner = self._current
            if runner is None or runner.pid != os.getpid():
                # First use, or first use in a forked child: the parent's loop thread
                # does not exist here and its queue is the parent's to deliver, so
                # start afresh (never close the copy: its sockets are the parent's).
                self._current = runner = _Runner(self._make_client)
                # A multiprocessing child leaves through os._exit, skipping atexit; its
                # finalizers still run first (billiard, Celery's prefork pool, shares
                # this registry). The entry is bound to this pid (a forked grandchild
                # skips it) and holds only a weak reference.
                multiprocessing.util.Finalize(
                    None, _close_at_exit, args=(weakref.ref(self),), exitpriority=10
                )
            return runner

    @property
    def client(self) -> C:
        """The underlying async client (it lives on the loop thread)."""
        return self._runner().client

    def flush(self, timeout: float | None = None) -> FlushResult:
        """Deliver everything queued so far (or until ``timeout``)."""
        runner = self._runner()
        result: FlushResult = runner.portal.call(runner.client.flush, timeout)
        return result

    def stats(self) -> Stats:
        """The client's stats snapshot."""
        runner = self._runner()
        result: Stats = runner.portal.call(runner.client.stats)
        return result

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
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

    def __enter__(self: F) -> F:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _close_at_exit(ref: weakref.ref[LoopThreadFacade[Any]]) -> None:
    client = ref()
    if client is not None and not client.closed:
        client.close()
