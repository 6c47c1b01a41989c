"""Proxies, through a real proxy on loopback: ``PoolConfig(proxy=...)``, the
``HTTP(S)_PROXY``/``NO_PROXY`` variables with ``trust_env=True``, CONNECT tunnels for
https, and no credentials in a ``Proxy-Authorization`` the user did not configure."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import trustme

from cio_async import AsyncCustomerIO, ConfigurationError, PoolConfig
from cio_async.testing import StandIn

from .conftest import FAST_RETRY


@dataclass
class Forwarded:
    method: str
    target: str
    headers: dict[str, str]


@dataclass
class Proxy:
    """A tiny forwarding proxy: absolute-URI requests for http, CONNECT for https.

    It records what it forwarded. Forwarded plain requests get ``Connection: close``
    so that every request arrives on a fresh proxy connection and is recorded.
    """

    forwarded: list[Forwarded] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> Proxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        first, *lines = head.decode("latin-1").split("\r\n")
        method, target, version = first.split(" ")
        headers = dict(line.split(": ", 1) for line in lines if line)
        self.forwarded.append(Forwarded(method, target, headers))
        if method == "CONNECT":
            host, port = target.rsplit(":", 1)
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            rest = target.split("://", 1)[1]
            hostport, _, path = rest.partition("/")
            host, port = hostport.rsplit(":", 1)
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            kept = {
                k: v
                for k, v in headers.items()
                if not k.lower().startswith("proxy-") and k.lower() != "connection"
            }
            kept["Connection"] = "close"
            out = f"{method} /{path} {version}\r\n" + "".join(
                f"{k}: {v}\r\n" for k, v in kept.items()
            )
            up_writer.write(out.encode("latin-1") + b"\r\n")
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    with contextlib.suppress(OSError):
        if dst.can_write_eof():
            dst.write_eof()


@pytest.fixture
async def proxy() -> AsyncIterator[Proxy]:
    p = await Proxy().start()
    yield p
    await p.close()


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


async def test_requests_go_through_a_configured_proxy(
    proxy: Proxy, server: StandIn, no_proxy_env: pytest.MonkeyPatch
) -> None:
    async with AsyncCustomerIO(
        **server.client_kwargs(), retry=FAST_RETRY, pool=PoolConfig(proxy=proxy.url)
    ) as c:
        await c.v1.identify("42", {"plan": "pro"})
        await c.track("42", "purchase", wait=True)
    targets = [(f.method, f.target) for f in proxy.forwarded]
    assert ("PUT", f"{server.url}/api/v1/customers/42") in targets
    assert ("POST", f"{server.url}/api/v2/batch") in targets
    assert len(server.events("purchase")) == 1
    # Our credentials reach the server, never the proxy's auth header.
    assert all("Proxy-Authorization" not in f.headers for f in proxy.forwarded)
    assert server.requests[0].headers["Authorization"].startswith("Basic ")


async def test_proxy_credentials_are_sent_only_when_configured(
    proxy: Proxy, server: StandIn, no_proxy_env: pytest.MonkeyPatch
) -> None:
    url = proxy.url.replace("http://", "http://proxyuser:proxypass@")
    pool = PoolConfig(proxy=url)
    assert "proxypass" not in repr(pool)
    async with AsyncCustomerIO(**server.client_kwargs(), retry=FAST_RETRY, pool=pool) as c:
        await c.v1.identify("42", {"plan": "pro"})
    (f,) = proxy.forwarded
    assert (
        f.headers["Proxy-Authorization"]
        == "Basic " + base64.b64encode(b"proxyuser:proxypass").decode()
    )


async def test_https_goes_through_a_connect_tunnel(
    proxy: Proxy, no_proxy_env: pytest.MonkeyPatch
) -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    async with StandIn(ssl_context=server_ctx) as server:
        pool = PoolConfig(proxy=proxy.url, ssl_context=client_ctx)
        async with AsyncCustomerIO(**server.client_kwargs(), retry=FAST_RETRY, pool=pool) as c:
            await c.v1.identify("42", {"plan": "pro"})
    (f,) = proxy.forwarded
    assert (f.method, f.target) == ("CONNECT", f"127.0.0.1:{server.port}")
    # The key travelled inside the tunnel: the proxy never saw it.
    assert "Authorization" not in f.headers and "Proxy-Authorization" not in f.headers
    assert server.requests[0].headers["Authorization"].startswith("Basic ")


async def test_trust_env_honours_http_proxy_and_no_proxy(
    proxy: Proxy, server: StandIn, no_proxy_env: pytest.MonkeyPatch
) -> None:
    no_proxy_env.setenv("HTTP_PROXY", proxy.url)
    pool = PoolConfig(trust_env=True)
    async with AsyncCustomerIO(**server.client_kwargs(), retry=FAST_RETRY, pool=pool) as c:
        await c.v1.identify("1", {"a": 1})
    assert [f.target for f in proxy.forwarded] == [f"{server.url}/api/v1/customers/1"]

    no_proxy_env.setenv("NO_PROXY", "127.0.0.1")
    async with AsyncCustomerIO(**server.client_kwargs(), retry=FAST_RETRY, pool=pool) as c:
        await c.v1.identify("2", {"a": 1})
    assert len(proxy.forwarded) == 1, "NO_PROXY bypassed the proxy"
    assert [r.path for r in server.requests] == ["/api/v1/customers/1", "/api/v1/customers/2"]

    # Without trust_env the variables are ignored (the default, as before).
    no_proxy_env.delenv("NO_PROXY")
    async with AsyncCustomerIO(**server.client_kwargs(), retry=FAST_RETRY) as c:
        await c.v1.identify("3", {"a": 1})
    assert len(proxy.forwarded) == 1


def test_a_bad_proxy_url_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigurationError) as err:
        PoolConfig(proxy="socks5://u:secret@host:1080")
    assert "secret" not in str(err.value)
