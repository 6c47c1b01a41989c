"""The Data Pipelines (CDP) batch endpoint for the stand-in: ``POST /v1/batch``.

Customer.io's Pipelines API takes ``{"batch": [{"type": "track", ...}, ...]}`` with
HTTP Basic auth ``writekey:`` (an empty password; keys shaped ``pk_us_...`` may also
come as a Bearer token, as ``customerio-cdp-analytics`` 1.1 sends them). Without
``X-Strict-Mode: 1`` it answers 200 even to invalid input and drops what it could not
use; in strict mode it answers 400 (or 401) with ``{"code", "message"}``.

Accepted items are recorded like Track operations (``source="cdp"``, ``type="person"``,
``action`` ``identify``/``event``/``page``/``screen``/``group``/``alias``), so
``StandIn.events()`` and ``StandIn.counts`` see them; a repeated ``messageId`` is
ignored as a repeated event id is.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

if TYPE_CHECKING:
    from ._standin import StandIn

__all__ = ["CDP_BATCH_PATH", "DEFAULT_WRITE_KEY", "register_cdp"]

CDP_BATCH_PATH = "/v1/batch"
DEFAULT_WRITE_KEY = "stand-in-write-key"
MAX_CDP_BATCH_BYTES = 500_000
MAX_CDP_CALL_BYTES = 32_000

# Pipelines call types and the Track-style action they are recorded as.
_ACTIONS = {
    "identify": "identify",
    "track": "event",
    "page": "page",
    "screen": "screen",
    "group": "group",
    "alias": "alias",
}


class _Bad(Exception):
    def __init__(self, message: str, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def cdp_auth_values(write_key: str) -> frozenset[str]:
    """The Authorization headers Pipelines accepts for ``write_key``."""
    basic = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    return frozenset({basic, f"Bearer {write_key}"})


def register_cdp(standin: StandIn, app: web.Application) -> None:
    """Add ``POST /v1/batch`` to ``app``; the write key is ``standin.cdp_write_key``."""

    def check_auth(authorization: str | None) -> web.Response | None:
        # Read the key on every request so a test may change it after construction.
        if authorization in cdp_auth_values(standin.cdp_write_key):
            return None
        return _error(401, "unauthorized", "invalid write key")

    # The stand-in's middleware checks auth by path; Pipelines has its own key.
    standin.path_auth[CDP_BATCH_PATH] = check_auth

    async def batch(request: web.Request) -> web.Response:
        strict = request.headers.get("X-Strict-Mode") == "1"
        raw = await request.read()
        standin.counts["cdp_batches"] += 1
        try:
            items = _parse(raw)
        except _Bad as exc:
            standin.counts["cdp_rejected_batches"] += 1
            if strict:
                return _error(400, exc.code, exc.message)
            return _ok()  # permissive mode: "200, but it will not go through"
        rejected = 0
        for item in items:
            try:
                rec = _check(item)
            except _Bad:
                rejected += 1
                continue
            if standin._add(rec) and rec.action == "identify" and "id" in rec.identifiers:
                # Pipelines calls them traits; keep the stand-in's view of people current.
                traits = item.get("traits")
                if isinstance(traits, Mapping):
                    standin.people.setdefault(f"id:{rec.identifiers['id']}", {}).update(traits)
        if rejected:
            standin.counts["cdp_rejected_calls"] += rejected
            if strict:
                return _error(400, "invalid_request", f"{rejected} call(s) in the batch invalid")
        return _ok()

    app.router.add_post(CDP_BATCH_PATH, batch)


def _parse(raw: bytes) -> list[Any]:
    if len(raw) > MAX_CDP_BATCH_BYTES:
        raise _Bad("batch larger than 500kb", "payload_too_large")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _Bad("body is not valid JSON") from None
    items = body.get("batch") if isinstance(body, Mapping) else None
    if not isinstance(items, list) or not items:
        raise _Bad("batch must be a non-empty array")
    return items


def _check(item: Any) -> Any:
    from ._standin import RecordedOperation

    if not isinstance(item, Mapping):
        raise _Bad("each call must be an object")
    action = _ACTIONS.get(item.get("type"))  # type: ignore[arg-type]
    if action is None:
        raise _Bad(f"unknown call type {item.get('type')!r}")
    if len(orjson.dumps(item)) > MAX_CDP_CALL_BYTES:
        raise _Bad("call larger than 32kb", "payload_too_large")
    user, anon = item.get("userId"), item.get("anonymousId")
    if user in (None, "") and anon in (None, ""):
        raise _Bad("userId or anonymousId is required")
    if action == "event" and not item.get("event"):
        raise _Bad("track needs an event name")
    if action == "group" and not item.get("groupId"):
        raise _Bad("group needs a groupId")
    if action == "alias" and not item.get("previousId"):
        raise _Bad("alias needs a previousId")
    ids = {"id": str(user)} if user not in (None, "") else {"anonymous_id": str(anon)}
    name = item.get("event") if action == "event" else item.get("name")
    return RecordedOperation("cdp", "person", action, ids, item, item.get("messageId"), name)


def _ok() -> web.Response:
    return web.Response(body=b"{}", content_type="application/json")


def _error(status: int, code: str, message: str) -> web.Response:
    return web.Response(
        body=orjson.dumps({"code": code, "message": message}),
        status=status,
        content_type="application/json",
    )
