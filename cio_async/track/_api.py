"""Track API calls, one request each: v1 (``client.v1``) and raw v2 (``client.v2``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .._encode import dumps, new_ulid, to_unix_seconds
from .._errors import ValidationError
from .._model import (
    DELIVERY_EVENTS,
    Object,
    Operation,
    PersonRef,
    RelationshipRef,
    _device,
    _identify_attributes,
    _relationships,
    _ts,
    as_person,
    quote_path,
)
from .._validate import (
    MAX_BATCH_BYTES,
    MAX_EVENT_NAME_BYTES,
    MAX_SEGMENT_IDS,
    check_event_data,
    check_id,
    check_text,
    encode_checked,
    event_name_rule,
)
from ..delivery import track_batch_errors
from ..http._transport import Transport

__all__ = ["AccountRegion", "BatchError", "BatchResult", "TrackV1", "TrackV2"]

IdType = Literal["id", "email", "cio_id"]


@dataclass(frozen=True, slots=True)
class AccountRegion:
    """The answer of ``GET /api/v1/accounts/region``."""

    region: str
    url: str
    environment_id: int | str | None


@dataclass(frozen=True, slots=True)
class BatchError:
    """One operation Customer.io rejected in a v2 batch (from a 207 response)."""

    batch_index: int
    reason: str
    field: str
    message: str


@dataclass(frozen=True, slots=True)
class BatchResult:
    """The outcome of a raw ``v2.batch`` call: which operations were rejected."""

    status: int
    errors: tuple[BatchError, ...]

    @property
    def ok(self) -> bool:
        return not self.errors


def _body(obj: Mapping[str, Any], field: str = "body") -> bytes:
    return encode_checked(field, obj)


class TrackV1:
    """Track API v1: one HTTP request per call, retried safely.

    Events (track, anonymous, page, screen) get a ULID ``id`` before the first attempt,
    so a retry can never record an event twice.
    """

    def __init__(
        self, transport: Transport, on_person_change: Callable[..., None] | None = None
    ) -> None:
        self._t = transport
        self._changed = on_person_change or (lambda *people: None)

    async def _call(
        self,
        method: str,
        path: str,
        op: str,
        body: bytes | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        resp = await self._t.request("track", method, path, body=body, params=params, op=op)
        return resp.json()

    async def identify(
        self,
        person: PersonRef,
        attributes: Mapping[str, Any] | None = None,
        *,
        update_only: bool = False,
        timestamp: object = None,
        subscription_preferences: Mapping[str, Any] | None = None,
        relationships: Iterable[RelationshipRef] | None = None,
        relationships_action: Literal["add_relationships", "delete_relationships"] = (
            "add_relationships"
        ),
    ) -> None:
        """Create or update a person (``PUT /api/v1/customers/{identifier}``).

        ``update_only`` sends ``_update: true`` (never create); ``timestamp`` becomes
        ``_timestamp`` (defaults to now, so updates apply in order).
        """
        p = as_person(person)
        self._changed(p)
        attrs = _identify_attributes(attributes, update_only, subscription_preferences) or {}
        attrs["_timestamp"] = _ts(timestamp, "timestamp")
        if relationships is not None:
            attrs["cio_relationships"] = {
                "action": relationships_action,
                "relationships": _relationships(relationships, Object, True),
            }
        await self._call(
            "PUT", f"/api/v1/customers/{p.v1_path}", "identify", _body(attrs, "attributes")
        )

    async def delete(self, person: PersonRef) -> None:
        """Delete a person."""
        p = as_person(person)
        self._changed(p)
        await self._call("DELETE", f"/api/v1/customers/{p.v1_path}", "delete")

    def _event_body(
        self,
        kind: str | None,
        name: str,
        name_field: str,
        data: Any,
        id: str | None,
        timestamp: object,
        max_name: int,
    ) -> dict[str, Any]:
        check_text(name_field, name, max_name)
        body: dict[str, Any] = {
            "name": name,
            "id": new_ulid() if id is None else check_id("id", id),
            "timestamp": _ts(timestamp, "timestamp"),
        }
        if kind is not None:
            body["type"] = kind
        if data:
            check_event_data("data", data)
            body["data"] = data
        return body

    async def _person_event(
        self,
        kind: str | None,
        op: str,
        person: PersonRef,
        name: str,
        data: Any,
        id: str | None,
        timestamp: object,
    ) -> str:
        p = as_person(person)
        name_field, limit = event_name_rule(kind)
        body = self._event_body(kind, name, name_field, data, id, timestamp, limit)
        await self._call("POST", f"/api/v1/customers/{p.v1_path}/events", op, dumps(body))
        return str(body["id"])

    async def track(
        self,
        person: PersonRef,
        name: str,
        data: Mapping[str, Any] | None = None,
        *,
        id: str | None = None,
        timestamp: object = None,
    ) -> str:
        """Record an event for a person. Returns the event id (a ULID unless given)."""
        return await self._person_event(None, "track", person, name, data, id, timestamp)

    async def page(
        self,
        person: PersonRef,
        url: str,
        data: Mapping[str, Any] | None = None,
        *,
        id: str | None = None,
        timestamp: object = None,
    ) -> str:
        """Record a page view (``url`` is the page URL or path). Returns the event id."""
        return await self._person_event("page", "page", person, url, data, id, timestamp)

    async def screen(
        self,
        person: PersonRef,
        name: str,
        data: Mapping[str, Any] | None = None,
        *,
        id: str | None = None,
        timestamp: object = None,
    ) -> str:
        """Record a mobile screen view. Returns the event id."""
        return await self._person_event("screen", "screen", person, name, data, id, timestamp)

    async def track_anonymous(
        self,
        name: str,
        data: Mapping[str, Any] | None = None,
        *,
        anonymous_id: str | None = None,
        id: str | None = None,
        timestamp: object = None,
    ) -> str:
        """Record an event not (yet) tied to a person (``POST /api/v1/events``).

        With ``anonymous_id`` the event attaches to the person who later carries that
        id. Without it, it is an *invite* event: ``data["recipient"]`` must name who
        receives the triggered message. Returns the event id.
        """
        body = self._event_body(None, name, "name", data, id, timestamp, MAX_EVENT_NAME_BYTES)
        if anonymous_id is not None:
            body["anonymous_id"] = check_id("anonymous_id", anonymous_id)
        elif not (data and isinstance(data.get("recipient"), str) and data["recipient"]):
            raise ValidationError(
                "anonymous_id", "give an anonymous_id, or data['recipient'] for an invite event"
            )
        await self._call("POST", "/api/v1/events", "track_anonymous", dumps(body))
        return str(body["id"])

    async def add_device(
        self,
        person: PersonRef,
        token: str,
        platform: str,
        *,
        last_used: object = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> None:
        """Add or update a push device (``platform`` is ``ios`` or ``android``)."""
        p = as_person(person)
        device = _device(token, platform, last_used, attributes, key="id")
        await self._call(
            "PUT", f"/api/v1/customers/{p.v1_path}/devices", "add_device", dumps({"device": device})
        )

    async def delete_device(self, person: PersonRef, token: str) -> None:
        """Remove a push device."""
        p = as_person(person)
        check_text("token", token, 4096)
        await self._call(
            "DELETE",
            f"/api/v1/customers/{p.v1_path}/devices/{quote_path(token)}",
            "delete_device",
        )

    async def suppress(self, person: PersonRef) -> None:
        """Delete a person and block their identifiers from being re-added."""
        p = as_person(person)
        self._changed(p)
        await self._call("POST", f"/api/v1/customers/{p.v1_path}/suppress", "suppress")

    async def unsuppress(self, person: PersonRef) -> None:
        """Allow a suppressed person's identifiers to be used again."""
        p = as_person(person)
        self._changed(p)
        await self._call("POST", f"/api/v1/customers/{p.v1_path}/unsuppress", "unsuppress")

    async def merge(self, primary: PersonRef, secondary: PersonRef) -> None:
        """Merge ``secondary`` into ``primary`` (irreversible; the primary must exist)."""
        a, b = as_person(primary, "primary"), as_person(secondary, "secondary")
        for field, p in (("primary", a), ("secondary", b)):
            if p.kind == "phone":
                raise ValidationError(field, "merge takes id, email or cio_id")
        if a == b:
            raise ValidationError("secondary", "cannot merge a person into themselves")
        self._changed(a, b)
        body = dumps({"primary": a.identifiers, "secondary": b.identifiers})
        await self._call("POST", "/api/v1/merge_customers", "merge", body)

    async def _segment(
        self, action: str, segment_id: int, ids: Iterable[str | int], id_type: IdType
    ) -> int:
        if isinstance(segment_id, bool) or not isinstance(segment_id, int) or segment_id <= 0:
            raise ValidationError("segment_id", "must be a positive integer")
        if id_type not in ("id", "email", "cio_id"):
            raise ValidationError("id_type", "must be 'id', 'email' or 'cio_id'")
        if isinstance(ids, (str, bytes, Mapping)) or not isinstance(ids, Iterable):
            raise ValidationError("ids", "must be a list of identifiers")
        clean = [check_id(f"ids[{i}]", v) for i, v in enumerate(ids)]
        if not clean:
            raise ValidationError("ids", "must not be empty")
        path = f"/api/v1/segments/{segment_id}/{action}"
        for start in range(0, len(clean), MAX_SEGMENT_IDS):
            chunk = clean[start : start + MAX_SEGMENT_IDS]
            await self._call("POST", path, action, dumps({"ids": chunk}), {"id_type": id_type})
        return len(clean)

    async def add_to_segment(
        self, segment_id: int, ids: Iterable[str | int], *, id_type: IdType = "id"
    ) -> int:
        """Add people to a manual segment, 1000 per request. Returns how many were sent."""
        return await self._segment("add_customers", segment_id, ids, id_type)

    async def remove_from_segment(
        self, segment_id: int, ids: Iterable[str | int], *, id_type: IdType = "id"
    ) -> int:
        """Remove people from a manual segment, 1000 per request."""
        return await self._segment("remove_customers", segment_id, ids, id_type)

    async def submit_form(self, form_id: str, data: Mapping[str, str]) -> None:
        """Submit a form (``POST /api/v1/forms/{form_id}/submit``).

        ``data`` holds string fields and exactly one identifier (``email`` or ``id``).
        """
        check_text("form_id", form_id, 1000)
        if not isinstance(data, Mapping):
            raise ValidationError("data", "must be a mapping")
        idents = [k for k in ("email", "id") if data.get(k)]
        if len(idents) != 1:
            raise ValidationError("data", "must hold exactly one identifier: email or id")
        for k, v in data.items():
            if not isinstance(v, str):
                raise ValidationError(f"data.{k}", "form values must be strings")
        await self._call(
            "POST",
            f"/api/v1/forms/{quote_path(form_id)}/submit",
            "submit_form",
            b'{"data":' + encode_checked("data", data) + b"}",
        )

    async def report_metric(
        self,
        delivery_id: str,
        metric: str,
        *,
        timestamp: object = None,
        recipient: str | None = None,
        reason: str | None = None,
        href: str | None = None,
        action_name: str | None = None,
        action_value: str | None = None,
    ) -> None:
        """Report a delivery metric (``POST /api/v1/metrics``), e.g. ``opened``."""
        check_text("delivery_id", delivery_id, 1024)
        # The valid metric names depend on the channel (email, push, in-app, SMS...);
        # Customer.io validates them, we only check the shape.
        check_text("metric", metric, 100)
        body: dict[str, Any] = {"delivery_id": delivery_id, "metric": metric}
        if timestamp is not None:
            body["timestamp"] = to_unix_seconds(timestamp, "timestamp")
        for k, v in (
            ("recipient", recipient),
            ("reason", reason),
            ("href", href),
            ("action_name", action_name),
            ("action_value", action_value),
        ):
            if v is not None:
                body[k] = check_text(k, v, 2048)
        await self._call("POST", "/api/v1/metrics", "report_metric", dumps(body))

    async def report_push_event(
        self,
        delivery_id: str,
        event: str,
        device_id: str,
        *,
        timestamp: object = None,
    ) -> None:
        """Report a push notification's ``opened``, ``converted`` or ``delivered``
        (``POST /api/v1/push/events``, the legacy form; ``report_metric`` is the
        current one). ``device_id`` is the device token; ``timestamp`` defaults to now."""
        check_text("delivery_id", delivery_id, 1024)
        if not isinstance(event, str) or event not in DELIVERY_EVENTS:
            raise ValidationError("event", f"must be one of {sorted(DELIVERY_EVENTS)}")
        check_text("device_id", device_id, 4096)
        body = {
            "delivery_id": delivery_id,
            "event": event,
            "device_id": device_id,
            "timestamp": _ts(timestamp, "timestamp"),
        }
        await self._call("POST", "/api/v1/push/events", "report_push_event", dumps(body))

    async def unsubscribe(self, delivery_id: str) -> None:
        """Unsubscribe the person a message delivery went to
        (``POST /unsubscribe/{delivery_id}`` with ``{"unsubscribe": true}``), for a
        custom unsubscribe page. Customer.io attributes the unsubscribe to that
        delivery."""
        check_text("delivery_id", delivery_id, 1024)
        await self._call(
            "POST",
            f"/unsubscribe/{quote_path(delivery_id)}",
            "unsubscribe",
            b'{"unsubscribe":true}',
        )

    async def get_region(self) -> AccountRegion:
        """Ask which region the credentials belong to (``GET /api/v1/accounts/region``)."""
        data = await self._call("GET", "/api/v1/accounts/region", "get_region")
        if not isinstance(data, Mapping) or "region" not in data:
            raise ValidationError("response", "unexpected region lookup answer")
        return AccountRegion(
            region=str(data["region"]),
            url=str(data.get("url", "")),
            environment_id=data.get("environment_id"),
        )


class TrackV2:
    """Track API v2: single operations (``entity``) and raw batches (``batch``)."""

    def __init__(
        self, transport: Transport, on_operation: Callable[[Operation], None] | None = None
    ) -> None:
        self._t = transport
        self._seen = on_operation or (lambda op: None)

    async def entity(self, operation: Operation | Mapping[str, Any]) -> None:
        """Send one operation to ``POST /api/v2/entity``."""
        op = operation if isinstance(operation, Operation) else Operation.from_dict(operation)
        self._seen(op)
        await self._t.request(
            "track", "POST", "/api/v2/entity", body=op.payload, op=f"entity.{op.action}"
        )

    async def batch(self, operations: Sequence[Operation | Mapping[str, Any]]) -> BatchResult:
        """Send operations in one ``POST /api/v2/batch`` (at most 500,000 bytes).

        Returns the per-operation rejections of a 207; raises for a whole-batch
        failure. The batching pipeline (``client.track`` etc.) does the splitting and
        retrying for you; this is the raw call.
        """
        ops = [o if isinstance(o, Operation) else Operation.from_dict(o) for o in operations]
        if not ops:
            raise ValidationError("operations", "must not be empty")
        for op in ops:
            self._seen(op)
        body = b'{"batch":[' + b",".join(o.payload for o in ops) + b"]}"
        if len(body) > MAX_BATCH_BYTES:
            raise ValidationError(
                "operations", f"batch is {len(body)} bytes; the limit is {MAX_BATCH_BYTES}"
            )
        resp = await self._t.request("track", "POST", "/api/v2/batch", body=body, op="batch")
        return BatchResult(resp.status, parse_batch_errors(resp.json()))


def parse_batch_errors(data: Any) -> tuple[BatchError, ...]:
    """The ``errors`` of a 207 body as ``BatchError`` records."""
    return tuple(BatchError(*e) for e in track_batch_errors(data))
