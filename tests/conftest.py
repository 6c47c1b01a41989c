from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio

from cio_async import AppConfig, AsyncCustomerIO, BatchPolicy, RateLimit, RetryPolicy
from cio_async.testing import StandIn

#: Retries without real waiting: tests assert on behaviour, not on wall-clock time.
FAST_RETRY = RetryPolicy(max_attempts=4, initial_delay=0.001, max_delay=0.01, jitter=0.0)
FAST_BATCH = BatchPolicy(
    linger=0.01,
    retry=RetryPolicy(max_attempts=6, initial_delay=0.001, max_delay=0.01, jitter=0.0),
    shutdown_timeout=5.0,
)

#: App API defaults, except broadcast triggers (1 per 10 s in production), which tests
#: fire back to back.
FAST_APP = AppConfig(broadcast_rate_limit=RateLimit(100, 1.0))


@pytest_asyncio.fixture
async def server() -> AsyncIterator[StandIn]:
    async with StandIn() as s:
        yield s


ClientFactory = Callable[..., AsyncCustomerIO]


@pytest_asyncio.fixture
async def make_client(server: StandIn) -> AsyncIterator[ClientFactory]:
    """Build clients pointed at the stand-in, with fast retries; closed after the test."""
    made: list[AsyncCustomerIO] = []

    def factory(**kwargs: Any) -> AsyncCustomerIO:
        target = kwargs.pop("stand_in", server)
        base: dict[str, Any] = dict(target.client_kwargs(production_limits=True))
        base.setdefault("retry", FAST_RETRY)
        base.setdefault("batch", FAST_BATCH)
        base.setdefault("app_config", FAST_APP)
        base.update(kwargs)
        client = AsyncCustomerIO(**base)
        made.append(client)
        return client

    yield factory
    for c in made:
        await c.aclose()


@pytest_asyncio.fixture
async def client(make_client: ClientFactory) -> AsyncCustomerIO:
    return make_client()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# -- a real redis-server (session-scoped; each test gets it flushed) ---------------------


@pytest.fixture(scope="session")
def redis_server_session() -> Any:
    pytest.importorskip("redis", reason="the redis extra is not installed")
    from tests.redis_support import RedisServer

    server = RedisServer().start()
    yield server
    server.cleanup()


@pytest.fixture
def redis_url(redis_server_session: Any) -> str:
    """The URL of a running redis-server with an empty database."""
    import redis as redis_sync

    if not redis_server_session.running:
        redis_server_session.start()
    conn = redis_sync.Redis.from_url(redis_server_session.url)
    conn.flushall()
    conn.close()
    url: str = redis_server_session.url
    return url
