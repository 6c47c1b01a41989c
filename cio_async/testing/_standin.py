"""A local Customer.io stand-in: an ``aiohttp.web`` app speaking the Track API (and,
through ``_app_standin``, the App API).

It checks auth, enforces the documented limits, answers v2 batches with 200/207/400
as Customer.io does, ignores repeated event ids, records every accepted operation,
and can be scripted to inject faults (statuses, dropped connections, delays) and a
simulated round-trip time.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import time
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from ._app_standin import RecordedSend, RecordedTrigger, register_app_routes
from ._cdp_standin import register_cdp
from ._control import CONTROL_PREFIX, lean_batch, register_control

__all__ = ["Fault", "RecordedOperation", "RecordedRequest", "StandIn"]

MAX_ID_BYTES = 150
MAX_EVENT_NAME_BYTES = 100
MAX_ATTRIBUTE_NAME_BYTES = 150
MAX_ATTRIBUTE_VALUE_BYTES = 1000
MAX_ATTRIBUTES = 300
MAX_EVENT_DATA_BYTES = 100_000
MAX_OPERATION_BYTES = 32_000
MAX_BATCH_BYTES = 500_000
MAX_V1_BODY_BYTES = 1_000_000

_PERSON_ACTIONS = {
    "identify",
    "delete",
    "event",
    "page",
    "screen",
    "add_relationships",
    "delete_relationships",
    "add_device",
    "delete_device",
    "merge",
    "suppress",
    "unsuppress",
}
_OBJECT_ACTIONS = {
    "identify",
    "identify_anonymous",
    "delete",
    "add_relationships",
    "delete_relationships",
}
_RESERVED = {
    "_update",
    "_timestamp",
    "cio_subscription_preferences",
    "cio_relationships",
    "id",
    "email",
}


@dataclass
class RecordedRequest:
    """One HTTP request the stand-in received (before any fault was applied)."""

    method: str
    path: str
    raw_path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    api: str
    status: int = 0
    #: ``time.monotonic()`` when the request arrived (after any simulated RTT).
    received_at: float = 0.0

    @property
    def json(self) -> Any:
        return orjson.loads(self.body) if self.body.strip() else None


@dataclass
class RecordedOperation:
    """One operation the stand-in accepted, normalised across v1 and v2.

    ``source`` is ``v1``, ``entity`` or ``batch``; ``type`` is ``person``, ``object``,
    ``delivery``, ``anonymous``, ``form``, ``metric`` or ``segment``; ``body`` is the
    v1 body or the v2 operation as sent.
    """

    source: str
    type: str
    action: str
    identifiers: dict[str, Any]
    body: Any
    event_id: str | None = None
    name: str | None = None


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


def _b(s: str) -> int:
    return len(s.encode()) if not s.isascii() else len(s)


class _Invalid(Exception):
    def __init__(self, field: str, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.reason = reason


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
        #: Answer every request with 429 beyond this many requests per second.
        self.rate_limit: float | None = None
        #: Whole-request limits for v2 (Customer.io: 32 KB per entity, 500 KB per batch).
        self.max_batch_bytes = MAX_BATCH_BYTES
        #: A v2 batch whose body contains this marker is refused whole with a 400,
        #: as Customer.io does for a malformed request.
        self.reject_batches_containing: bytes | None = None
        #: Count v2 batch operations without checking or recording them (``_control``).
        self.lean = False
        #: Paths with their own auth: ``check(authorization) -> None`` or the denial.
        self.path_auth: dict[str, Callable[[str | None], web.Response | None]] = {}
        #: The Data Pipelines write key (``POST /v1/batch``, see ``_cdp_standin``).
        self.cdp_write_key = "stand-in-write-key"
        #: ``reject_operation(op) -> (field, message) | None``: refuse matching v2
        #: operations (a 207 entry in a batch, reason ``invalid``), as Customer.io does
        #: for what only the workspace knows (an unknown object type, a disabled
        #: identifier). The SDK's own checks cannot catch these.
        self.reject_operation: Callable[[Mapping[str, Any]], tuple[str, str] | None] | None = None
        self._gate: asyncio.Event | None = None
        #: Requests waiting at a ``hold()`` right now.
        self.held = 0
        self._rate_window: list[float] = []
        self._faults: list[Fault] = []
        self._seen_protocols: weakref.WeakSet[Any] = weakref.WeakSet()
        self._runner: web.AppRunner | None = None
        self._track_auth = (
            "Basic " + base64.b64encode(f"{site_id}:{track_api_key}".encode()).decode()
        )
        self._app_auth = f"Bearer {app_api_key}"
        self._extra_routes: list[Callable[[web.Application], None]] = []
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

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``AsyncCustomerIO`` to talk to this stand-in."""
        return {
            "site_id": self.site_id,
            "track_api_key": self.track_api_key,
            "app_api_key": self.app_api_key,
            "region": self.region,
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
        server = site._server
        if self.port == 0 and server is not None:
            sockets = getattr(server, "sockets", None) or []
            self.port = sockets[0].getsockname()[1]
        self._runner = runner
        return self

    async def close(self) -> None:
        """Stop the server."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

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
        self._faults.append(
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
        self._faults.append(
            Fault(drop=not after_processing, drop_after=after_processing, times=times, path=path)
        )

    def delay_next(self, seconds: float, *, times: int = 1, path: str | None = None) -> None:
        """Delay the next ``times`` matching requests by ``seconds``."""
        self._faults.append(Fault(delay=seconds, times=times, path=path))

    def hold(self) -> None:
        """Hold every request that arrives until ``release()``."""
        self._gate = asyncio.Event()

    def release(self) -> None:
        """Let held requests (and later ones) through."""
        if self._gate is not None:
            self._gate.set()
            self._gate = None

    def clear_faults(self) -> None:
        self._faults.clear()

    def reset(self) -> None:
        """Forget everything received (faults stay)."""
        self.requests.clear()
        self.operations.clear()
        self.counts.clear()
        self.seen_event_ids.clear()
        self.people.clear()
        self.suppressed.clear()
        self.segments.clear()
        self.sends.clear()
        self.triggers.clear()

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for f in self._faults:
            if f.matches(method, path):
                f.times -= 1
                if f.times <= 0:
                    self._faults.remove(f)
                return f
        return None

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
        r = app.router
        r.add_put("/api/v1/customers/{identifier}", self._v1_identify)
        r.add_delete("/api/v1/customers/{identifier}", self._v1_delete)
        r.add_post("/api/v1/customers/{identifier}/events", self._v1_event)
        r.add_post("/api/v1/events", self._v1_anonymous)
        r.add_put("/api/v1/customers/{identifier}/devices", self._v1_add_device)
        r.add_delete("/api/v1/customers/{identifier}/devices/{device_id}", self._v1_delete_device)
        r.add_post("/api/v1/customers/{identifier}/suppress", self._v1_suppress)
        r.add_post("/api/v1/customers/{identifier}/unsuppress", self._v1_unsuppress)
        r.add_post("/api/v1/merge_customers", self._v1_merge)
        r.add_post("/api/v1/segments/{segment_id}/add_customers", self._v1_segment)
        r.add_post("/api/v1/segments/{segment_id}/remove_customers", self._v1_segment)
        r.add_post("/api/v1/forms/{form_id}/submit", self._v1_form)
        r.add_post("/api/v1/metrics", self._v1_metric)
        r.add_get("/api/v1/accounts/region", self._v1_region)
        r.add_post("/api/v2/entity", self._v2_entity)
        r.add_post("/api/v2/batch", self._v2_batch)
        register_app_routes(self, app)
        register_track_extras(self, app)
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
        proto = request.transport
        new_conn = proto not in self._seen_protocols
        if new_conn:
            self._seen_protocols.add(proto)
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
        api = "track" if path.startswith(("/api/", _NO_AUTH_PREFIX)) else "app"
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
        fault = self._take_fault(request.method, path)
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.drop:
                self.counts["dropped_connections"] += 1
                _abort(request)
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
        if self.rate_limit is not None:
            now = time.monotonic()
            window = self._rate_window
            while window and window[0] < now - 1.0:
                window.pop(0)
            if len(window) >= self.rate_limit:
                self.counts["rate_limited"] += 1
                rec.status = 429
                return _json(
                    {"errors": [{"detail": "rate limited", "status": "429"}]},
                    429,
                    {"Retry-After": "1"},
                )
            window.append(now)
        check = self.path_auth.get(path)
        if check is not None:
            denied = check(request.headers.get("Authorization"))
            if denied is not None:
                self.counts["unauthorized"] += 1
                rec.status = denied.status
                return denied
        elif not path.startswith(_NO_AUTH_PREFIX) and request.headers.get("Authorization") != (
            self._track_auth if api == "track" else self._app_auth
        ):
            self.counts["unauthorized"] += 1
            rec.status = 401
            return _json({"meta": {"error": "Unauthorized request"}}, 401)
        try:
            resp = await handler(request)
        except _Invalid as exc:
            resp = _json({"meta": {"errors": [f"{exc.field}: {exc.message}"]}}, 400)
        rec.status = resp.status
        if fault is not None and fault.drop_after:
            self.counts["dropped_connections"] += 1
            _abort(request)
        return resp

    # -- helpers -----------------------------------------------------------------------

    def _add(self, op: RecordedOperation) -> bool:
        """Record an accepted operation; False when it repeats a seen event id."""
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

    @staticmethod
    async def _body(request: web.Request) -> Any:
        raw = await request.read()  # aiohttp caches the body read by the middleware
        if not raw.strip():
            return {}
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise _Invalid("body", "is not valid JSON") from None

    @staticmethod
    def _v1_identifier(request: web.Request) -> dict[str, str]:
        raw = request.match_info["identifier"]
        value = raw  # aiohttp has already percent-decoded match_info
        if not value.strip():
            raise _Invalid("identifier", "is blank")
        if _b(value) > MAX_ID_BYTES + 4:
            raise _Invalid("identifier", "is longer than 150 bytes")
        if value.startswith("cio_"):
            return {"cio_id": value[4:]}
        if "@" in value:
            return {"email": value}
        return {"id": value}

    @staticmethod
    def _check_attributes(attrs: Any, field: str = "attributes") -> None:
        if not isinstance(attrs, Mapping):
            raise _Invalid(field, "must be an object")
        custom = [k for k in attrs if k not in _RESERVED]
        if len(custom) > MAX_ATTRIBUTES:
            raise _Invalid(field, f"more than {MAX_ATTRIBUTES} attributes")
        for k in custom:
            if _b(k) > MAX_ATTRIBUTE_NAME_BYTES:
                raise _Invalid(f"{field}.{k[:20]}", "attribute name longer than 150 bytes")
            v = attrs[k]
            size = _b(v) if isinstance(v, str) else len(orjson.dumps(v))
            if size > MAX_ATTRIBUTE_VALUE_BYTES:
                raise _Invalid(f"{field}.{k}", "attribute value longer than 1000 bytes")

    @staticmethod
    def _check_event(body: Any, name_limit: int = MAX_EVENT_NAME_BYTES) -> None:
        if not isinstance(body, Mapping):
            raise _Invalid("body", "must be an object")
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise _Invalid("name", "is required")
        if _b(name) > name_limit:
            raise _Invalid("name", f"is longer than {name_limit} bytes")
        data = body.get("data", body.get("attributes"))
        if data is not None and len(orjson.dumps(data)) > MAX_EVENT_DATA_BYTES:
            raise _Invalid("data", "is larger than 100000 bytes")
        ts = body.get("timestamp")
        if ts is not None and (not isinstance(ts, int) or ts > 99_999_999_999 or ts < 0):
            raise _Invalid("timestamp", "must be Unix seconds")

    # -- Track v1 ----------------------------------------------------------------------

    async def _v1_identify(self, request: web.Request) -> web.Response:
        ids = self._v1_identifier(request)
        body = await self._body(request)
        self._check_attributes(body)
        self._add(RecordedOperation("v1", "person", "identify", ids, body))
        return _json({})

    async def _v1_delete(self, request: web.Request) -> web.Response:
        ids = self._v1_identifier(request)
        self._add(RecordedOperation("v1", "person", "delete", ids, None))
        return _json({})

    async def _v1_event(self, request: web.Request) -> web.Response:
        ids = self._v1_identifier(request)
        body = await self._body(request)
        kind = body.get("type", "event") if isinstance(body, Mapping) else "event"
        self._check_event(body, 2048 if kind == "page" else MAX_EVENT_NAME_BYTES)
        self._add(
            RecordedOperation("v1", "person", kind, ids, body, body.get("id"), body.get("name"))
        )
        return _json({})

    async def _v1_anonymous(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        self._check_event(body)
        anon = body.get("anonymous_id")
        if anon is None and not (body.get("data") or {}).get("recipient"):
            raise _Invalid("anonymous_id", "is required unless data.recipient is set")
        ids = {"anonymous_id": anon} if anon is not None else {}
        self._add(
            RecordedOperation(
                "v1",
                "anonymous",
                body.get("type", "event"),
                ids,
                body,
                body.get("id"),
                body.get("name"),
            )
        )
        return _json({})

    async def _v1_add_device(self, request: web.Request) -> web.Response:
        ids = self._v1_identifier(request)
        body = await self._body(request)
        device = body.get("device") if isinstance(body, Mapping) else None
        if not isinstance(device, Mapping) or not device.get("id"):
            raise _Invalid("device.id", "is required")
        if device.get("platform") not in ("ios", "android"):
            raise _Invalid("device.platform", "must be ios or android")
        self._add(RecordedOperation("v1", "person", "add_device", ids, body))
        return _json({})

    async def _v1_delete_device(self, request: web.Request) -> web.Response:
        ids = self._v1_identifier(request)
        token = request.match_info["device_id"]
        self._add(RecordedOperation("v1", "person", "delete_device", ids, {"device_id": token}))
        return _json({})

    async def _v1_suppress(self, request: web.Request) -> web.Response:
        ids = self._v1_identifier(request)
        self._add(RecordedOperation("v1", "person", "suppress", ids, None))
        return _json({})

    async def _v1_unsuppress(self, request: web.Request) -> web.Response:
        ids = self._v1_identifier(request)
        self._add(RecordedOperation("v1", "person", "unsuppress", ids, None))
        return _json({})

    async def _v1_merge(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        for side in ("primary", "secondary"):
            v = body.get(side) if isinstance(body, Mapping) else None
            if (
                not isinstance(v, Mapping)
                or len(v) != 1
                or next(iter(v)) not in ("id", "email", "cio_id")
            ):
                return _json(
                    {"meta": {"error": f"{side} needs exactly one of id, email, cio_id"}}, 400
                )
        self._add(RecordedOperation("v1", "person", "merge", dict(body["primary"]), body))
        return _json({})

    async def _v1_segment(self, request: web.Request) -> web.Response:
        try:
            seg = int(request.match_info["segment_id"])
        except ValueError:
            raise _Invalid("segment_id", "must be an integer") from None
        body = await self._body(request)
        ids = body.get("ids") if isinstance(body, Mapping) else None
        if not isinstance(ids, list) or not 1 <= len(ids) <= 1000:
            raise _Invalid("ids", "must hold 1 to 1000 identifiers")
        id_type = request.query.get("id_type", "id")
        if id_type not in ("id", "email", "cio_id"):
            raise _Invalid("id_type", "must be id, email or cio_id")
        action = request.path.rsplit("/", 1)[1]
        members = self.segments.setdefault(seg, set())
        for i in ids:
            (members.add if action == "add_customers" else members.discard)(f"{id_type}:{i}")
        self._add(
            RecordedOperation(
                "v1", "segment", action, {"segment_id": seg}, {"ids": ids, "id_type": id_type}
            )
        )
        return _json({})

    async def _v1_form(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        data = body.get("data") if isinstance(body, Mapping) else None
        if not isinstance(data, Mapping):
            raise _Invalid("data", "is required")
        if sum(1 for k in ("email", "id") if data.get(k)) != 1:
            raise _Invalid("data", "needs exactly one identifier")
        if any(not isinstance(v, str) for v in data.values()):
            raise _Invalid("data", "values must be strings")
        self._add(
            RecordedOperation(
                "v1", "form", "submit", {"form_id": request.match_info["form_id"]}, body
            )
        )
        return web.Response(status=204)

    async def _v1_metric(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if not isinstance(body, Mapping) or not body.get("delivery_id") or not body.get("metric"):
            raise _Invalid("body", "delivery_id and metric are required")
        self._add(
            RecordedOperation(
                "v1", "metric", str(body["metric"]), {"delivery_id": body["delivery_id"]}, body
            )
        )
        return _json({})

    async def _v1_region(self, request: web.Request) -> web.Response:
        return _json({"url": self.url, "region": self.account_region, "environment_id": 1})

    # -- Track v2 ----------------------------------------------------------------------

    def _v2_check(self, op: Any) -> RecordedOperation:
        if not isinstance(op, Mapping):
            raise _Invalid("", "operation must be an object")
        if self.reject_operation is not None:
            verdict = self.reject_operation(op)
            if verdict is not None:
                raise _Invalid(*verdict)
        type_, action = op.get("type"), op.get("action")
        if type_ not in ("person", "object", "delivery"):
            raise _Invalid("type", "must be person, object or delivery", "required")
        allowed = {"person": _PERSON_ACTIONS, "object": _OBJECT_ACTIONS, "delivery": {"event"}}[
            type_
        ]
        if action not in allowed:
            raise _Invalid("action", f"{action!r} is not valid for {type_}")
        if action == "merge":
            for side in ("primary", "secondary"):
                v = op.get(side)
                if not isinstance(v, Mapping) or len(v) != 1:
                    raise _Invalid(side, "needs exactly one identifier", "required")
            return RecordedOperation("", "person", "merge", dict(op["primary"]), op)
        ids = op.get("identifiers")
        if not isinstance(ids, Mapping) or not ids:
            raise _Invalid("identifiers", "are required", "required")
        if type_ == "person":
            if len(ids) != 1 or next(iter(ids)) not in ("id", "email", "cio_id", "phone"):
                raise _Invalid("identifiers", "need exactly one of id, email, cio_id, phone")
            v = next(iter(ids.values()))
            if not isinstance(v, str) or not v.strip() or _b(v) > MAX_ID_BYTES:
                raise _Invalid("identifiers", "identifier must be 1-150 bytes")
        if action in ("event", "page", "screen"):
            self._check_event(op, 2048 if action == "page" else MAX_EVENT_NAME_BYTES)
            if type_ == "delivery" and op.get("name") not in ("opened", "converted", "delivered"):
                raise _Invalid("name", "must be opened, converted or delivered")
        if action == "identify" and "attributes" in op:
            self._check_attributes(op["attributes"])
        if action in ("add_device", "delete_device"):
            dev = op.get("device")
            if not isinstance(dev, Mapping) or not dev.get("token"):
                raise _Invalid("device.token", "is required", "required")
        ev_id = op.get("id") if action in ("event", "page", "screen") else None
        return RecordedOperation("", type_, action, dict(ids), op, ev_id, op.get("name"))

    async def _v2_entity(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if len(raw) > MAX_OPERATION_BYTES:
            return _json(
                {
                    "errors": [
                        {"reason": "too_large", "field": "", "message": "request larger than 32kb"}
                    ]
                },
                413,
            )
        try:
            rec = self._v2_check(await self._body(request))
        except _Invalid as exc:
            return _json(
                {"errors": [{"reason": exc.reason, "field": exc.field, "message": exc.message}]},
                400,
            )
        rec.source = "entity"
        self._add(rec)
        return _json({})

    async def _v2_batch(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if self.lean:
            return lean_batch(self, raw)
        if len(raw) > self.max_batch_bytes:
            return _json(
                {
                    "errors": [
                        {
                            "reason": "too_large",
                            "field": "batch",
                            "message": "request larger than 500kb",
                        }
                    ]
                },
                413,
            )
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return _json(
                {
                    "errors": [
                        {"reason": "invalid", "field": "", "message": "body is not valid JSON"}
                    ]
                },
                400,
            )
        if self.reject_batches_containing and self.reject_batches_containing in raw:
            self.counts["rejected_batches"] += 1
            return _json(
                {
                    "errors": [
                        {
                            "reason": "invalid",
                            "field": "batch",
                            "message": "malformed operation in batch",
                        }
                    ]
                },
                400,
            )
        batch = body.get("batch") if isinstance(body, Mapping) else None
        if not isinstance(batch, list) or not batch:
            return _json(
                {
                    "errors": [
                        {
                            "reason": "required",
                            "field": "batch",
                            "message": "batch must be a non-empty array",
                        }
                    ]
                },
                400,
            )
        errors = []
        self.counts["batches"] += 1
        for i, op in enumerate(batch):
            if len(orjson.dumps(op)) > MAX_OPERATION_BYTES:
                errors.append(
                    {
                        "batch_index": i,
                        "reason": "too_large",
                        "field": "",
                        "message": "operation larger than 32kb",
                    }
                )
                continue
            try:
                rec = self._v2_check(op)
            except _Invalid as exc:
                errors.append(
                    {
                        "batch_index": i,
                        "reason": exc.reason,
                        "field": exc.field,
                        "message": exc.message,
                    }
                )
                continue
            rec.source = "batch"
            self._add(rec)
        if errors:
            self.counts["rejected_operations"] += len(errors)
            return _json({"errors": errors}, 207)
        return _json({})


def _json(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, headers=headers, content_type="application/json"
    )


def _redirect(status: int, location: str) -> web.Response:
    return web.Response(status=status, headers={"Location": location})


def _abort(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()


# -- Track v1 extras: legacy push events and custom unsubscribe --------------------------
# Kept apart (one function, its own handlers) so the stand-in's route modules can move.

#: Paths Customer.io serves without authentication (on the Track host).
_NO_AUTH_PREFIX = "/unsubscribe/"
_PUSH_EVENTS = frozenset({"opened", "converted", "delivered"})


def register_track_extras(standin: StandIn, app: web.Application) -> None:
    """``POST /api/v1/push/events`` and ``POST /unsubscribe/{delivery_id}``."""

    async def push_event(request: web.Request) -> web.Response:
        body = await standin._body(request)
        if not isinstance(body, Mapping):
            raise _Invalid("body", "must be an object")
        for key in ("delivery_id", "device_id"):
            if not isinstance(body.get(key), str) or not body[key].strip():
                raise _Invalid(key, "is required")
        if body.get("event") not in _PUSH_EVENTS:
            raise _Invalid("event", "must be opened, converted or delivered")
        ts = body.get("timestamp")
        if ts is not None and (not isinstance(ts, int) or not 0 <= ts <= 99_999_999_999):
            raise _Invalid("timestamp", "must be Unix seconds")
        standin._add(
            RecordedOperation(
                "v1", "push", str(body["event"]), {"delivery_id": body["delivery_id"]}, body
            )
        )
        return _json({})

    async def unsubscribe(request: web.Request) -> web.Response:
        if request.content_type != "application/json":
            raise _Invalid("Content-Type", "must be application/json")
        body = await standin._body(request)
        if not isinstance(body, Mapping) or body.get("unsubscribe") is not True:
            raise _Invalid("unsubscribe", "must be true")
        delivery_id = request.match_info["delivery_id"]
        standin._add(
            RecordedOperation("v1", "delivery", "unsubscribe", {"delivery_id": delivery_id}, body)
        )
        return _json({})

    app.router.add_post("/api/v1/push/events", push_event)
    app.router.add_post("/unsubscribe/{delivery_id}", unsubscribe)
