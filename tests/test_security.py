"""Nothing leaked: credentials on redirects, secrets in error text and logs, TLS failures.

Everything runs over real sockets against stand-ins on loopback.
"""

from __future__ import annotations

import base64
import logging
import ssl
from collections.abc import AsyncIterator

import pytest
import trustme
from aiohttp import web

from cio_async import (
    APIConnectionError,
    APIStatusError,
    AsyncCustomerIO,
    AuthenticationError,
    BatchPolicy,
    Hooks,
    PoolConfig,
    Region,
    RetryPolicy,
    TLSError,
)
from cio_async.testing import StandIn

from .conftest import FAST_RETRY, ClientFactory

# -- 1. credentials on redirects --------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_redirect_to_another_port_is_followed_without_credentials(
    make_client: ClientFactory, server: StandIn, status: int
) -> None:
    async with StandIn() as other:
        server.redirect_to = f"http://127.0.0.1:{other.port}"
        server.redirect_status = status
        c = make_client(app_api_key=None)
        with pytest.raises(AuthenticationError):
            await c.v1.identify("42", {"plan": "pro"})
        (first,) = server.requests
        (second,) = other.requests
        assert first.headers["Authorization"].startswith("Basic ")
        assert (second.method, second.path) == ("PUT", "/api/v1/customers/42")
        assert second.json["plan"] == "pro"
        assert "Authorization" not in second.headers


async def test_the_app_api_bearer_key_is_not_forwarded_to_another_port(
    make_client: ClientFactory, server: StandIn
) -> None:
    async with StandIn() as other:
        server.redirect_to = f"http://127.0.0.1:{other.port}"
        server.redirect_status = 307
        c = make_client()
        with pytest.raises(APIStatusError):
            await c.app.get_attributes("42")
        assert server.requests[0].headers["Authorization"].startswith("Bearer ")
        assert other.requests, "the redirect was followed"
        assert "Authorization" not in other.requests[0].headers


@pytest.fixture
def tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context trusting it) for 127.0.0.1."""
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    return server_ctx, client_ctx


async def test_https_to_http_or_another_https_port_never_gets_credentials(
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server_ctx, client_ctx = tls
    async with (
        StandIn(ssl_context=server_ctx) as secure,
        StandIn() as plain,
        StandIn(ssl_context=server_ctx) as secure2,
        AsyncCustomerIO(
            **secure.client_kwargs(), retry=FAST_RETRY, pool=PoolConfig(ssl_context=client_ctx)
        ) as c,
    ):
        # Same host, plain http, another port: the key would cross the wire in clear.
        secure.redirect_to = plain.url
        secure.redirect_status = 307
        with pytest.raises(AuthenticationError):
            await c.v1.identify("42", {"a": 1})
        assert plain.requests and "Authorization" not in plain.requests[0].headers
        # Same host, https, another port: another service, not ours.
        secure.redirect_to = secure2.url
        with pytest.raises(AuthenticationError):
            await c.v1.identify("42", {"a": 1})
        assert secure2.requests and "Authorization" not in secure2.requests[0].headers
        assert all(r.headers["Authorization"] for r in secure.requests)


async def test_a_same_origin_redirect_keeps_credentials() -> None:
    server = StandIn()

    def moved(app: web.Application) -> None:
        async def handler(request: web.Request) -> web.StreamResponse:
            raise web.HTTPTemporaryRedirect("/" + request.match_info["tail"])

        app.router.add_route("*", "/moved/{tail:.*}", handler)

    server.add_routes(moved)
    # The old path is not an API path: let the stand-in's auth check pass it through.
    server.path_auth["/moved/api/v1/customers/42"] = lambda authorization: None
    async with server:
        region = Region.custom(server.url + "/moved")
        async with AsyncCustomerIO(
            server.site_id, server.track_api_key, region=region, retry=FAST_RETRY
        ) as c:
            await c.v1.identify("42", {"plan": "pro"})
    moved_req, req = server.requests
    assert moved_req.headers["Authorization"] == req.headers["Authorization"]
    assert req.path == "/api/v1/customers/42"
    assert req.headers["Authorization"].startswith("Basic ")
    assert server.people


# -- 2. secrets in error text and logs ------------------------------------------------


@pytest.fixture
async def echo() -> AsyncIterator[str]:
    """A misbehaving proxy: answers every request with an error that echoes its headers."""

    async def handler(request: web.Request) -> web.Response:
        status = 502 if request.path.endswith("/batch") else 400
        text = "; ".join(f"{k}: {v}" for k, v in request.headers.items())
        body = {"meta": {"error": f"bad gateway, you sent {text}"}}
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


SITE, TRACK_KEY, APP_KEY = "site-0123", "track+key/with=sym", "app-key-4567"
BASIC = base64.b64encode(f"{SITE}:{TRACK_KEY}".encode()).decode()


def _leaks(text: str) -> list[str]:
    return [s for s in (BASIC, f"{SITE}:{TRACK_KEY}", TRACK_KEY, APP_KEY) if s in text]


async def test_credentials_echoed_by_a_server_are_redacted_from_errors_and_logs(
    echo: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="cio_async")
    errors: list[BaseException] = []
    async with AsyncCustomerIO(
        SITE,
        TRACK_KEY,
        app_api_key=APP_KEY,
        region=Region.custom(echo),
        retry=RetryPolicy.NONE,
        batch=BatchPolicy(linger=0.01, retry=RetryPolicy.NONE),
        on_error=lambda exc, op: errors.append(exc),
    ) as c:
        with pytest.raises(APIStatusError) as v1:
            await c.v1.identify("42", {"a": 1})
        with pytest.raises(APIStatusError) as app:
            await c.app.get_attributes("42")
        with pytest.raises(APIStatusError):
            await c.track("42", "purchase", wait=True)
    assert errors
    # The echo really happened (redacted), so the check below is not vacuous.
    assert "Authorization: Basic ***" in str(v1.value)
    assert "Authorization: Bearer ***" in str(app.value)
    texts = [caplog.text]
    for exc in (v1.value, app.value, *errors):
        assert isinstance(exc, APIStatusError)
        texts += [str(exc), repr(exc), repr(exc.body), repr(exc.errors)]
    assert "bad gateway" in caplog.text
    for text in texts:
        assert _leaks(text) == [], text


# -- 3. TLS failures are permanent ----------------------------------------------------


async def test_an_untrusted_certificate_fails_at_once_not_after_the_retry_cycle(
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server_ctx, _ = tls
    attempts: list[str] = []

    class Counting(Hooks):
        def on_request_start(self, operation: str) -> None:
            attempts.append(operation)

    async with StandIn(ssl_context=server_ctx) as server:
        # A retry policy that would take far longer than the test timeout if followed.
        slow = RetryPolicy(max_attempts=50, initial_delay=30, max_delay=60, total_timeout=3000)
        async with AsyncCustomerIO(
            **server.client_kwargs(),
            retry=slow,
            batch=BatchPolicy(linger=0.01, retry=slow, shutdown_timeout=1),
            hooks=[Counting()],
        ) as c:
            with pytest.raises(TLSError) as err:
                await c.v1.get_region()
            assert isinstance(err.value, APIConnectionError)
            assert not err.value.retryable
            assert "ssl_context" in str(err.value)
            assert "certificate" in str(err.value)
            n = len(attempts)
            with pytest.raises(TLSError):
                await c.track("42", "purchase", wait=True)
            assert len(attempts) == n + 1  # one attempt, no retries
    assert n == 1
