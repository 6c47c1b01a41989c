"""A local Customer.io stand-in: the server, its state and the conditions in front
of every route.

``StandIn`` owns the ``aiohttp.web`` app and its lifecycle, what was received
(requests, accepted operations, people, sends) and the wire conditions a test
scripts: a simulated round-trip time, held requests, injected faults (``_faults``),
a rate limit, redirects and auth. Its middleware applies those before any route.
The routes are modules of their own: ``_track_routes`` (Track v1 and v2),
``_app_routes`` (App API), ``_cdp_standin`` (Pipelines) and ``_control``
(out-of-band control of a stand-in in another process).
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from aiohttp import web

from ._app_routes import RecordedSend, RecordedTrigger, register_app_routes
from ._cdp_standin import PipelinesState, register_cdp
from ._control import CONTROL_PREFIX, register_control
from ._faults import Fault, FaultScript, RateWindow, abort
from ._records import RecordedOperation, RecordedRequest
from ._track_routes import MAX_BATCH_BYTES, NO_AUTH_PREFIX, register_track_routes

__all__ = ["Fault", "RecordedOperation", "RecordedRequest", "StandIn"]


class StandIn:
    """A Customer.io stand-in server for tests, demos and benchmarks.

    Use it in a test's loop::

        async with StandIn() as cio:
            client = AsyncCustomerIO(cio.site_id, cio.track_api_key, region=cio.region)
            ...
            assert cio.events(name="purchase")

    or as its own process: ``python -m cio_async.testing --port 8080``.
    """

    def __init__(
        self,
        *,
        site_id: str = "stand-in-site",
        track_api_key: str = "stand-in-track-key",
        app_api_key: str = "stand-in-app-key",
        region: str = "us",
        rtt: float = 0.0,
        handshake_rtts: float | None = None,
        record: bool = True,
        ssl_context: ssl.SSLContext | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.site_id = site_id
        self.track_api_key = track_api_key
        self.app_api_key = app_api_key
        self.account_region = region
        #: Simulated round-trip time in seconds, charged once per request.
        self.rtt = rtt
        #: Extra round trips charged for a new connection (TCP, plus TLS when on).
        self.handshake_rtts = (
            handshake_rtts if handshake_rtts is not None else (2.0 if ssl_context else 1.0)
        )
        self.record = record
        self.ssl_context = ssl_context
        self.host = host
        self.port = port
        self.requests: list[RecordedRequest] = []
        self.operations: list[RecordedOperation] = []
        self.counts: Counter[str] = Counter()
        self.seen_event_ids: set[str] = set()
        self.people: dict[str, dict[str, Any]] = {}
        self.suppressed: set[str] = set()
        self.segments: dict[int, set[str]] = {}
        #: App API: accepted transactional sends and broadcast triggers.
        self.sends: list[RecordedSend] = []
        self.triggers: list[RecordedTrigger] = []
        #: Answer broadcast triggers closer together than this many seconds with 429
        #: (Customer.io: 10); None accepts them all.
        self.broadcast_interval: float | None = None
        self.connections = 0
        #: Requests being handled right now, and the most seen at once.
        self.concurrent = 0
        self.max_concurrent = 0
        self.redirect_to: str | None = None
        self.redirect_status = 301
        self._rate_window = RateWindow()
        self._rate_limit: float | None = None
        #: Whole-request limits for v2 (Customer.io: 32 KB per entity, 500 KB per batch).
        self.max_batch_bytes = MAX_BATCH_BYTES
        #: A v2 batch whose body contains this marker is refused whole with a 400,
        #: as Customer.io does for a malformed request.
        self.reject_batches_containing: bytes | None = None
        #: Paths with their own auth: ``check(authorization) -> None`` or the denial.
        self.path_auth: dict[str, Callable[[str | None], web.Response | None]] = {}
        #: The Data Pipelines API: write key, region, accepted calls (``_cdp_standin``).
        self.pipelines = PipelinesState()
        #: ``reject_operation(op) -> (field, message) | None``: refuse matching v2
        #: operations (a 207 entry in a batch, reason ``invalid``), as Customer.io does
        #: for what only the workspace knows (an unknown object type, a disabled
        #: identifier). The SDK's own checks cannot catch these.
        self.reject_operation: Callable[[Mapping[str, Any]], tuple[str, str] | None] | None = None
        self._gate: asyncio.Event | None = None
        #: Requests waiting at a ``hold()`` right now.
        self.held = 0
        self._faults = FaultScript()
        #: ``(marker, status, path)`` from ``fail_batches_containing``.
        self._body_faults: list[tuple[bytes, int, str]] = []
        #: Every connection's transport, held until ``close`` aborts what aiohttp left
        #: open (a client that vanished mid-request): none outlives the stand-in.
        self._transports: set[Any] = set()
        self._runner: web.AppRunner | None = None
        self._track_auth = (
            "Basic " + base64.b64encode(f"{site_id}:{track_api_key}".encode()).decode()
        )
        self._app_auth = f"Bearer {app_api_key}"
        self.app = self._make_app()

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL (``http(s)://host:port``) once started."""
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def region(self) -> Any:
        """A ``cio_async.Region`` pointing Track and App calls at this stand-in."""
        from .._config import Region

        return Region.custom(self.url, self.url, name="stand-in")

    @property
    def cdp_write_key(self) -> str:
        """The Pipelines write key (``pipelines.write_key``)."""
        return self.pipelines.write_key

    @cdp_write_key.setter
    def cdp_write_key(self, value: str) -> None:
        self.pipelines.write_key = value

    @property
    def pipelines_url(self) -> str:
        """The Pipelines base URL (``.../v1``) once started."""
        return self.url + "/v1"

    def pipelines_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``AsyncPipelines`` to talk to this stand-in."""
        return {"write_key": self.pipelines.write_key, "url": self.pipelines_url}

    def client_kwargs(self, *, production_limits: bool = False) -> dict[str, Any]:
        """Keyword arguments for ``AsyncCustomerIO`` to talk to this stand-in.

        The App API's client-side rate limiters are switched off (``app_config``),
        because they guard limits that only Customer.io enforces: with production
        limits, five broadcast triggers in a test would wait 40 seconds.
        ``production_limits=True`` keeps Customer.io's limits (to test your code's
        pacing); the stand-in's own ``rate_limit``/``broadcast_interval`` answer 429s
        when you want the server to enforce them.
        """
        from .._config import AppConfig

        kwargs: dict[str, Any] = {
            "site_id": self.site_id,
            "track_api_key": self.track_api_key,
            "app_api_key": self.app_api_key,
            "region": self.region,
        }
        if not production_limits:
            kwargs["app_config"] = AppConfig(
                rate_limit=None, send_rate_limit=None, broadcast_rate_limit=None
            )
        return kwargs

    def environ(self) -> dict[str, str]:
        """``CUSTOMERIO_*`` environment variables pointing ``from_env()`` (and the
        ``cio-async`` command) at this stand-in: credentials, both URLs and the region,
        and the Pipelines write key and URL (``AsyncPipelines.from_env()``).
        ``from_env()`` keeps production rate limits; pass ``app_config=`` to relax them.
        """
        return {
            "CUSTOMERIO_SITE_ID": self.site_id,
            "CUSTOMERIO_TRACK_API_KEY": self.track_api_key,
            "CUSTOMERIO_APP_API_KEY": self.app_api_key,
            "CUSTOMERIO_REGION": self.account_region,
            "CUSTOMERIO_TRACK_URL": self.url,
            "CUSTOMERIO_APP_URL": self.url,
            "CUSTOMERIO_WRITE_KEY": self.pipelines.write_key,
            "CUSTOMERIO_PIPELINES_URL": self.pipelines_url,
        }

    async def start(self) -> StandIn:
        """Start listening; ``port=0`` picks a free port."""
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(
            runner,
            self.host,
            self.port,
            ssl_context=self.ssl_context,
            backlog=1024,
            reuse_address=True,
        )
        await site.start()
        if self.port == 0:
            self.port = runner.addresses[0][1]  # the port the system picked
        self._runner = runner
        return self

    async def close(self) -> None:
        """Stop the server."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        transports, self._transports = self._transports, set()
        for transport in transports:
            if not transport.is_closing():
                transport.abort()
        # A transport closes its socket in a callback (``connection_lost``): let it
        # run now, before the caller's loop may close with it still scheduled.
        for _ in range(2):
            await asyncio.sleep(0)

    async def __aenter__(self) -> StandIn:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- scripting ---------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        *,
        times: int = 1,
        retry_after: float | str | None = None,
        body: Any = None,
        path: str | None = None,
        method: str | None = None,
    ) -> None:
        """Answer the next ``times`` matching requests with ``status``."""
        self._faults.add(
            Fault(
                status=status,
                times=times,
                body=body,
                path=path,
                method=method,
                retry_after=None if retry_after is None else str(retry_after),
            )
        )

    def drop_next(
        self, *, times: int = 1, after_processing: bool = False, path: str | None = None
    ) -> None:
        """Close the connection without answering the next ``times`` matching requests.

        With ``after_processing`` the request is accepted first, so only the answer is
        lost: the client must retry, and event ids make the retry harmless.
        """
        self._faults.add(
            Fault(drop=not after_processing, drop_after=after_processing, times=times, path=path)
        )

    def delay_next(self, seconds: float, *, times: int = 1, path: str | None = None) -> None:
        """Delay the next ``times`` matching requests by ``seconds``."""
        self._faults.add(Fault(delay=seconds, times=times, path=path))

    def hold(self) -> None:
        """Hold every request that arrives until ``release()``."""
        self._gate = asyncio.Event()

    def release(self) -> None:
        """Let held requests (and later ones) through."""
        if self._gate is not None:
            self._gate.set()
            self._gate = None

    def clear_faults(self) -> None:
        """Forget every scripted fault (``fail_next`` and the others, and
        ``fail_batches_containing``)."""
        self._faults.clear()
        self._body_faults.clear()

    # -- content faults: a request whose body holds a marker fails every time ------------
    # (Kept apart from the one-shot faults above: these match on the body, not the
    # path, and last until ``clear_faults()``; they belong with the fault script.)

    def fail_batches_containing(
        self, marker: bytes, *, status: int = 500, path: str = "/api/v2/batch"
    ) -> None:
        """Answer ``status`` to every request to ``path`` whose body contains
        ``marker``, until ``clear_faults()``: one poisonous operation makes every batch
        that carries it fail (a server error provoked by content), while batches
        without it are handled normally."""
        self._body_faults.append((marker, status, path))

    def _body_fault(self, path: str, body: bytes, rec: RecordedRequest) -> web.Response | None:
        for marker, status, fault_path in self._body_faults:
            if path == fault_path and marker in body:
                self.counts[f"fault_{status}"] += 1
                rec.status = status
                return _json(
                    {"errors": [{"reason": "injected", "message": "injected server error"}]},
                    status,
                )
        return None

    @property
    def rate_limit(self) -> float | None:
        """Answer every request with 429 beyond this many requests per second (None:
        no limit). Setting it starts a fresh one-second window."""
        return self._rate_limit

    @rate_limit.setter
    def rate_limit(self, limit: float | None) -> None:
        self._rate_limit = limit
        self._rate_window.clear()

    def reset(self, *, connections: bool = False) -> None:
        """Forget everything received (faults stay). With ``connections``, also zero
        the connection counters and the rate-limit window, as a fresh server would."""
        if connections:
            self.connections = 0
            self.max_concurrent = 0
            self._rate_window.clear()
        self.requests.clear()
        self.operations.clear()
        self.counts.clear()
        self.seen_event_ids.clear()
        self.people.clear()
        self.suppressed.clear()
        self.segments.clear()
        self.sends.clear()
        self.triggers.clear()
        self.pipelines.reset()

    # -- queries -----------------------------------------------------------------------

    def ops(self, type: str | None = None, action: str | None = None) -> list[RecordedOperation]:
        """Accepted operations, optionally filtered by type and action."""
        return [
            o
            for o in self.operations
            if (type is None or o.type == type) and (action is None or o.action == action)
        ]

    def events(self, name: str | None = None) -> list[RecordedOperation]:
        """Accepted person and anonymous events (track, page, screen)."""
        return [
            o
            for o in self.operations
            if o.action in ("event", "page", "screen")
            and o.type in ("person", "anonymous")
            and (name is None or o.name == name)
        ]

    def wait_for(
        self, predicate: Callable[[StandIn], bool], timeout: float = 5.0
    ) -> Awaitable[None]:
        """Wait (polling the loop, not sleeping blindly) until ``predicate(self)``."""

        async def _wait() -> None:
            deadline = time.monotonic() + timeout
            while not predicate(self):
                if time.monotonic() > deadline:
                    raise TimeoutError("stand-in condition not met in time")
                await asyncio.sleep(0.005)

        return _wait()

    # -- the app -----------------------------------------------------------------------

    def add_routes(self, register: Callable[[web.Application], None]) -> None:
        """Register extra routes (before ``start``)."""
        register(self.app)

    def _make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=16 << 20)
        register_track_routes(self, app)
        register_app_routes(self, app)
        register_cdp(self, app)
        register_control(self, app)
        return app

    @web.middleware
    async def _middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        if request.path.startswith(CONTROL_PREFIX):
            return await handler(request)  # out of band: no RTT, auth or counting
        self.concurrent += 1
        self.max_concurrent = max(self.max_concurrent, self.concurrent)
        try:
            return await self._handle(request, handler)
        finally:
            self.concurrent -= 1

    async def _handle(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        transport = request.transport  # None once the client has gone
        new_conn = transport is not None and transport not in self._transports
        if new_conn:
            if len(self._transports) >= 1024:  # a long-lived stand-in: forget closed ones
                self._transports = {t for t in self._transports if not t.is_closing()}
            self._transports.add(transport)
            self.connections += 1
        if self.rtt:
            # One round trip per exchange, plus the handshakes a new connection costs.
            await asyncio.sleep(self.rtt * (1 + (self.handshake_rtts if new_conn else 0)))
        body = await request.read()
        if self._gate is not None:
            self.held += 1
            try:
                await self._gate.wait()
            finally:
                self.held -= 1
        path = request.path
        api = "track" if path.startswith(("/api/", NO_AUTH_PREFIX)) else "app"
        rec = RecordedRequest(
            request.method,
            path,
            request.raw_path,
            dict(request.query),
            dict(request.headers),
            body,
            api,
            received_at=time.monotonic(),
        )
        if self.record:
            self.requests.append(rec)
        self.counts["requests"] += 1
        self.counts["bytes"] += len(body)
        if self.redirect_to is not None:
            rec.status = self.redirect_status
            return _redirect(self.redirect_status, self.redirect_to + request.raw_path)
        fault = self._faults.take(request.method, path)
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.drop:
                self.counts["dropped_connections"] += 1
                abort(request)
                return web.Response(status=500)
            if fault.status is not None:
                self.counts[f"fault_{fault.status}"] += 1
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                rec.status = fault.status
                return _json(
                    fault.body
                    if fault.body is not None
                    else {"errors": [{"reason": "injected", "message": "injected fault"}]},
                    fault.status,
                    headers,
                )
        if self._body_faults:
            refused = self._body_fault(path, body, rec)
            if refused is not None:
                return refused
        if self._rate_limit is not None and not self._rate_window.admit(self._rate_limit):
            self.counts["rate_limited"] += 1
            rec.status = 429
            return _json(
                {"errors": [{"detail": "rate limited", "status": "429"}]},
                429,
                {"Retry-After": "1"},
            )
        check = self.path_auth.get(path)
        if check is not None:
            denied = check(request.headers.get("Authorization"))
            if denied is not None:
                self.counts["unauthorized"] += 1
                rec.status = denied.status
                return denied
        elif not path.startswith(NO_AUTH_PREFIX) and request.headers.get("Authorization") != (
            self._track_auth if api == "track" else self._app_auth
        ):
            self.counts["unauthorized"] += 1
            rec.status = 401
            return _json({"meta": {"error": "Unauthorized request"}}, 401)
        resp = await handler(request)
        rec.status = resp.status
        if fault is not None and fault.drop_after:
            self.counts["dropped_connections"] += 1
            abort(request)
        return resp

    # -- state -------------------------------------------------------------------------

    def accept(self, op: RecordedOperation) -> bool:
        """Record an operation a route accepted, as Customer.io would apply it: count
        it, keep it (unless ``record`` is off) and update ``people``; False, and
        nothing else, when it repeats an event id already seen."""
        if op.event_id is not None:
            if op.event_id in self.seen_event_ids:
                self.counts["duplicate_events_ignored"] += 1
                return False
            self.seen_event_ids.add(op.event_id)
        self.counts["operations"] += 1
        self.counts[f"{op.type}.{op.action}"] += 1
        if self.record:
            self.operations.append(op)
        if op.type == "person":
            self._apply_person(op)
        return True

    def _apply_person(self, op: RecordedOperation) -> None:
        ids = op.identifiers
        if not ids:
            return
        kind, value = next(iter(ids.items()))
        key = f"{kind}:{value}"
        if op.action == "identify":
            attrs = op.body.get("attributes", {}) if op.source != "v1" else op.body
            person = self.people.setdefault(key, {kind: value})
            for k, v in (attrs or {}).items():
                if k in ("cio_relationships", "_timestamp", "_update"):
                    continue
                person[k] = v
        elif op.action in ("delete", "suppress"):
            self.people.pop(key, None)
            if op.action == "suppress":
                self.suppressed.add(key)
        elif op.action == "unsuppress":
            self.suppressed.discard(key)


def _json(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, headers=headers, content_type="application/json"
    )


def _redirect(status: int, location: str) -> web.Response:
    return web.Response(status=status, headers={"Location": location})
