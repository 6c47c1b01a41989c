"""The Data Pipelines (CDP) API for the stand-in: ``POST /v1/batch`` and the single-call
routes ``/v1/identify``, ``/v1/track``, ``/v1/page``, ``/v1/screen``, ``/v1/group`` and
``/v1/alias``, behaving as Customer.io documents them:

- **auth**: HTTP Basic with the write key as user and an empty password (keys shaped
  ``pk_us_...`` may also come as a Bearer token, as ``customerio-cdp-analytics`` 1.1
  sends them);
- **strict mode** (``X-Strict-Mode: 1``): a bad key is a 401 and invalid input a 400
  with ``{"code", "message"}``; a batch with one invalid call is refused whole and
  nothing in it is stored (there is no per-item answer);
- **permissive mode** (no header): everything is answered 200; a bad key stores
  nothing, an invalid call is silently not stored and the valid ones are;
- **limits**: 32,000 bytes per call, 500,000 per request (uncompressed), the same way;
- **region**: with ``pipelines.region`` set, a key naming the other region
  (``pk_eu_...`` on a US account) is answered 200 and nothing is stored, as the real
  service does for a wrong-region host;
- ``Content-Encoding: gzip`` bodies are accepted; a repeated ``messageId`` is ignored.

Accepted calls are recorded in ``StandIn.pipelines.calls`` (``RecordedCall``) and, like
Track operations, in ``StandIn.operations`` (``source="cdp"``, ``type="person"``,
``action`` ``identify``/``event``/``page``/``screen``/``group``/``alias``), so
``StandIn.events()`` and ``StandIn.counts`` see them. Faults (``fail_next``,
``drop_next``, ``delay_next`` with ``path="/v1/batch"``) apply as to the Track routes.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

if TYPE_CHECKING:
    from ._standin import StandIn

__all__ = [
    "CDP_BATCH_PATH",
    "DEFAULT_WRITE_KEY",
    "PipelinesState",
    "RecordedCall",
    "cdp_auth_values",
    "register_cdp",
]

CDP_PREFIX = "/v1"
CDP_BATCH_PATH = "/v1/batch"
DEFAULT_WRITE_KEY = "stand-in-write-key"
MAX_CDP_BATCH_BYTES = 500_000
MAX_CDP_CALL_BYTES = 32_000
_KEY_REGION = re.compile(r"^(?:pk|sk)_(us|eu)_")

# Pipelines call types and the Track-style action they are recorded as.
_ACTIONS = {
    "identify": "identify",
    "track": "event",
    "page": "page",
    "screen": "screen",
    "group": "group",
    "alias": "alias",
}


@dataclass
class RecordedCall:
    """One Pipelines call the stand-in accepted (and stored)."""

    type: str
    user_id: str | None
    anonymous_id: str | None
    message_id: str | None
    #: The call as sent (batch-level ``context``/``integrations`` not merged in).
    body: dict[str, Any]
    #: The route it came by (``/v1/batch``, ``/v1/track``, ...).
    path: str
    #: The batch's ``sentAt`` (None for single calls that carry none).
    sent_at: str | None = None
    gzip: bool = False
    strict: bool = False


@dataclass
class PipelinesState:
    """The stand-in's Pipelines side: its settings and what it accepted."""

    #: The write key (Basic ``key:``); change it to make a client's key wrong.
    write_key: str = DEFAULT_WRITE_KEY
    #: The account's region (``"us"``/``"eu"``); None accepts keys of any region.
    region: str | None = None
    #: ``reject_call(call) -> message | None``: refuse matching calls as invalid (what
    #: only the workspace knows). Strict: the batch is answered 400; permissive: the
    #: call is silently not stored.
    reject_call: Callable[[Mapping[str, Any]], str | None] | None = None
    calls: list[RecordedCall] = field(default_factory=list)

    def find(
        self, type: str | None = None, *, event: str | None = None, user_id: str | None = None
    ) -> list[RecordedCall]:
        """Accepted calls, optionally filtered by type, event name and user id."""
        return [
            c
            for c in self.calls
            if (type is None or c.type == type)
            and (event is None or c.body.get("event") == event)
            and (user_id is None or c.user_id == user_id)
        ]

    def reset(self) -> None:
        """Forget the accepted calls (settings stay)."""
        self.calls.clear()


class _Bad(Exception):
    def __init__(self, message: str, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def cdp_auth_values(write_key: str) -> frozenset[str]:
    """The Authorization headers Pipelines accepts for ``write_key``."""
    basic = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    return frozenset({basic, f"Bearer {write_key}"})


def _key_of(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme == "Bearer":
        return value
    if scheme == "Basic":
        try:
            return base64.b64decode(value).decode().partition(":")[0]
        except (ValueError, UnicodeDecodeError):
            return None
    return None


def register_cdp(standin: StandIn, app: web.Application) -> None:
    """Add the Pipelines routes to ``app``; their state is ``standin.pipelines``."""
    state: PipelinesState = standin.pipelines
    counts = standin.counts

    def own_auth(authorization: str | None) -> web.Response | None:
        return None  # checked in the handler: the answer depends on strict mode

    async def handle(request: web.Request, single: str | None) -> web.Response:
        strict = request.headers.get("X-Strict-Mode") == "1"
        raw = await request.read()  # aiohttp has undone any Content-Encoding: gzip
        gz = request.headers.get("Content-Encoding", "").lower() == "gzip"
        if gz:
            counts["cdp_gzip_requests"] += 1
        authorization = request.headers.get("Authorization")
        # Read the key on every request so a test may change it after construction.
        if authorization not in cdp_auth_values(state.write_key):
            counts["cdp_unauthorized"] += 1
            return _error(401, "unauthorized", "invalid write key") if strict else _ok()
        key = _key_of(authorization) or ""
        m = _KEY_REGION.match(key)
        if state.region is not None and m is not None and m.group(1) != state.region:
            # What Customer.io does for a key sent to the other region's host.
            counts["cdp_wrong_region"] += 1
            return _ok()
        counts["cdp_batches" if single is None else "cdp_single_calls"] += 1
        try:
            items, sent_at = _parse(raw, single)
        except _Bad as exc:
            counts["cdp_rejected_batches"] += 1
            return _error(400, exc.code, exc.message) if strict else _ok()
        good: list[tuple[int, Any]] = []
        bad: list[tuple[int, _Bad]] = []
        for n, item in enumerate(items):
            try:
                _check(item, single)
                if state.reject_call is not None:
                    why = state.reject_call(item)
                    if why is not None:
                        raise _Bad(why)
            except _Bad as exc:
                bad.append((n, exc))
            else:
                good.append((n, item))
        if bad:
            counts["cdp_rejected_calls"] += len(bad)
            if strict:
                # One answer for the whole batch: nothing in it is stored.
                n, first = bad[0]
                where = f"batch[{n}]: " if single is None else ""
                return _error(400, first.code, where + first.message)
        for _, item in good:
            _store(standin, state, item, request.path, sent_at, gz, strict, single)
        return _ok()

    for type_ in _ACTIONS:
        path = f"{CDP_PREFIX}/{type_}"
        standin.path_auth[path] = own_auth
        app.router.add_post(path, _bind(handle, type_))
    standin.path_auth[CDP_BATCH_PATH] = own_auth
    app.router.add_post(CDP_BATCH_PATH, _bind(handle, None))


def _bind(
    handle: Callable[[web.Request, str | None], Any], single: str | None
) -> Callable[[web.Request], Any]:
    async def route(request: web.Request) -> web.Response:
        resp: web.Response = await handle(request, single)
        return resp

    return route


def _store(
    standin: StandIn,
    state: PipelinesState,
    item: Mapping[str, Any],
    path: str,
    sent_at: str | None,
    gz: bool,
    strict: bool,
    single: str | None,
) -> None:
    from ._standin import RecordedOperation

    type_ = single or str(item["type"])
    action = _ACTIONS[type_]
    user, anon = item.get("userId"), item.get("anonymousId")
    ids = {"id": str(user)} if user not in (None, "") else {"anonymous_id": str(anon)}
    name = item.get("event") if action == "event" else item.get("name")
    mid = item.get("messageId")
    rec = RecordedOperation("cdp", "person", action, ids, item, mid, name)
    if not standin.accept(rec):
        return  # a repeated messageId
    standin.counts["cdp_calls"] += 1
    standin.counts[f"cdp.{type_}"] += 1
    if standin.record:
        state.calls.append(
            RecordedCall(
                type_,
                None if user is None else str(user),
                None if anon is None else str(anon),
                mid if isinstance(mid, str) else None,
                dict(item),
                path,
                sent_at,
                gz,
                strict,
            )
        )
    if action == "identify" and "id" in ids:
        # Pipelines calls them traits; keep the stand-in's view of people current.
        traits = item.get("traits")
        if isinstance(traits, Mapping):
            standin.people.setdefault(f"id:{ids['id']}", {}).update(traits)


def _parse(raw: bytes, single: str | None) -> tuple[list[Any], str | None]:
    limit = MAX_CDP_BATCH_BYTES if single is None else MAX_CDP_CALL_BYTES
    if len(raw) > limit:
        what = "batch larger than 500kb" if single is None else "request larger than 32kb"
        raise _Bad(what, "payload_too_large")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _Bad("body is not valid JSON") from None
    if not isinstance(body, Mapping):
        raise _Bad("body must be an object")
    sent_at = body.get("sentAt")
    sent = sent_at if isinstance(sent_at, str) else None
    if single is not None:
        return [body], sent
    items = body.get("batch")
    if not isinstance(items, list) or not items:
        raise _Bad("batch must be a non-empty array")
    return items, sent


def _check(item: Any, single: str | None) -> None:
    if not isinstance(item, Mapping):
        raise _Bad("each call must be an object")
    type_ = single or item.get("type")
    if type_ not in _ACTIONS:
        raise _Bad(f"unknown call type {item.get('type')!r}")
    if single is None and len(orjson.dumps(item)) > MAX_CDP_CALL_BYTES:
        raise _Bad("call larger than 32kb", "payload_too_large")
    user, anon = item.get("userId"), item.get("anonymousId")
    if user in (None, "") and anon in (None, ""):
        raise _Bad("userId or anonymousId is required")
    if type_ == "track" and not item.get("event"):
        raise _Bad("track needs an event name")
    if type_ == "group" and not item.get("groupId"):
        raise _Bad("group needs a groupId")
    if type_ == "alias" and (not item.get("previousId") or user in (None, "")):
        raise _Bad("alias needs a userId and a previousId")
    for key in ("traits", "properties", "context", "integrations"):
        if key in item and not isinstance(item[key], Mapping):
            raise _Bad(f"{key} must be an object")


def _ok() -> web.Response:
    return web.Response(body=b"{}", content_type="application/json")


def _error(status: int, code: str, message: str) -> web.Response:
    return web.Response(
        body=orjson.dumps({"code": code, "message": message}),
        status=status,
        content_type="application/json",
    )
