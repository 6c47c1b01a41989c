"""The App API rate limiters: a fake clock for the arithmetic, loopback for the wiring."""

from __future__ import annotations

import asyncio

import pytest

from cio_async import AppConfig, AsyncCustomerIO, ConfigurationError, RateLimit, RetryPolicy
from cio_async.http._ratelimit import RateLimiter
from cio_async.testing import StandIn

from .conftest import ClientFactory

#: Grant times are taken at the client and arrival times at the server; loopback
#: latency varies by a few milliseconds between requests.
SLACK = 0.03


class FakeClock:
    """A clock that moves only when someone sleeps on it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def limiter(limit: int, period: float, clock: FakeClock, **kw: float) -> RateLimiter:
    return RateLimiter(limit, period, clock=clock, sleep=clock.sleep, **kw)


async def grant_times(lim: RateLimiter, clock: FakeClock, n: int) -> list[float]:
    times: list[float] = []

    async def one() -> None:
        await lim.acquire()
        times.append(clock.now)

    await asyncio.gather(*(one() for _ in range(n)))
    return times


async def test_at_most_limit_grants_per_window() -> None:
    clock = FakeClock()
    lim = limiter(3, 1.0, clock)
    assert await grant_times(lim, clock, 7) == [0, 0, 0, 1, 1, 1, 2]
    assert lim.waits == 4


async def test_window_slides_from_each_grant() -> None:
    clock = FakeClock()
    lim = limiter(2, 1.0, clock)
    await lim.acquire()  # t=0
    clock.now = 0.5
    await lim.acquire()  # t=0.5
    assert await grant_times(lim, clock, 2) == [1.0, 1.5]
    assert clock.sleeps == [0.5, 0.5]


async def test_grants_are_first_come_first_served() -> None:
    clock = FakeClock()
    lim = limiter(1, 1.0, clock)
    order: list[int] = []

    async def one(i: int) -> None:
        await lim.acquire()
        order.append(i)

    await asyncio.gather(*(one(i) for i in range(5)))
    assert order == [0, 1, 2, 3, 4]
    assert clock.now == 4.0


async def test_pause_holds_every_grant_until_retry_after() -> None:
    clock = FakeClock()
    lim = limiter(10, 1.0, clock)
    await lim.acquire()
    lim.pause(2.5)
    assert lim.paused_until == 2.5
    assert await grant_times(lim, clock, 2) == [2.5, 2.5]
    lim.pause(None)  # no Retry-After: one period
    assert await grant_times(lim, clock, 1) == [3.5]
    assert lim.pauses == 2


async def test_pause_is_capped_and_never_shortened() -> None:
    clock = FakeClock()
    lim = limiter(10, 1.0, clock, max_pause=5.0)
    lim.pause(86_400)  # a daily quota's Retry-After must not stall everyone for a day
    assert lim.paused_until == 5.0
    lim.pause(1.0)
    assert lim.paused_until == 5.0
    lim.pause(-3)
    assert lim.paused_until == 5.0


async def test_a_pause_during_a_wait_is_honoured() -> None:
    clock = FakeClock()
    lim = limiter(1, 1.0, clock)
    await lim.acquire()
    waiter = asyncio.ensure_future(lim.acquire())
    await asyncio.sleep(0)  # the waiter is mid-sleep (the fake clock reads 1.0)
    lim.pause(3.0)  # a 429 lands meanwhile
    await waiter
    assert clock.now == 4.0


async def test_a_cancelled_waiter_takes_no_slot() -> None:
    lim = RateLimiter(1, 10.0)  # real clock: the waiter really waits
    await lim.acquire()
    waiter = asyncio.ensure_future(lim.acquire())
    await asyncio.sleep(0)
    assert not waiter.done()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert len(lim._grants) == 1
    assert not lim._lock.locked()


def test_limits_are_validated() -> None:
    with pytest.raises(ConfigurationError):
        RateLimiter(0, 1.0)
    with pytest.raises(ConfigurationError):
        RateLimiter(1, 0)
    with pytest.raises(ConfigurationError):
        RateLimit(0)
    with pytest.raises(ConfigurationError):
        RateLimit(1, per=-1)
    with pytest.raises(ConfigurationError):
        AppConfig(rate_limit=(10, 1))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        AppConfig(cache_ttl=-1)


def test_defaults_follow_customer_io() -> None:
    cfg = AppConfig()
    assert cfg.rate_limit == RateLimit(10, 1.0)
    assert cfg.broadcast_rate_limit == RateLimit(1, 10.0)
    assert cfg.send_rate_limit is not None and cfg.send_rate_limit.limit >= 10
    c = AsyncCustomerIO(app_api_key="k", app_config=AppConfig(rate_limit=None))
    assert c.app.limiter is None and c.app.broadcast_limiter is not None
    assert c.config.app.rate_limit is None


# -- over loopback -----------------------------------------------------------------------


def arrivals(server: StandIn, path_prefix: str) -> list[float]:
    return [r.received_at for r in server.requests if r.path.startswith(path_prefix)]


async def test_lookups_are_spaced_by_the_limiter(
    make_client: ClientFactory, server: StandIn
) -> None:
    c = make_client(app_config=AppConfig(rate_limit=RateLimit(2, 0.2), cache_ttl=0))
    await asyncio.gather(*(c.app.get_attributes(str(i)) for i in range(6)))
    t = arrivals(server, "/v1/customers/")
    assert len(t) == 6
    for i in range(2, 6):
        assert t[i] - t[i - 2] >= 0.2 - SLACK, t
    assert t[-1] - t[0] >= 0.4 - SLACK
    assert c.app.limiter is not None and c.app.limiter.waits == 4
    assert server.counts["rate_limited"] == 0


async def test_broadcast_limiter_waits_instead_of_collecting_429s(
    make_client: ClientFactory, server: StandIn
) -> None:
    server.broadcast_interval = 0.2  # the stand-in answers 429 to triggers closer than this
    c = make_client(app_config=AppConfig(broadcast_rate_limit=RateLimit(1, 0.25)))
    ids = await asyncio.gather(*(c.app.trigger_broadcast(9, data={"n": i}) for i in range(3)))
    assert sorted(ids) == [1, 2, 3]
    assert server.counts["rate_limited"] == 0
    t = arrivals(server, "/v1/campaigns/")
    assert len(t) == 3
    assert all(t[i + 1] - t[i] >= 0.25 - SLACK for i in range(2)), t


async def test_without_a_limiter_triggers_hit_429_and_wait_for_retry_after(
    make_client: ClientFactory, server: StandIn
) -> None:
    server.broadcast_interval = 0.2
    c = make_client(
        app_config=AppConfig(broadcast_rate_limit=None),
        retry=RetryPolicy(max_attempts=4, initial_delay=0.001, max_delay=0.01, jitter=0),
    )
    await c.app.trigger_broadcast(9)
    await c.app.trigger_broadcast(9)  # 429 with Retry-After, then accepted
    statuses = [r.status for r in server.requests]
    assert statuses[0] == 200 and statuses[-1] == 200 and 429 in statuses
    t = arrivals(server, "/v1/campaigns/")
    assert t[-1] - t[0] >= 0.2 - SLACK
    assert len(server.triggers) == 2


async def test_a_429_pauses_the_limiter_for_other_callers(
    make_client: ClientFactory, server: StandIn
) -> None:
    from cio_async import TransactionalEmail

    c = make_client()
    msg = TransactionalEmail(transactional_message_id=1, to="a@example.com", identifiers="42")
    server.fail_next(429, retry_after=0.3, path="/v1/send/email")
    first = asyncio.ensure_future(c.app.send(msg))
    lim = c.app.send_limiter
    assert lim is not None
    await server.wait_for(lambda s: lim.pauses == 1)
    await c.app.send(msg)  # another caller: waits out the pause instead of a 429
    await first
    t = arrivals(server, "/v1/send/")
    assert [r.status for r in server.requests] == [429, 200, 200]
    assert all(x - t[0] >= 0.3 - SLACK for x in t[1:]), t
    assert len(server.sends) == 2
