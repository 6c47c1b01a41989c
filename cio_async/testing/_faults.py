"""Fault injection for the stand-in: scripted misbehaviour and a rate limit.

``StandIn.fail_next``, ``drop_next`` and ``delay_next`` add a ``Fault`` to its
``FaultScript``; the stand-in's request middleware takes the first matching fault of
each request and applies it. ``RateWindow`` answers whether a request is over the
requests-per-second limit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

__all__ = ["Fault", "FaultScript", "RateWindow", "abort"]


@dataclass
class Fault:
    """A scripted misbehaviour, consumed by the next ``times`` matching requests.

    ``status`` answers with that status (and ``retry_after``/``body``); ``drop`` closes
    the connection without answering, before processing; ``drop_after`` processes the
    request and then drops the connection (the client never sees the success);
    ``delay`` waits that many seconds before handling.
    """

    status: int | None = None
    retry_after: str | None = None
    body: Any = None
    drop: bool = False
    drop_after: bool = False
    delay: float = 0.0
    times: int = 1
    path: str | None = None
    method: str | None = None

    def matches(self, method: str, path: str) -> bool:
        return (self.path is None or path.startswith(self.path)) and (
            self.method is None or self.method == method
        )


class FaultScript:
    """The faults still to be applied, in the order they were scripted."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        self._faults.append(fault)

    def clear(self) -> None:
        self._faults.clear()

    def take(self, method: str, path: str) -> Fault | None:
        """The first fault matching the request, used up once (None: no fault)."""
        for f in self._faults:
            if f.matches(method, path):
                f.times -= 1
                if f.times <= 0:
                    self._faults.remove(f)
                return f
        return None


class RateWindow:
    """The arrival times of the last second's requests, for a requests-per-second limit."""

    def __init__(self) -> None:
        self._times: list[float] = []

    def admit(self, limit: float) -> bool:
        """Count a request now; False if it is over ``limit`` (and so not counted)."""
        now = time.monotonic()
        times = self._times
        while times and times[0] < now - 1.0:
            times.pop(0)
        if len(times) >= limit:
            return False
        times.append(now)
        return True

    def clear(self) -> None:
        self._times.clear()


def abort(request: web.Request) -> None:
    """Close the request's connection without an answer."""
    transport = request.transport
    if transport is not None:
        transport.abort()
