"""``Pipelines``: the blocking facade of ``AsyncPipelines`` for synchronous code.

The same runner as ``CustomerIO`` (a private event loop thread behind an anyio
blocking portal): calls validate and encode on the caller's thread and hand the bytes
to the loop thread without waiting, unless ``wait=True``. Fork-safe (a child starts
its own loop and never re-sends the parent's queue); flushed at interpreter exit.
"""

from __future__ import annotations

import atexit
import functools
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .._errors import ClientClosedError
from .._stats import Stats
from .._sync import _Runner
from ..delivery import FlushResult
from ._client import AsyncPipelines

__all__ = ["Pipelines"]


class Pipelines:
    """The blocking Pipelines client: same arguments as ``AsyncPipelines``.

    ::

        cdp = Pipelines(write_key)
        cdp.identify("42", {"plan": "pro"})          # returns the messageId at once
        cdp.track("42", "purchase", {"amount": 30})
        cdp.track("42", "refund", wait=True)          # blocks until accepted (or raises)
        cdp.close()                                    # or `with Pipelines(...) as cdp:`

    Callbacks (``on_error``, ``on_drop``, hooks) run on the loop thread.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._args = args
        self._kwargs = kwargs
        self._lock = threading.Lock()
        self._closed = False
        self._current: _Runner[AsyncPipelines] | None = None
        self._runner()
        atexit.register(_close_at_exit, weakref.ref(self))

    def _runner(self) -> _Runner[AsyncPipelines]:
        runner = self._current
        if runner is not None and runner.pid == os.getpid():
            return runner
        with self._lock:
            if self._closed:
                raise ClientClosedError("the client is closed; create a new Pipelines")
            runner = self._current
            if runner is None or runner.pid != os.getpid():
                # First use, or first use in a forked child: start afresh (the
                # parent's queue is the parent's to deliver).
                self._current = runner = _Runner(
                    lambda: AsyncPipelines(*self._args, **self._kwargs)
                )
            return runner

    @property
    def client(self) -> AsyncPipelines:
        """The underlying ``AsyncPipelines`` (lives on the loop thread)."""
        return self._runner().client

    def _send(self, name: str, args: tuple[Any, ...], kw: dict[str, Any]) -> Any:
        runner = self._runner()
        if kw.pop("wait", False):
            method: Callable[..., Any] = getattr(runner.client, name)
            return runner.portal.call(functools.partial(method, *args, wait=True, **kw))
        return getattr(runner.client, f"{name}_nowait")(*args, **kw)

    def identify(
        self, user_id: str | int | None = None, traits: Mapping[str, Any] | None = None, **kw: Any
    ) -> str:
        """Queue an identify; returns its ``messageId`` (``wait=True`` blocks until
        Customer.io accepted it)."""
        return str(self._send("identify", (user_id, traits), kw))

    def track(
        self,
        user_id: str | int | None = None,
        event: str | None = None,
        properties: Mapping[str, Any] | None = None,
        **kw: Any,
    ) -> str:
        """Queue an event; returns its ``messageId``."""
        return str(self._send("track", (user_id, event, properties), kw))

    def page(self, user_id: str | int | None = None, *args: Any, **kw: Any) -> str:
        """Queue a page view (``category``, ``name``, ``properties``)."""
        return str(self._send("page", (user_id, *args), kw))

    def screen(self, user_id: str | int | None = None, *args: Any, **kw: Any) -> str:
        """Queue a screen view (``category``, ``name``, ``properties``)."""
        return str(self._send("screen", (user_id, *args), kw))

    def group(
        self,
        user_id: str | int | None = None,
        group_id: str | int | None = None,
        traits: Mapping[str, Any] | None = None,
        **kw: Any,
    ) -> str:
        """Queue a group call."""
        return str(self._send("group", (user_id, group_id, traits), kw))

    def alias(
        self, previous_id: str | int | None = None, user_id: str | int | None = None, **kw: Any
    ) -> str:
        """Queue an alias."""
        return str(self._send("alias", (previous_id, user_id), kw))

    def batch(self, calls: Iterable[Mapping[str, Any]], *, wait: bool = False) -> list[str]:
        """Queue Segment-style call dicts; returns their ``messageId``s."""
        result: list[str] = self._send("batch", (list(calls),), {"wait": wait})
        return result

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

    def __enter__(self) -> Pipelines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _close_at_exit(ref: weakref.ref[Pipelines]) -> None:
    client = ref()
    if client is not None and not client.closed:
        client.close()
