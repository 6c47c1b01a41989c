"""Client-side rate limiting: callers wait their turn instead of collecting 429s.

No I/O here; the clock and the sleep are injectable so tests can drive a fake clock.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from .._errors import ConfigurationError

if TYPE_CHECKING:
    from .._config import RateLimit

__all__ = ["Limiter", "RateBudget", "RateLimiter"]

#: The longest a 429 may pause a limiter: a longer Retry-After (a daily quota) is the
#: caller's problem to see as an error, not a reason to stall every other caller.
MAX_PAUSE = 60.0


class Limiter(Protocol):
    """What the transport needs from a rate limiter: ``RateLimiter`` (one process) and
    the shared Redis limiter (``cio_async.redis``) both implement it."""

    async def acquire(self) -> None:
        """Wait until one more request may go."""

    def pause(self, retry_after: float | None = None) -> None:
        """The server answered 429: hold every grant back for ``retry_after`` seconds."""


class RateBudget(Protocol):
    """Hands out the limiters a client uses, one per API budget: ``track`` (Track
    pipeline and direct calls), ``app``, ``app_send`` and ``app_broadcast``. A shared
    budget (``cio_async.redis.RedisRateBudget``) makes every process of a fleet draw
    from one budget per workspace."""

    def limiter(self, api: str, limit: RateLimit | None = None) -> Limiter:
        """The limiter for ``api``'s budget of ``limit`` (None: the budget's own limit
        for ``api``; the client asks for ``track`` that way)."""


class RateLimiter:
    """At most ``limit`` acquisitions in any ``period`` seconds, granted in arrival
    order (a sliding-window log).

    A sliding window rather than a token bucket: a bucket refilled at ``limit/period``
    with ``limit`` tokens of burst lets up to twice the limit through in one window,
    which is exactly what a server counting per window answers with 429. ``pause()``
    holds every grant back after the server said 429.
    """

    def __init__(
        self,
        limit: int,
        period: float,
        *,
        max_pause: float = MAX_PAUSE,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not isinstance(limit, int) or limit < 1:
            raise ConfigurationError("a rate limit must allow at least one request")
        if not period > 0:
            raise ConfigurationError("a rate limit period must be positive")
        self.limit = limit
        self.period = float(period)
        self.max_pause = max_pause
        self._clock = clock
        self._sleep = sleep
        self._grants: deque[float] = deque()
        # asyncio.Lock wakes waiters in FIFO order, which is what makes grants fair.
        self._lock = asyncio.Lock()
        self._paused_until = -math.inf
        #: Acquisitions that had to wait, and pauses caused by 429s.
        self.waits = 0
        self.pauses = 0

    def __repr__(self) -> str:
        return f"<RateLimiter {self.limit}/{self.period:g}s waits={self.waits}>"

    @property
    def paused_until(self) -> float:
        """Clock time before which no request is granted (after a 429)."""
        return self._paused_until

    def _next_grant(self, now: float) -> float:
        grants = self._grants
        while grants and grants[0] + self.period <= now:
            grants.popleft()
        ready = self._paused_until
        if len(grants) >= self.limit:
            ready = max(ready, grants[0] + self.period)
        return ready

    async def acquire(self) -> None:
        """Wait until one more request fits in the window, then take its place.

        Cancelling a waiting caller takes nothing from the window.
        """
        # The lock is only ever held across a sleep, so finding it taken means waiting.
        waited = self._lock.locked()
        async with self._lock:
            while True:
                now = self._clock()
                ready = self._next_grant(now)
                if ready <= now:
                    break
                waited = True
                # Re-checked after the sleep: a 429 may have extended the pause.
                await self._sleep(ready - now)
            self._grants.append(now)
            if waited:
                self.waits += 1

    def pause(self, retry_after: float | None = None) -> None:
        """The server answered 429: grant nothing for ``retry_after`` seconds (one
        period when it did not say; at most ``max_pause``)."""
        seconds = self.period if retry_after is None else retry_after
        seconds = min(max(0.0, seconds), self.max_pause)
        self._paused_until = max(self._paused_until, self._clock() + seconds)
        self.pauses += 1
