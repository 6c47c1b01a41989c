"""``Pipelines``: the blocking facade of ``AsyncPipelines`` for synchronous code.

The same runner as ``CustomerIO`` (a private event loop thread behind an anyio
blocking portal): calls validate and encode on the caller's thread and hand the bytes
to the loop thread without waiting, unless ``wait=True``. Fork-safe (a child starts
its own loop and never re-sends the parent's queue); flushed at interpreter exit and
when a multiprocessing child exits.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .._loop_thread import LoopThreadFacade
from ._client import AsyncPipelines

__all__ = ["Pipelines"]


class Pipelines(LoopThreadFacade[AsyncPipelines]):
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
        super().__init__()

    def _prepare(self) -> None:
        self._runner()  # the loop thread and client now: bad arguments fail here

    def _make_client(self) -> AsyncPipelines:
        return AsyncPipelines(*self._args, **self._kwargs)

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
