"""The HTTP layer: one pooled aiohttp session, bounded concurrency, retries, redirects."""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from .._config import ClientConfig, RetryPolicy
from .._encode import loads
from .._errors import (
    ClientClosedError,
    ConfigurationError,
    CustomerIOError,
    RateLimitError,
    RedirectError,
    error_for_status,
    map_client_errors,
)
from ._ratelimit import Limiter
from ._retry import parse_retry_after, retry_delay

log = logging.getLogger("cio_async")

Api = Literal["track", "app", "cdp"]
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_ERROR_BODY = 1 << 20


def _origin(url: URL) -> tuple[str, str, int | None]:
    return (url.scheme, (url.host or "").lower(), url.port)


def _secret_forms(config: ClientConfig, basic: str | None = None) -> tuple[bytes, ...]:
    """Every way our credentials may appear in a server's reply, longest first (so a
    shorter secret never leaves a fragment of a longer one): the Basic token, the
    decoded ``site_id:key``, the bare keys, and the JSON-escaped forms (``\\/``).
    ``basic`` is another ``Basic ...`` Authorization value (the Pipelines write key)."""
    forms: set[str] = set()
    if basic is not None and basic.startswith("Basic "):
        token = basic[6:]
        forms.add(token)
        try:
            user = base64.b64decode(token).decode()
        except ValueError:
            user = ""
        forms.update({user, user.rstrip(":")} - {""})
    if config.site_id and config.track_api_key:
        pair = f"{config.site_id}:{config.track_api_key}"
        forms.update((pair, base64.b64encode(pair.encode()).decode("ascii")))
        forms.add(config.track_api_key)
    if config.app_api_key:
        forms.add(config.app_api_key)
    # A site id alone is an identifier, not a secret; short values would redact
    # ordinary text, so only values of some length count.
    out = {f.encode() for f in forms if len(f) >= 6}
    out |= {f.replace(b"/", b"\\/") for f in out if b"/" in f}
    return tuple(sorted(out, key=len, reverse=True))


@dataclass(frozen=True, slots=True)
class Response:
    """A successful (2xx) response."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    def json(self) -> Any:
        """The body decoded as JSON (None when empty)."""
        return loads(self.body) if self.body.strip() else None


#: Called after every attempt: (operation, status or None, seconds, error or None, attempt).
RequestHook = Callable[[str, "int | None", float, "CustomerIOError | None", int], None]
#: Called before each retry sleep: (operation, attempt just failed, delay, error).
RetryHook = Callable[[str, int, float, CustomerIOError], None]


def _decode_body(data: bytes) -> Any:
    if not data:
        return None
    try:
        return loads(data)
    except ValueError:
        return data[:2000].decode("utf-8", "replace")


class Transport:
    """Owns (or borrows) the aiohttp session and sends requests with retries.

    Construction does no I/O; the session, connector and semaphore are made on first
    use inside the running loop.
    """

    def __init__(
        self,
        config: ClientConfig,
        session: aiohttp.ClientSession | None = None,
        *,
        on_request: RequestHook | None = None,
        on_retry: RetryHook | None = None,
        on_start: Callable[[str], None] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        cdp: tuple[str, str] | None = None,
        track_limiter: Limiter | None = None,
    ) -> None:
        self._config = config
        #: Every Track request (pipeline batches and direct calls) waits here when set.
        self._track_limiter = track_limiter
        self._session = session
        self._owns_session = session is None
        self._slots: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._on_request = on_request
        self._on_retry = on_retry
        self._on_start = on_start
        self._sleep = sleep
        self._track_auth: str | None = None
        if config.site_id and config.track_api_key:
            raw = f"{config.site_id}:{config.track_api_key}".encode()
            self._track_auth = "Basic " + base64.b64encode(raw).decode("ascii")
        self._app_auth = f"Bearer {config.app_api_key}" if config.app_api_key else None
        #: The Pipelines API's (base URL, Authorization), when this transport serves it.
        self._cdp = cdp
        # Credentials go only back to an origin (scheme, host, port) we were configured
        # for, or to Customer.io's own hosts over https (see _may_receive_credentials).
        self._origins = {_origin(URL(config.region.track_url)), _origin(URL(config.region.app_url))}
        if cdp is not None:
            self._origins.add(_origin(URL(cdp[0])))
        self._secrets = _secret_forms(config, cdp[1] if cdp is not None else None)
        self.in_flight = 0
        self.connections_opened = 0

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def has_track_credentials(self) -> bool:
        """True when a site id and Track API key were configured."""
        return self._track_auth is not None

    @property
    def started(self) -> bool:
        """True once a request has bound the transport to a loop."""
        return self._loop is not None

    @property
    def session(self) -> aiohttp.ClientSession | None:
        return self._session

    @property
    def owns_session(self) -> bool:
        return self._owns_session

    def _ensure(self) -> tuple[aiohttp.ClientSession, asyncio.Semaphore]:
        if self._closed:
            raise ClientClosedError("the client is closed; create a new AsyncCustomerIO")
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError(
                "this AsyncCustomerIO is bound to another event loop; create one per loop"
            )
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._config.pool.max_connections)
        if self._session is None:
            self._session = self._make_session()
        return self._session, self._slots

    def _make_session(self) -> aiohttp.ClientSession:
        pool = self._config.pool
        ssl_opt: Any = pool.ssl_context if pool.ssl_context is not None else pool.verify_ssl
        connector = aiohttp.TCPConnector(
            limit=pool.max_connections,
            limit_per_host=pool.max_connections_per_host,
            ttl_dns_cache=int(pool.dns_cache_ttl) or None,
            use_dns_cache=pool.dns_cache_ttl > 0,
            keepalive_timeout=pool.keepalive_timeout,
            ssl=ssl_opt,
            socket_factory=self._socket_factory,
        )
        timeout = aiohttp.ClientTimeout(
            total=pool.total_timeout,
            sock_connect=pool.connect_timeout,
            sock_read=pool.read_timeout,
        )
        # A proxy sees only what the request carries: our Authorization travels inside
        # the CONNECT tunnel for https, and Proxy-Authorization comes only from
        # credentials in ``pool.proxy`` itself.
        return aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            auto_decompress=True,
            proxy=pool.proxy,
            trust_env=pool.trust_env,
        )

    def _socket_factory(self, addr_info: Any) -> socket.socket:
        family, type_, proto, _, _ = addr_info
        sock = socket.socket(family=family, type=type_, proto=proto)
        self.connections_opened += 1
        pool = self._config.pool
        if pool.tcp_keepalive:
            # Idle pooled sockets get probed so half-dead connections (NAT timeouts) are
            # noticed before a request is written into them.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            for opt, val in (
                ("TCP_KEEPIDLE", pool.tcp_keepalive_idle),
                ("TCP_KEEPINTVL", pool.tcp_keepalive_interval),
                ("TCP_KEEPCNT", pool.tcp_keepalive_count),
            ):
                if hasattr(socket, opt):
                    sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, opt), val)
        return sock

    async def aclose(self) -> None:
        """Close the session if we created it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()

    # -- requests ----------------------------------------------------------------------

    def _auth(self, api: Api) -> str:
        if api == "cdp":
            if self._cdp is None:
                raise ConfigurationError("this call needs a Pipelines write key")
            return self._cdp[1]
        auth = self._track_auth if api == "track" else self._app_auth
        if auth is None:
            which = "site_id and track_api_key" if api == "track" else "app_api_key"
            raise ConfigurationError(f"this call needs {which}; none were configured")
        return auth

    def base_url(self, api: Api) -> str:
        if api == "cdp" and self._cdp is not None:
            return self._cdp[0]
        region = self._config.region
        return region.track_url if api == "track" else region.app_url

    def _may_receive_credentials(self, url: URL) -> bool:
        """Whether a redirect target may see our Authorization header.

        Only the exact origin (scheme, host, port) of a configured base URL (so an
        ``http://`` stand-in keeps working), or a Customer.io host over https on the
        default port. Never a downgrade to plain http, never another port.
        """
        if _origin(url) in self._origins:
            return True
        host = (url.host or "").lower()
        return (
            url.scheme == "https"
            and url.port == 443
            and (host == "customer.io" or host.endswith(".customer.io"))
        )

    def redact(self, data: bytes) -> bytes:
        """``data`` with every form of our credentials replaced by ``***``: server error
        text is copied into exceptions and logs, and a proxy may echo our headers."""
        if data:
            for secret in self._secrets:
                if secret in data:
                    data = data.replace(secret, b"***")
        return data

    async def request(
        self,
        api: Api,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        params: Mapping[str, str] | None = None,
        op: str,
        idempotent: bool = True,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        limiter: Limiter | None = None,
    ) -> Response:
        """Send one API request with retries; return the 2xx response or raise.

        ``path`` must already be percent-encoded. Errors carry only the path, never
        the URL's credentials. With a ``limiter`` every attempt (retries too) waits
        for its turn, and a 429 pauses the limiter for everyone. Track requests use the
        transport's track limiter (a shared rate budget) when none is given.
        """
        auth = self._auth(api)
        if limiter is None and api == "track":
            limiter = self._track_limiter
        policy = self._config.retry if retry is None else retry
        url = URL(self.base_url(api) + path, encoded=True)
        if params:
            url = url.with_query(params)
        hdrs = {
            "Authorization": auth,
            "User-Agent": self._config.user_agent,
            "Accept": "application/json",
        }
        if body is not None:
            hdrs["Content-Type"] = "application/json"
        if headers:
            hdrs.update(headers)
        started = time.monotonic()
        slept = 0.0
        attempt = 0
        while True:
            if attempt:
                hdrs["X-Retry-Count"] = str(attempt)
            if limiter is not None:
                await limiter.acquire()
            if self._on_start is not None:
                self._on_start(op)
            t0 = time.monotonic()
            status: int | None = None
            try:
                code, rheaders, data = await self._send(method, url, body, hdrs, path)
            except CustomerIOError as exc:
                error: CustomerIOError = exc
            else:
                status = code
                if 200 <= code < 300:
                    if self._on_request is not None:
                        self._on_request(op, code, time.monotonic() - t0, None, attempt)
                    return Response(code, rheaders, data)
                error = error_for_status(
                    code,
                    _decode_body(data),
                    retry_after=parse_retry_after(rheaders.get("Retry-After")),
                    method=method,
                    path=path,
                )
                if limiter is not None and isinstance(error, RateLimitError):
                    limiter.pause(error.retry_after)
            if self._on_request is not None:
                self._on_request(op, status, time.monotonic() - t0, error, attempt)
            attempt += 1
            # The budget counts time spent so far (at least the time slept) plus the
            # coming sleep: give up before sleeping past it.
            spent = max(time.monotonic() - started, slept)
            delay = retry_delay(policy, attempt, error, spent, idempotent=idempotent)
            if delay is None:
                raise error
            if self._on_retry is not None:
                self._on_retry(op, attempt, delay, error)
            log.debug("retrying %s in %.2fs after %s", op, delay, error)
            slept += delay
            await self._sleep(delay)

    async def _send(
        self, method: str, url: URL, body: bytes | None, headers: dict[str, str], path: str
    ) -> tuple[int, CIMultiDictProxy[str], bytes]:
        session, slots = self._ensure()
        async with slots:
            self.in_flight += 1
            try:
                hops = 0
                while True:
                    with map_client_errors(method, path):
                        async with session.request(
                            method, url, data=body, headers=headers, allow_redirects=False
                        ) as resp:
                            status = resp.status
                            if status in _REDIRECTS and resp.headers.get("Location"):
                                location = resp.headers["Location"]
                                await resp.read()
                            else:
                                if status >= 300:
                                    data = self.redact(await resp.content.read(_MAX_ERROR_BODY))
                                else:
                                    data = await resp.read()
                                    if status == 207:
                                        # Per-operation error text reaches on_error/logs.
                                        data = self.redact(data)
                                return status, resp.headers, data
                    hops += 1
                    if hops > self._config.max_redirects:
                        raise RedirectError(f"too many redirects: {method} {path}")
                    target = url.join(URL(location))
                    if target.scheme not in ("http", "https"):
                        raise RedirectError(f"refusing redirect to {target.scheme}: {path}")
                    if not self._may_receive_credentials(target):
                        # Never hand our keys to a host that is not Customer.io's.
                        headers = {k: v for k, v in headers.items() if k != "Authorization"}
                    log.info(
                        "following %s redirect for %s %s to %s", status, method, path, target.host
                    )
                    url = target
                    path = target.raw_path
            finally:
                self.in_flight -= 1
