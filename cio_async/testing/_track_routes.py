"""The Track API half of the stand-in: v1 calls, v2 entities and v2 batches.

Each route checks what Customer.io documents (identifiers, attribute and event
limits, operation types and actions), answers as Customer.io does (v1: 400 with
``{meta: {errors}}``; v2: 400/413 for the request, 207 with ``{errors: [{batch_index,
...}]}`` for operations of a batch) and hands accepted operations to
``StandIn.accept``, which ignores repeated event ids and keeps the stand-in's state.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from ._records import RecordedOperation

if TYPE_CHECKING:
    from ._standin import StandIn

__all__ = ["NO_AUTH_PREFIX", "register_track_routes"]

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


def _b(s: str) -> int:
    return len(s.encode()) if not s.isascii() else len(s)


class _Invalid(Exception):
    def __init__(self, field: str, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.reason = reason


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


class _TrackRoutes:
    """The Track API handlers over one stand-in's state."""

    def __init__(self, standin: StandIn) -> None:
        self.standin = standin

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

    async def v1_identify(self, request: web.Request) -> web.Response:
        ids = self._v1_identifier(request)
        body = await self._body(request)
        self._check_attributes(body)
        self.standin.accept(RecordedOperation("v1", "person", "identify", ids, body))
        return _json({})

    async def v1_delete(self, request: web.Request) -> web.Response:
        ids = self._v1_identifier(request)
        self.standin.accept(RecordedOperation("v1", "person", "delete", ids, None))
        return _json({})

    async def v1_event(self, request: web.Request) -> web.Response:
        ids = self._v1_identifier(request)
        body = await self._body(request)
        kind = body.get("type", "event") if isinstance(body, Mapping) else "event"
        self._check_event(body, 2048 if kind == "page" else MAX_EVENT_NAME_BYTES)
        self.standin.accept(
            RecordedOperation("v1", "person", kind, ids, body, body.get("id"), body.get("name"))
        )
        return _json({})

    async def v1_anonymous(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        self._check_event(body)
        anon = body.get("anonymous_id")
        if anon is None and not (body.get("data") or {}).get("recipient"):
            raise _Invalid("anonymous_id", "is required unless data.recipient is set")
        ids = {"anonymous_id": anon} if anon is not None else {}
        self.standin.accept(
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

    async def v1_add_device(self, request: web.Request) -> web.Response:
        ids = self._v1_identifier(request)
        body = await self._body(request)
        device = body.get("device") if isinstance(body, Mapping) else None
        if not isinstance(device, Mapping) or not device.get("id"):
            raise _Invalid("device.id", "is required")
        if device.get("platform") not in ("ios", "android"):
            raise _Invalid("device.platform", "must be ios or android")
        self.standin.accept(RecordedOperation("v1", "person", "add_device", ids, body))
        return _json({})

    async def v1_delete_device(self, request: web.Request) -> web.Response:
        ids = self._v1_identifier(request)
        token = request.match_info["device_id"]
        self.standin.accept(
            RecordedOperation("v1", "person", "delete_device", ids, {"device_id": token})
        )
        return _json({})

    async def v1_suppress(self, request: web.Request) -> web.Response:
        ids = self._v1_identifier(request)
        self.standin.accept(RecordedOperation("v1", "person", "suppress", ids, None))
        return _json({})

    async def v1_unsuppress(self, request: web.Request) -> web.Response:
        ids = self._v1_identifier(request)
        self.standin.accept(RecordedOperation("v1", "person", "unsuppress", ids, None))
        return _json({})

    async def v1_merge(self, request: web.Request) -> web.Response:
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
        self.standin.accept(RecordedOperation("v1", "person", "merge", dict(body["primary"]), body))
        return _json({})

    async def v1_segment(self, request: web.Request) -> web.Response:
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
        members = self.standin.segments.setdefault(seg, set())
        for i in ids:
            (members.add if action == "add_customers" else members.discard)(f"{id_type}:{i}")
        self.standin.accept(
            RecordedOperation(
                "v1", "segment", action, {"segment_id": seg}, {"ids": ids, "id_type": id_type}
            )
        )
        return _json({})

    async def v1_form(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        data = body.get("data") if isinstance(body, Mapping) else None
        if not isinstance(data, Mapping):
            raise _Invalid("data", "is required")
        if sum(1 for k in ("email", "id") if data.get(k)) != 1:
            raise _Invalid("data", "needs exactly one identifier")
        if any(not isinstance(v, str) for v in data.values()):
            raise _Invalid("data", "values must be strings")
        self.standin.accept(
            RecordedOperation(
                "v1", "form", "submit", {"form_id": request.match_info["form_id"]}, body
            )
        )
        return web.Response(status=204)

    async def v1_metric(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if not isinstance(body, Mapping) or not body.get("delivery_id") or not body.get("metric"):
            raise _Invalid("body", "delivery_id and metric are required")
        self.standin.accept(
            RecordedOperation(
                "v1", "metric", str(body["metric"]), {"delivery_id": body["delivery_id"]}, body
            )
        )
        return _json({})

    async def v1_region(self, request: web.Request) -> web.Response:
        return _json(
            {"url": self.standin.url, "region": self.standin.account_region, "environment_id": 1}
        )

    # -- Track v2 ----------------------------------------------------------------------

    def v2_check(self, op: Any) -> RecordedOperation:
        if not isinstance(op, Mapping):
            raise _Invalid("", "operation must be an object")
        if self.standin.reject_operation is not None:
            verdict = self.standin.reject_operation(op)
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

    async def v2_entity(self, request: web.Request) -> web.Response:
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
            rec = self.v2_check(await self._body(request))
        except _Invalid as exc:
            return _json(
                {"errors": [{"reason": exc.reason, "field": exc.field, "message": exc.message}]},
                400,
            )
        rec.source = "entity"
        self.standin.accept(rec)
        return _json({})

    async def v2_batch(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if len(raw) > self.standin.max_batch_bytes:
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
        if self.standin.reject_batches_containing and self.standin.reject_batches_containing in raw:
            self.standin.counts["rejected_batches"] += 1
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
        self.standin.counts["batches"] += 1
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
                rec = self.v2_check(op)
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
            self.standin.accept(rec)
        if errors:
            self.standin.counts["rejected_operations"] += len(errors)
            return _json({"errors": errors}, 207)
        return _json({})


def register_track_routes(standin: StandIn, app: web.Application) -> None:
    """Add the Track API routes (v1 and v2) to the stand-in's ``aiohttp.web`` app."""
    routes = _TrackRoutes(standin)
    Handler = Callable[[web.Request], Awaitable[web.Response]]

    def checked(handler: Handler) -> Handler:
        async def handle(request: web.Request) -> web.Response:
            try:
                return await handler(request)
            except _Invalid as exc:
                return _json({"meta": {"errors": [f"{exc.field}: {exc.message}"]}}, 400)

        return handle

    r = app.router
    r.add_put("/api/v1/customers/{identifier:[^/]+}", checked(routes.v1_identify))
    r.add_delete("/api/v1/customers/{identifier:[^/]+}", checked(routes.v1_delete))
    r.add_post("/api/v1/customers/{identifier:[^/]+}/events", checked(routes.v1_event))
    r.add_post("/api/v1/events", checked(routes.v1_anonymous))
    r.add_put("/api/v1/customers/{identifier:[^/]+}/devices", checked(routes.v1_add_device))
    r.add_delete(
        "/api/v1/customers/{identifier:[^/]+}/devices/{device_id:[^/]+}",
        checked(routes.v1_delete_device),
    )
    r.add_post("/api/v1/customers/{identifier:[^/]+}/suppress", checked(routes.v1_suppress))
    r.add_post("/api/v1/customers/{identifier:[^/]+}/unsuppress", checked(routes.v1_unsuppress))
    r.add_post("/api/v1/merge_customers", checked(routes.v1_merge))
    r.add_post("/api/v1/segments/{segment_id:[^/]+}/add_customers", checked(routes.v1_segment))
    r.add_post("/api/v1/segments/{segment_id:[^/]+}/remove_customers", checked(routes.v1_segment))
    r.add_post("/api/v1/forms/{form_id:[^/]+}/submit", checked(routes.v1_form))
    r.add_post("/api/v1/metrics", checked(routes.v1_metric))
    r.add_get("/api/v1/accounts/region", checked(routes.v1_region))
    r.add_post("/api/v2/entity", checked(routes.v2_entity))
    r.add_post("/api/v2/batch", checked(routes.v2_batch))
    _register_v1_extras(standin, app, checked)


# -- Track v1 extras: legacy push events and custom unsubscribe --------------------------

#: Paths Customer.io serves without authentication (on the Track host).
NO_AUTH_PREFIX = "/unsubscribe/"
_PUSH_EVENTS = frozenset({"opened", "converted", "delivered"})


def _register_v1_extras(
    standin: StandIn,
    app: web.Application,
    checked: Callable[
        [Callable[[web.Request], Awaitable[web.Response]]],
        Callable[[web.Request], Awaitable[web.Response]],
    ],
) -> None:
    """``POST /api/v1/push/events`` and ``POST /unsubscribe/{delivery_id}`` (no auth)."""

    async def push_event(request: web.Request) -> web.Response:
        body = await _TrackRoutes._body(request)
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
        standin.accept(
            RecordedOperation(
                "v1", "push", str(body["event"]), {"delivery_id": body["delivery_id"]}, body
            )
        )
        return _json({})

    async def unsubscribe(request: web.Request) -> web.Response:
        if request.content_type != "application/json":
            raise _Invalid("Content-Type", "must be application/json")
        body = await _TrackRoutes._body(request)
        if not isinstance(body, Mapping) or body.get("unsubscribe") is not True:
            raise _Invalid("unsubscribe", "must be true")
        delivery_id = request.match_info["delivery_id"]
        standin.accept(
            RecordedOperation("v1", "delivery", "unsubscribe", {"delivery_id": delivery_id}, body)
        )
        return _json({})

    app.router.add_post("/api/v1/push/events", checked(push_event))
    app.router.add_post(NO_AUTH_PREFIX + "{delivery_id}", checked(unsubscribe))
