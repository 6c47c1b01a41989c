"""The HTTP layer over real sockets: retries, Retry-After, redirects, credentials, the pool."""

from __future__ import annotations

import asyncio
import logging
import socket

import aiohttp
import pytest

from cio_async import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AsyncCustomerIO,
    AuthenticationError,
    ClientConfig,
    PoolConfig,
    RateLimitError,
    Region,
    RetryPolicy,
    ServerError,
)
from cio_async.http._transport import Transport
from cio_async.testing import StandIn

from .conftest import FAST_RETRY, ClientFactory


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 522, 524])
async def test_retryable_statuses_are_retried_and_the_event_arrives_once(
    client: AsyncCustomerIO, server: StandIn, status: int
) -> None:
    server.fail_next(status, times=2)
    event_id = await client.v1.track("42", "purchase")
    assert len(server.requests) == 3
    assert [r.status for r in server.requests] == [status, status, 200]
    assert [r.headers.get("X-Retry-Count") for r in server.requests] == [None, "1", "2"]
    assert [e.event_id for e in server.events()] == [event_id]
    # Every attempt carried the same event id.
    assert {r.json["id"] for r in server.requests} == {event_id}


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
async def test_other_4xx_are_never_retried(
    client: AsyncCustomerIO, server: StandIn, status: int
) -> None:
    server.fail_next(status, times=3)
    with pytest.raises(APIStatusError) as err:
        await client.v1.track("42", "purchase")
    assert err.value.status == status
    assert not err.value.retryable
    assert len(server.requests) == 1


async def test_dropped_connection_after_processing_is_retried_without_duplicates(
    client: AsyncCustomerIO, server: StandIn
) -> None:
    server.drop_next(after_processing=True)
    event_id = await client.v1.track("42", "signup")
    assert len(server.requests) == 2
    assert server.counts["duplicate_events_ignored"] == 1
    assert [e.event_id for e in server.events()] == [event_id]


async def test_dropped_connection_before_processing_is_retried(
    client: AsyncCustomerIO, server: StandIn
) -> None:
    server.drop_next(times=2)
    await client.v1.identify("42", {"a": 1})
    assert len(server.requests) == 3
    assert len(server.ops("person", "identify")) == 1


async def test_gives_up_after_max_attempts(client: AsyncCustomerIO, server: StandIn) -> None:
    server.fail_next(503, times=10)
    with pytest.raises(ServerError) as err:
        await client.v1.identify("42", {"a": 1})
    assert err.value.retryable
    assert len(server.requests) == FAST_RETRY.max_attempts


async def test_retry_after_is_honoured(server: StandIn) -> None:
    delays: list[float] = []

    async def fake_sleep(d: float) -> None:
        delays.append(d)

    cfg = ClientConfig(**server.client_kwargs(production_limits=True), retry=FAST_RETRY)
    t = Transport(cfg, sleep=fake_sleep)
    try:
        server.fail_next(429, retry_after=7)
        await t.request("track", "GET", "/api/v1/accounts/region", op="region")
        assert delays == [7.0]
        # A demand beyond max_retry_after ends the retries instead of sleeping.
        server.fail_next(429, retry_after=3600)
        with pytest.raises(RateLimitError) as err:
            await t.request("track", "GET", "/api/v1/accounts/region", op="region")
        assert err.value.retry_after == 3600
        assert delays == [7.0]
    finally:
        await t.aclose()


async def test_total_retry_budget_is_checked_before_sleeping(server: StandIn) -> None:
    delays: list[float] = []

    async def fake_sleep(d: float) -> None:
        delays.append(d)

    policy = RetryPolicy(max_attempts=10, initial_delay=1, jitter=0, total_timeout=2.5)
    t = Transport(
        ClientConfig(**server.client_kwargs(production_limits=True), retry=policy), sleep=fake_sleep
    )
    try:
        server.fail_next(500, times=10)
        with pytest.raises(ServerError):
            await t.request("track", "GET", "/api/v1/accounts/region", op="region")
        # 1 s fits the 2.5 s budget; the next (2 s) would overrun it, so we stop.
        assert delays == [1.0]
        assert len(server.requests) == 2
    finally:
        await t.aclose()


async def test_timeouts_raise_api_timeout_error(
    make_client: ClientFactory, server: StandIn
) -> None:
    c = make_client(pool=PoolConfig(read_timeout=0.05), retry=RetryPolicy.NONE)
    server.delay_next(1.0)
    with pytest.raises(APITimeoutError) as err:
        await c.v1.identify("42", {"a": 1})
    assert isinstance(err.value, TimeoutError)
    assert err.value.retryable


async def test_connection_refused_is_a_retryable_connection_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: connections are refused
        async with AsyncCustomerIO(
            "site", "key", region=Region.custom(f"http://127.0.0.1:{port}"), retry=FAST_RETRY
        ) as c:
            with pytest.raises(APIConnectionError) as err:
                await c.v1.identify("42", {"a": 1})
    assert err.value.retryable
    assert err.value.surely_not_sent
    assert "key" not in str(err.value)


# Redirects across ports and schemes, and same-origin redirects keeping credentials,
# are tested in test_security.py.


async def test_redirects_to_foreign_hosts_lose_credentials(
    client: AsyncCustomerIO, server: StandIn
) -> None:
    async with StandIn(host="127.0.0.1") as other:
        other._track_auth = server._track_auth
        # "localhost" is neither the configured host nor a *.customer.io host.
        server.redirect_to = f"http://localhost:{other.port}"
        with pytest.raises(AuthenticationError):
            await client.v1.identify("42", {"a": 1})
        assert other.requests, "the redirect was followed"
        assert "Authorization" not in other.requests[0].headers


async def test_redirect_loops_are_bounded(client: AsyncCustomerIO, server: StandIn) -> None:
    server.redirect_to = server.url
    with pytest.raises(Exception, match="too many redirects"):
        await client.v1.identify("42", {"a": 1})
    assert len(server.requests) == client.config.max_redirects + 1


async def test_pool_bounds_concurrency_and_reuses_connections(
    make_client: ClientFactory, server: StandIn
) -> None:
    c = make_client(pool=PoolConfig(max_connections=3))
    server.rtt = 0.02
    await asyncio.gather(*(c.v1.track(str(i), "e") for i in range(30)))
    assert server.max_concurrent <= 3
    assert server.connections <= 3
    assert c.stats().connections_opened <= 3
    assert len(server.events("e")) == 30


async def test_borrowed_session_is_left_open(server: StandIn) -> None:
    async with aiohttp.ClientSession() as session:
        c = AsyncCustomerIO(**server.client_kwargs(), session=session)
        await c.v1.identify("42", {"a": 1})
        await c.aclose()
        assert not session.closed
        async with session.get(server.url + "/api/v1/accounts/region") as resp:
            assert resp.status == 401  # the session still works (and got no credentials)
    assert len(server.ops()) == 1


async def test_credentials_never_leak(
    make_client: ClientFactory, server: StandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="cio_async")
    c = make_client(
        site_id="site-secret-1", track_api_key="track-secret-2", app_api_key="app-secret-3"
    )
    server.fail_next(500, times=10)
    with pytest.raises(ServerError) as err:
        await c.v1.identify("42", {"a": 1})
    texts = [repr(c), repr(c.config), str(err.value), repr(err.value), caplog.text]
    for secret in ("site-secret-1", "track-secret-2", "app-secret-3"):
        assert all(secret not in t for t in texts), secret
    assert "'***'" in repr(c.config)


async def test_stand_in_counts_new_connections_for_rtt(server: StandIn) -> None:
    # The warm-pool benchmark relies on this: a new connection costs handshakes.
    async with aiohttp.ClientSession() as s:
        for _ in range(3):
            async with s.get(server.url + "/api/v1/accounts/region") as r:
                await r.read()
    assert server.connections == 1
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        for _ in range(3):
            async with s.get(server.url + "/api/v1/accounts/region") as r:
                await r.read()
    assert server.connections == 4


async def test_tls_verification_is_on_and_a_custom_context_works() -> None:
    import ssl

    import trustme

    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    async with StandIn(ssl_context=server_ctx) as server:
        assert server.url.startswith("https://")
        # Default: system trust store, which does not know our CA.
        async with AsyncCustomerIO(**server.client_kwargs(), retry=FAST_RETRY) as c:
            with pytest.raises(APIConnectionError, match="certificate") as err:
                await c.v1.get_region()
            assert err.value.surely_not_sent
        client_ctx = ssl.create_default_context()
        ca.configure_trust(client_ctx)
        async with AsyncCustomerIO(
            **server.client_kwargs(), pool=PoolConfig(ssl_context=client_ctx)
        ) as c:
            assert (await c.v1.get_region()).region == "us"
    assert server.connections >= 1


async def test_dns_failures_map_to_not_sent_connection_errors() -> None:
    # A DNS failure cannot be produced on loopback without a resolver; a mock adds
    # exactly what a server cannot here.
    from aioresponses import aioresponses

    os_error = OSError(-2, "Name or service not known")
    dns_error = aiohttp.ClientConnectorDNSError(
        aiohttp.client_reqrep.ConnectionKey("nowhere.invalid", 443, True, True, None, None, None),
        os_error,
    )
    async with AsyncCustomerIO(
        "s", "k", region=Region.custom("https://nowhere.invalid"), retry=FAST_RETRY
    ) as c:
        with aioresponses() as mocked:
            for _ in range(FAST_RETRY.max_attempts):
                mocked.get("https://nowhere.invalid/api/v1/accounts/region", exception=dns_error)
            with pytest.raises(APIConnectionError, match="DNS") as err:
                await c.v1.get_region()
    assert err.value.surely_not_sent
    assert err.value.retryable
    assert "k" not in str(err.value).split()
