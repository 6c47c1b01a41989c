"""The App API half of the stand-in: transactional sends, broadcast triggers and
people lookups, answered like Customer.io and backed by the stand-in's state.

Lookups read ``StandIn.people`` (filled by Track identifies) and ``StandIn.segments``
(manual segment calls), so a test can identify someone and look them up again. Sends
land in ``StandIn.sends`` and triggers in ``StandIn.triggers``. Error bodies follow
the App API: ``{meta: {error}}`` for 400/403/413 on sends, ``{errors: [{detail,
source: {pointer}, status}]}`` for broadcast 422s. The shared middleware checks
``Authorization: Bearer <app_api_key>`` on every ``/v1/...`` path first.
"""

from __future__ import annotations

import base64
import hashlib
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

if TYPE_CHECKING:
    from ._standin import StandIn

__all__ = ["RecordedSend", "RecordedTrigger", "register_app_routes"]

CHANNELS = frozenset({"email", "push", "sms", "whatsapp", "in_app", "inbox_message"})
MAX_RECIPIENTS = 15
MAX_ATTACHMENT_BYTES = 2_000_000
MAX_SEND_AHEAD = 90 * 86_400
MAX_BROADCAST_RECIPIENTS = 10_000
MAX_BATCH_IDS = 100
MAX_SEARCH_LIMIT = 1000
#: Attachment types Customer.io refuses with 403 (a representative subset).
FORBIDDEN_EXTENSIONS = frozenset({"exe", "bat", "cmd", "com", "js", "msi", "scr", "vbs"})
_RECIPIENT_FORMS = ("recipients", "ids", "emails", "per_user_data", "data_file_url")
_FLAGS = {
    "ids": {"id_ignore_missing"},
    "emails": {"email_ignore_missing", "email_add_duplicates"},
    "per_user_data": {"id_ignore_missing", "email_ignore_missing", "email_add_duplicates"},
    "data_file_url": {"id_ignore_missing", "email_ignore_missing", "email_add_duplicates"},
    "": set(),
    "recipients": set(),
}


@dataclass
class RecordedSend:
    """One transactional message the stand-in accepted."""

    channel: str
    body: dict[str, Any]
    delivery_id: str
    queued_at: int
    send_at: int | None = None

    @property
    def identifiers(self) -> dict[str, str]:
        ids = self.body.get("identifiers")
        return dict(ids) if isinstance(ids, Mapping) else {}


@dataclass
class RecordedTrigger:
    """One API-triggered broadcast the stand-in accepted."""

    broadcast_id: int
    trigger_id: int
    body: dict[str, Any]
    received_at: float = field(default_factory=time.monotonic)


def _json(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, headers=headers, content_type="application/json"
    )


def _meta_error(status: int, message: str) -> web.Response:
    return _json({"meta": {"error": message}}, status)


def _errors(status: int, detail: str, pointer: str | None = None) -> web.Response:
    err: dict[str, Any] = {"detail": detail, "status": str(status)}
    if pointer is not None:
        err["source"] = {"pointer": pointer}
    return _json({"errors": [err]}, status)


class _Refused(Exception):
    def __init__(self, response: web.Response) -> None:
        self.response = response


def _count_addresses(value: Any) -> int:
    if not isinstance(value, str):
        return 0
    count, quoted, seen = 0, False, False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            count += seen
            seen = False
        elif not ch.isspace():
            seen = True
    return count + seen


class _AppRoutes:
    def __init__(self, standin: StandIn) -> None:
        self.s = standin
        self.trigger_seq = 0
        self.last_trigger: float | None = None

    # -- people ------------------------------------------------------------------------

    @staticmethod
    def cio_id(key: str, attrs: Mapping[str, Any]) -> str:
        if key.startswith("cio_id:"):
            return key[7:]
        # Stable per person, like Customer.io's: derived from the key it was made with.
        return hashlib.sha1(key.encode()).hexdigest()[:12]

    def identifiers(self, key: str, attrs: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "id": attrs.get("id"),
            "email": attrs.get("email"),
            "cio_id": self.cio_id(key, attrs),
        }

    def find(self, kind: str, value: str) -> tuple[str, dict[str, Any]] | None:
        people = self.s.people
        key = f"{kind}:{value}"
        if key in people:
            return key, people[key]
        for k, attrs in people.items():
            ids = self.identifiers(k, attrs)
            have = ids.get(kind)
            if have is None:
                continue
            if str(have) == value or (kind == "email" and str(have).lower() == value.lower()):
                return k, attrs
        return None

    def customer(self, key: str, attrs: Mapping[str, Any]) -> dict[str, Any]:
        ids = self.identifiers(key, attrs)
        return {
            "id": ids["id"],
            "identifiers": ids,
            "attributes": {**attrs, "cio_id": ids["cio_id"]},
            "timestamps": {},
            "unsubscribed": bool(attrs.get("unsubscribed", False)),
            "devices": [],
        }

    def segments_of(self, key: str, attrs: Mapping[str, Any]) -> list[int]:
        ids = self.identifiers(key, attrs)
        mine = {f"{k}:{v}" for k, v in ids.items() if v is not None}
        return sorted(sid for sid, members in self.s.segments.items() if members & mine)

    @staticmethod
    def id_type(request: web.Request) -> str:
        kind = request.query.get("id_type", "id")
        if kind not in ("id", "email", "cio_id"):
            raise _Refused(_errors(400, "id_type must be id, email or cio_id"))
        return kind

    async def attributes(self, request: web.Request) -> web.Response:
        kind = self.id_type(request)
        found = self.find(kind, request.match_info["identifier"])
        if found is None:
            return _errors(404, "customer not found")
        return _json({"customer": self.customer(*found)})

    async def segments(self, request: web.Request) -> web.Response:
        kind = self.id_type(request)
        found = self.find(kind, request.match_info["identifier"])
        if found is None:
            return _errors(404, "customer not found")
        return _json(
            {
                "segments": [
                    {"id": sid, "name": f"Segment {sid}", "type": "manual"}
                    for sid in self.segments_of(*found)
                ]
            }
        )

    async def by_email(self, request: web.Request) -> web.Response:
        email = request.query.get("email", "")
        if "@" not in email:
            return _errors(400, "email is required")
        results = [
            self.identifiers(k, a)
            for k, a in self.s.people.items()
            if str(self.identifiers(k, a).get("email") or "").lower() == email.lower()
        ]
        return _json({"results": results})

    def matches(self, flt: Any, key: str, attrs: Mapping[str, Any]) -> bool:
        if not isinstance(flt, Mapping) or len(flt) != 1:
            raise _Refused(
                _errors(400, "each filter needs exactly one of and/or/not/segment/attribute")
            )
        ((op, arg),) = flt.items()
        if op in ("and", "or"):
            if not isinstance(arg, list) or not arg:
                raise _Refused(_errors(400, f"{op} needs a non-empty list"))
            results = (self.matches(f, key, attrs) for f in arg)
            return all(results) if op == "and" else any(results)
        if op == "not":
            return not self.matches(arg, key, attrs)
        if op == "segment":
            sid = arg.get("id") if isinstance(arg, Mapping) else None
            return sid in self.segments_of(key, attrs)
        if op == "attribute" and isinstance(arg, Mapping):
            fld, oper, want = arg.get("field"), arg.get("operator"), arg.get("value")
            have = attrs.get(fld) if isinstance(fld, str) else None
            if oper == "eq":
                return have is not None and str(have) == str(want)
            if oper == "neq":
                return have is None or str(have) != str(want)
            if oper == "exists":
                return have is not None
            if oper == "not_exists":
                return have is None
            if oper == "contains":
                return have is not None and str(want) in str(have)
            raise _Refused(_errors(400, f"unknown operator {oper!r}"))
        raise _Refused(_errors(400, f"unknown filter {op!r}"))

    async def search(self, request: web.Request) -> web.Response:
        body = await self.body(request)
        flt = body.get("filter")
        try:
            limit = int(request.query.get("limit", "50"))
            start = int(request.query.get("start") or 0)
        except ValueError:
            return _errors(400, "limit and start must be integers")
        if not 1 <= limit <= MAX_SEARCH_LIMIT:
            return _errors(400, f"limit must be between 1 and {MAX_SEARCH_LIMIT}")
        if not isinstance(flt, Mapping) or not flt:
            return _errors(400, "filter is required")
        matched = [(k, a) for k, a in sorted(self.s.people.items()) if self.matches(flt, k, a)]
        page = matched[start : start + limit]
        end = start + len(page)
        identifiers = [self.identifiers(k, a) for k, a in page]
        return _json(
            {
                "identifiers": identifiers,
                "ids": [i["id"] for i in identifiers if i["id"] is not None],
                "next": str(end) if end < len(matched) else "",
            }
        )

    async def batch_attributes(self, request: web.Request) -> web.Response:
        kind = self.id_type(request)
        body = await self.body(request)
        ids = body.get("ids")
        if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_BATCH_IDS:
            return _errors(400, f"ids must hold 1 to {MAX_BATCH_IDS} identifiers")
        customers = []
        for value in ids:
            found = self.find(kind, str(value))
            if found is not None:
                customers.append(self.customer(*found))
        return _json({"customers": customers})

    # -- transactional -----------------------------------------------------------------

    @staticmethod
    async def body(request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        try:
            data = orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError:
            raise _Refused(_meta_error(400, "the request body is not valid JSON")) from None
        if not isinstance(data, dict):
            raise _Refused(_meta_error(400, "the request body must be a JSON object"))
        return data

    async def send(self, request: web.Request) -> web.Response:
        channel = request.match_info["channel"]
        if channel not in CHANNELS:
            return _errors(404, f"no such endpoint: /v1/send/{channel}")
        body = await self.body(request)
        ids = body.get("identifiers")
        if (
            not isinstance(ids, Mapping)
            or len(ids) != 1
            or next(iter(ids)) not in ("id", "email", "cio_id")
            or not ids[next(iter(ids))]
        ):
            return _meta_error(400, "identifiers must hold exactly one of id, email or cio_id")
        if channel == "email":
            if not body.get("to"):
                return _meta_error(400, "to is required")
            total = sum(_count_addresses(body.get(k)) for k in ("to", "cc", "bcc"))
            if total > MAX_RECIPIENTS:
                return _meta_error(400, f"too many recipients ({total}); the limit is 15")
            attachments = body.get("attachments") or {}
            if not isinstance(attachments, Mapping):
                return _meta_error(400, "attachments must be an object")
            for name in attachments:
                if str(name).rpartition(".")[2].lower() in FORBIDDEN_EXTENSIONS:
                    return _meta_error(403, f"attachment type not allowed: {name}")
            size = sum(len(str(v)) for v in attachments.values())
            if size >= MAX_ATTACHMENT_BYTES:
                return _meta_error(413, "attachments must total less than 2MB")
        now = int(time.time())
        send_at = body.get("send_at")
        if send_at is not None:
            if not isinstance(send_at, int):
                return _meta_error(400, "send_at must be a Unix timestamp")
            if send_at > now + MAX_SEND_AHEAD:
                return _meta_error(400, "send_at must be within 90 days")
        delivery_id = base64.b64encode(os.urandom(18)).decode()
        scheduled = send_at if isinstance(send_at, int) and send_at > now else None
        self.s.sends.append(RecordedSend(channel, body, delivery_id, now, scheduled))
        self.s.counts[f"send.{channel}"] += 1
        answer: dict[str, Any] = {"delivery_id": delivery_id, "queued_at": now}
        if scheduled is not None:
            answer["send_at"] = scheduled
        return _json(answer)

    # -- broadcasts --------------------------------------------------------------------

    async def trigger(self, request: web.Request) -> web.Response:
        raw_id = request.match_info["broadcast_id"]
        if not raw_id.isdigit() or int(raw_id) < 1:
            return _errors(404, "broadcast not found")
        interval = self.s.broadcast_interval
        now = time.monotonic()
        if interval is not None and self.last_trigger is not None:
            wait = self.last_trigger + interval - now
            if wait > 0:
                # Customer.io sends whole seconds; fractions keep fast tests fast.
                self.s.counts["rate_limited"] += 1
                return _json(
                    {"errors": [{"detail": "rate limited to 1 request per 10s", "status": "429"}]},
                    429,
                    {"Retry-After": f"{math.ceil(wait * 1000) / 1000:g}"},
                )
        body = await self.body(request)
        refusal = self.check_trigger(body)
        if refusal is not None:
            return refusal
        self.last_trigger = now
        self.trigger_seq += 1
        self.s.triggers.append(RecordedTrigger(int(raw_id), self.trigger_seq, body))
        self.s.counts["broadcast.trigger"] += 1
        return _json({"id": self.trigger_seq})

    def check_trigger(self, body: dict[str, Any]) -> web.Response | None:
        forms = [k for k in _RECIPIENT_FORMS if k in body]
        if len(forms) > 1:
            return _errors(422, "only one recipient type is allowed", f"/{forms[1]}")
        form = forms[0] if forms else ""
        allowed = {"data", form, *_FLAGS[form]}
        for k in body:
            if k not in allowed:
                return _errors(422, f"{k} is not allowed here", f"/{k}")
        if "data" in body and not isinstance(body["data"], Mapping):
            return _errors(422, "data must be an object", "/data")
        if form == "recipients" and (
            not isinstance(body["recipients"], Mapping) or not body["recipients"]
        ):
            return _errors(422, "recipients filter must not be empty", "/recipients")
        if form in ("ids", "emails", "per_user_data"):
            items = body[form]
            if not isinstance(items, list) or not items:
                return _errors(422, f"{form} must be a non-empty array", f"/{form}")
            if len(items) > MAX_BROADCAST_RECIPIENTS:
                return _errors(422, f"{form} holds more than 10000 items", f"/{form}")
        if form == "ids" and not body.get("id_ignore_missing"):
            for i, v in enumerate(body["ids"]):
                if self.find("id", str(v)) is None:
                    return _errors(422, f"id {v} not found", f"/ids/{i}")
        if form == "emails" and not body.get("email_ignore_missing"):
            for i, v in enumerate(body["emails"]):
                if self.find("email", str(v)) is None:
                    return _errors(422, f"email {v} not found", f"/emails/{i}")
        return None


def register_app_routes(standin: StandIn, app: web.Application) -> None:
    """Add the App API routes to the stand-in's ``aiohttp.web`` app."""
    routes = _AppRoutes(standin)

    def guarded(handler: Any) -> Any:
        async def handle(request: web.Request) -> web.StreamResponse:
            try:
                resp: web.StreamResponse = await handler(request)
            except _Refused as exc:
                return exc.response
            return resp

        return handle

    r = app.router
    r.add_post("/v1/send/{channel}", guarded(routes.send))
    r.add_post("/v1/campaigns/{broadcast_id}/triggers", guarded(routes.trigger))
    r.add_post("/v1/customers/attributes", guarded(routes.batch_attributes))
    r.add_get("/v1/customers/{identifier}/attributes", guarded(routes.attributes))
    r.add_get("/v1/customers/{identifier}/segments", guarded(routes.segments))
    r.add_get("/v1/customers", guarded(routes.by_email))
    r.add_post("/v1/customers", guarded(routes.search))
