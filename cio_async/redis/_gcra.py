"""A rate budget shared by every process of a fleet: GCRA in a Lua script on Redis.

Each ``acquire()`` is one ``EVALSHA`` that reserves the next free slot of the budget
and returns how long to wait for it (microseconds, on the server's clock: ``TIME`` in
the script, so the hosts' clocks never matter). The caller sleeps exactly that long
and sends; it never gets a refusal to retry. Reservation makes grants FIFO across
the fleet and spaces them ``period / limit`` apart (no burst: a server counting per
window answers a burst with 429).

A 429 seen by any process sets the shared pause key (``until`` in server
microseconds); the script holds every grant back until then.

If Redis cannot be reached, each process falls back to a local limiter at
``budget / processes`` (strictly spaced), logs a warning once, and asks Redis again
after ``recheck`` seconds; the first success logs the recovery.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aredis

from .._config import RateLimit
from .._errors import ConfigurationError
from ..http._ratelimit import MAX_PAUSE, RateLimiter
from ._conn import UNREACHABLE, connect, hash_tag

log = logging.getLogger("cio_async")

#: Customer.io's Track limit: 3000 requests per 3 seconds per account (soft).
TRACK_LIMIT = RateLimit(3000, 3.0)

# KEYS: the TAT ("theoretical arrival time") key, the pause key.
# ARGV: emission interval (µs), burst tolerance (µs).
# Returns the wait in µs before the reserved grant.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local paused = tonumber(redis.call('GET', KEYS[2]) or '0')
local base = math.max(tat, now, paused)
local wait = math.max(base - tolerance - now, paused - now, 0)
local new_tat = base + interval
redis.call('SET', KEYS[1], string.format('%d', new_tat),
           'PX', math.ceil((new_tat - now) / 1000) + 1000)
return math.floor(wait)
"""

# KEYS: the pause key. ARGV: pause length (µs). Extends, never shortens, the pause.
_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local untl = now + tonumber(ARGV[1])
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if untl > cur then
  local ms = math.ceil(tonumber(ARGV[1]) / 1000) + 1
  redis.call('SET', KEYS[1], string.format('%d', untl), 'PX', ms)
end
return math.floor(math.max(untl, cur) - now)
"""


class RedisRateLimiter:
    """One shared budget (``limit`` per ``period``) for every process using the same
    Redis and ``key``. Implements the transport's limiter interface (``acquire``,
    ``pause``); made by ``RedisRateBudget.limiter``.
    """

    def __init__(
        self,
        redis: aredis.Redis,
        key: str,
        pause_key: str,
        limit: RateLimit,
        *,
        processes: int = 1,
        headroom: float = 0.1,
        recheck: float = 1.0,
        max_pause: float = MAX_PAUSE,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if processes < 1:
            raise ConfigurationError("processes must be at least 1")
        if not 0 <= headroom < 1:
            raise ConfigurationError("headroom must be in [0, 1)")
        self._redis = redis
        self.key = key
        self.pause_key = pause_key
        self.limit = limit
        self.processes = processes
        self.max_pause = max_pause
        self._sleep = sleep
        #: Requests per second the fleet aims at: a little under the budget, so a
        #: server counting per window does not see jitter in arrival times as a burst.
        self.rate = limit.limit * (1 - headroom) / limit.per
        self._interval_us = max(1, round(1_000_000 / self.rate))
        self._acquire = redis.register_script(_ACQUIRE)
        self._pause = redis.register_script(_PAUSE)
        # Strictly spaced at the fleet's rate shared by ``processes``: no burst, so N
        # processes in fallback together never exceed the budget in any window.
        self._local = RateLimiter(1, processes / self.rate, max_pause=max_pause)
        self._recheck = recheck
        self._down_until = -math.inf
        self._degraded = False
        self._tasks: set[asyncio.Task[Any]] = set()
        #: Acquisitions that had to wait, 429 pauses, and switches to the fallback.
        self.waits = 0
        self.pauses = 0
        self.fallbacks = 0

    def __repr__(self) -> str:
        state = "fallback" if self._degraded else "shared"
        return f"<RedisRateLimiter {self.key} {self.limit.limit}/{self.limit.per:g}s {state}>"

    @property
    def degraded(self) -> bool:
        """True while Redis is unreachable and the local fallback limits this process."""
        return self._degraded

    def _unreachable(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + self._recheck
        if not self._degraded:
            self._degraded = True
            self.fallbacks += 1
            log.warning(
                "cio_async: Redis unreachable for the shared rate budget %s (%r); "
                "limiting this process to %.3g requests/s (budget / %d) until it is back",
                self.key,
                exc,
                self.rate / self.processes,
                self.processes,
            )

    async def acquire(self) -> None:
        """Wait for this process's turn in the shared budget (or the local fallback)."""
        if self._degraded and time.monotonic() < self._down_until:
            await self._local.acquire()
            return
        try:
            wait_us = await self._acquire(
                keys=[self.key, self.pause_key], args=[self._interval_us, 0]
            )
        except UNREACHABLE as exc:
            self._unreachable(exc)
            await self._local.acquire()
            return
        if self._degraded:
            self._degraded = False
            log.warning("cio_async: Redis reachable again; shared rate budget %s resumed", self.key)
        if wait_us > 0:
            self.waits += 1
            await self._sleep(wait_us / 1_000_000)

    def pause(self, retry_after: float | None = None) -> None:
        """A 429: pause every process for ``retry_after`` seconds (one period when the
        server did not say; at most ``max_pause``). The local fallback pauses too."""
        seconds = self.limit.per if retry_after is None else retry_after
        seconds = min(max(0.0, seconds), self.max_pause)
        self.pauses += 1
        self._local.pause(seconds)
        if seconds <= 0:
            return
        task = asyncio.get_running_loop().create_task(self._set_pause(seconds))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _set_pause(self, seconds: float) -> None:
        try:
            await self._pause(keys=[self.pause_key], args=[round(seconds * 1_000_000)])
        except UNREACHABLE as exc:
            self._unreachable(exc)

    async def aclose(self) -> None:
        """Wait for pause writes in flight (they are short)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


class RedisRateBudget:
    """Shared rate budgets for one Customer.io workspace, for every process of a fleet.

    Pass it as ``AsyncCustomerIO(..., rate_budget=budget)``: the Track pipeline and
    direct Track calls share the ``track`` budget, App API calls the ``app``,
    ``app_send`` and ``app_broadcast`` budgets (``AppConfig``'s limits). Keys are
    ``<prefix>:{<region>:<workspace>}:rl:<api>`` (and ``...:pause:<api>``).

    Args:
        redis: a ``redis.asyncio.Redis`` or a ``redis://`` URL (then owned: ``aclose``
            closes it).
        workspace: what identifies the budget's account (the site id).
        region: ``us`` or ``eu``; keys differ per region.
        processes: how many processes share the budget: each one's fallback limit
            when Redis is unreachable is ``budget / processes``.
        track: the Track budget (Customer.io: 3000 requests per 3 s, soft).
        headroom: the fraction of each budget left unused (default 10%) so that
            jitter in arrival times never reads as a burst at the server.
    """

    def __init__(
        self,
        redis: aredis.Redis | str,
        *,
        workspace: str,
        region: str = "us",
        processes: int = 1,
        track: RateLimit = TRACK_LIMIT,
        headroom: float = 0.1,
        prefix: str = "cio",
        recheck: float = 1.0,
    ) -> None:
        if not workspace:
            raise ConfigurationError("workspace must be set (e.g. the site id)")
        if not isinstance(track, RateLimit):
            raise ConfigurationError("track must be a RateLimit")
        self._redis, self._owned = connect(redis)
        self.workspace = workspace
        self.region = region
        self.processes = processes
        self.track = track
        self.headroom = headroom
        self.prefix = prefix
        self.recheck = recheck
        self._limiters: dict[tuple[str, RateLimit], RedisRateLimiter] = {}

    def __repr__(self) -> str:
        return f"<RedisRateBudget {self.region}:{self.workspace} processes={self.processes}>"

    def limiter(self, api: str, limit: RateLimit | None = None) -> RedisRateLimiter:
        """The shared limiter for ``api`` (``track`` uses ``self.track`` when ``limit``
        is None). The same one is returned for the same ``api`` and ``limit``."""
        if limit is None:
            if api != "track":
                raise ConfigurationError(f"a limit is needed for the {api!r} budget")
            limit = self.track
        found = self._limiters.get((api, limit))
        if found is None:
            tag = hash_tag(self.region, self.workspace)
            found = RedisRateLimiter(
                self._redis,
                f"{self.prefix}:{tag}:rl:{api}",
                f"{self.prefix}:{tag}:pause:{api}",
                limit,
                processes=self.processes,
                headroom=self.headroom,
                recheck=self.recheck,
            )
            self._limiters[(api, limit)] = found
        return found

    async def aclose(self) -> None:
        """Finish pause writes and close the Redis client if this budget made it."""
        for lim in self._limiters.values():
            await lim.aclose()
        if self._owned:
            await self._redis.aclose()
