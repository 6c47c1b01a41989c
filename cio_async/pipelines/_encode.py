"""The Pipelines encoder: validate a Segment-style call and encode it once, at the call.

Every call becomes the bytes of one ``/v1/batch`` item (``{"type":"track",...}``)
before it is admitted, so the sender only joins bytes, exactly as for Track v2:

- ``messageId`` is a ULID made at the call (or the caller's own) and travels inside the
  bytes, so every retry of the batch repeats it;
- ``timestamp`` is ISO-8601 UTC to the millisecond (``2026-12-02T01:10:00.123Z``); the
  call accepts datetimes, Unix seconds and ISO strings and defaults to now;
- ``context`` is the client's default context merged with the call's (the call wins
  key by key), and ``context.library`` always names this package and version;
- the 32,000-byte limit per call is checked here, with the largest field named.

``sentAt`` is not part of an item: the sender stamps it on the batch when it sends.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import orjson

from .._encode import _refill, _suffixes, new_event_id, ulid_time_prefix
from .._errors import ValidationError
from .._version import __version__

__all__ = [
    "CALL_TYPES",
    "LIBRARY",
    "MAX_BATCH_BYTES",
    "MAX_CALL_BYTES",
    "PipelinesCall",
    "Encoder",
    "iso_timestamp",
]

#: Customer.io: "A request is limited to 32KB ... 500KB total and 32KB per call".
MAX_CALL_BYTES: Final = 32_000
MAX_BATCH_BYTES: Final = 500_000
LIBRARY: Final = {"name": "cio_async", "version": __version__}
CALL_TYPES: Final = ("identify", "track", "page", "screen", "group", "alias")

_UTC = _dt.timezone.utc
_MAX_SECONDS: Final = 99_999_999_999  # above this a number is milliseconds, not seconds
# Datetimes inside properties and traits go out as ISO-8601 (Pipelines' format), naive
# ones read as UTC.
_OPTS: Final = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z
_time_ns = time.time_ns


def _default(obj: Any) -> Any:
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, Mapping):
        return dict(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, default=_default, option=_OPTS)


_now_cache: tuple[int, str] = (-1, "")


def _now_iso() -> str:
    """Now, ISO-8601 UTC to the millisecond; the seconds part is formatted once per
    second (this runs on every call)."""
    global _now_cache
    ms = _time_ns() // 1_000_000
    secs, frac = divmod(ms, 1000)
    cached, head = _now_cache
    if cached != secs:
        head = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
        _now_cache = (secs, head)
    return f"{head}.{frac:03d}Z"


def _format(value: _dt.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=_UTC)
    value = value.astimezone(_UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def iso_timestamp(value: object, field: str = "timestamp") -> str:
    """``value`` as ISO-8601 UTC to the millisecond, or ``ValidationError`` naming
    ``field``. Accepts a ``datetime`` (naive means UTC), Unix seconds (``int``/
    ``float``; milliseconds and negatives are refused rather than misread) and an ISO
    string; ``None`` means now."""
    if value is None:
        return _now_iso()
    if isinstance(value, _dt.datetime):
        return _format(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = _dt.datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "Zz" else text)
        except ValueError:
            raise ValidationError(field, f"is not an ISO-8601 date-time: {value!r}") from None
        return _format(parsed)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(
            field,
            f"must be a datetime, Unix seconds or an ISO-8601 string, got {type(value).__name__}",
        )
    if value != value or value in (float("inf"), float("-inf")):
        raise ValidationError(field, "must be a finite number")
    if value < 0:
        raise ValidationError(field, f"must not be negative, got {value}")
    if value > _MAX_SECONDS:
        raise ValidationError(field, f"{value} looks like milliseconds; pass Unix seconds")
    return _format(_dt.datetime.fromtimestamp(value, _UTC))


def _ident(value: object, field: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValidationError(field, f"must be a string (or int), got {type(value).__name__}")
    text = value if isinstance(value, str) else str(value)
    if not text.strip():
        raise ValidationError(field, "must not be blank")
    return text


def _mapping(value: object, field: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValidationError(field, f"must be a mapping, got {type(value).__name__}")
    out = value if type(value) is dict else dict(value)
    for k in out:
        if not isinstance(k, str):
            raise ValidationError(field, f"keys must be strings, got {k!r}")
    return out


def _text(value: object, field: str, required: bool) -> str | None:
    if value is None:
        if required:
            raise ValidationError(field, "is required")
        return None
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string, got {type(value).__name__}")
    if required and not value.strip():
        raise ValidationError(field, "must not be blank")
    return value


class PipelinesCall:
    """One Pipelines call, validated and encoded (``payload``: the JSON of one
    ``/v1/batch`` item). ``on_error`` and ``on_drop`` receive these."""

    __slots__ = ("anonymous_id", "message_id", "payload", "type", "user_id")

    def __init__(
        self,
        payload: bytes,
        type: str,
        message_id: str,
        user_id: str | None,
        anonymous_id: str | None,
    ) -> None:
        self.payload = payload
        self.type = type
        self.message_id = message_id
        self.user_id = user_id
        self.anonymous_id = anonymous_id

    @classmethod
    def from_payload(cls, payload: bytes) -> PipelinesCall:
        """Rebuild the call from its encoded bytes (the queue keeps only bytes)."""
        body = orjson.loads(payload)
        user, anon = body.get("userId"), body.get("anonymousId")
        return cls(
            bytes(payload),
            str(body.get("type", "")),
            str(body.get("messageId", "")),
            None if user is None else str(user),
            None if anon is None else str(anon),
        )

    def to_dict(self) -> dict[str, Any]:
        """The call as a dict (decoded from its payload)."""
        result: dict[str, Any] = orjson.loads(self.payload)
        return result

    def __len__(self) -> int:
        return len(self.payload)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PipelinesCall) and self.payload == other.payload

    def __hash__(self) -> int:
        return hash(self.payload)

    def __repr__(self) -> str:
        who = self.user_id if self.user_id is not None else f"anon:{self.anonymous_id}"
        return f"<PipelinesCall {self.type} {who} {self.message_id} {len(self.payload)}B>"


# The fields each call type carries besides the envelope, with the Python argument
# names that set them (the errors name what the caller wrote).
_BODY_FIELDS: Final = {
    "identify": (("traits", "traits"),),
    "track": (("event", "event"), ("properties", "properties")),
    "page": (("name", "name"), ("category", "category"), ("properties", "properties")),
    "screen": (("name", "name"), ("category", "category"), ("properties", "properties")),
    "group": (("groupId", "group_id"), ("traits", "traits")),
    "alias": (("previousId", "previous_id"),),
}
_MAPPING_FIELDS: Final = frozenset({"traits", "properties"})
_TEXT_FIELDS: Final = frozenset({"event", "name", "category"})


class Encoder:
    """Validates and encodes calls for one client: holds its default context (with
    ``library``) and default integrations, encoded once."""

    def __init__(
        self,
        context: Mapping[str, Any] | None = None,
        integrations: Mapping[str, Any] | None = None,
    ) -> None:
        ctx = _mapping(context, "context") or {}
        self._context: dict[str, Any] = {**ctx, "library": dict(LIBRARY)}
        self._integrations = _mapping(integrations, "integrations")
        try:
            _dumps(self._context)
            if self._integrations is not None:
                _dumps(self._integrations)
        except TypeError as exc:
            raise ValidationError("context", f"is not JSON-serialisable: {exc}") from None

    @property
    def context(self) -> dict[str, Any]:
        """The default context every call carries (a copy)."""
        return dict(self._context)

    def _merge_context(self, context: object, field: str) -> dict[str, Any]:
        ctx = _mapping(context, field)
        if not ctx:
            return self._context
        # The call's keys win, except that ``library`` always names this package.
        return {**self._context, **ctx, "library": self._context["library"]}

    def call(
        self,
        type_: str,
        fields: Mapping[str, Any],
        *,
        user_id: object = None,
        anonymous_id: object = None,
        context: object = None,
        integrations: object = None,
        timestamp: object = None,
        message_id: object = None,
        prefix: str = "",
        extra: Mapping[str, Any] | None = None,
        wire_names: bool = False,
    ) -> PipelinesCall:
        """Validate and encode one call. ``fields`` holds the type's own fields by
        their wire names (``event``, ``traits``, ...). ``prefix`` goes in front of
        field names in errors (``batch[3].``); ``extra`` carries unknown wire fields
        of a raw call through unchanged; ``wire_names`` names fields as the wire does
        (``userId``) rather than as the Python arguments (``user_id``)."""

        def nm(arg: str) -> str:
            return prefix + (_WIRE_NAMES.get(arg, arg) if wire_names else arg)

        if type_ not in _BODY_FIELDS:
            raise ValidationError(
                f"{prefix}type", f"must be one of {', '.join(CALL_TYPES)}, got {type_!r}"
            )
        uid = _ident(user_id, nm("user_id"))
        aid = _ident(anonymous_id, nm("anonymous_id"))
        if type_ == "alias":
            if uid is None:
                raise ValidationError(nm("user_id"), "is required for alias")
        elif uid is None and aid is None:
            raise ValidationError(nm("user_id"), "user_id or anonymous_id is required")
        body: dict[str, Any] = {"type": type_}
        if extra:
            body.update(extra)
        if uid is not None:
            body["userId"] = uid
        if aid is not None:
            body["anonymousId"] = aid
        for wire, arg in _BODY_FIELDS[type_]:
            value = fields.get(wire)
            name = nm(arg)
            if wire in _MAPPING_FIELDS:
                mapped = _mapping(value, name)
                if mapped is not None:
                    body[wire] = mapped
            elif wire in _TEXT_FIELDS:
                text = _text(value, name, required=wire == "event")
                if text is not None:
                    body[wire] = text
            else:  # groupId, previousId: identifiers, required
                ident = _ident(value, name)
                if ident is None:
                    raise ValidationError(name, f"is required for {type_}")
                body[wire] = ident
        body["context"] = self._merge_context(context, nm("context"))
        integ = _mapping(integrations, nm("integrations"))
        if integ is None:
            integ = self._integrations
        if integ is not None:
            body["integrations"] = integ
        if message_id is None:
            mid = new_event_id()[0]
        else:
            mid = _text(message_id, nm("message_id"), required=True)  # type: ignore[assignment]
        body["messageId"] = mid
        body["timestamp"] = iso_timestamp(timestamp, nm("timestamp"))
        try:
            payload = _dumps(body)
        except TypeError as exc:
            raise ValidationError(
                _culprit(body, prefix, wire_names), f"is not JSON-serialisable: {exc}"
            ) from None
        if len(payload) > MAX_CALL_BYTES:
            raise ValidationError(
                _largest(body, prefix, wire_names),
                f"the call encodes to {len(payload):,} bytes; Customer.io accepts at most "
                f"{MAX_CALL_BYTES:,} per call (larger ones are answered 200 and dropped)",
            )
        return PipelinesCall(payload, type_, mid, uid, aid)

    def raw(self, call: object, prefix: str = "") -> PipelinesCall:
        """A Segment-style call dict (``{"type": "track", "userId": ...}``), as
        ``batch()`` takes them: checked like the typed calls, ``messageId`` and
        ``timestamp`` filled in when absent."""
        if not isinstance(call, Mapping):
            raise ValidationError(prefix.rstrip(".") or "call", "must be a mapping")
        known = {"type", "userId", "anonymousId", "context", "integrations", "timestamp"}
        known.add("messageId")
        type_ = call.get("type")
        own = {w for w, _ in _BODY_FIELDS.get(type_, ())} if isinstance(type_, str) else set()
        extra = {k: v for k, v in call.items() if k not in known and k not in own}
        return self.call(
            type_ if isinstance(type_, str) else repr(type_),
            {k: call[k] for k in own if k in call},
            user_id=call.get("userId"),
            anonymous_id=call.get("anonymousId"),
            context=call.get("context"),
            integrations=call.get("integrations"),
            timestamp=call.get("timestamp"),
            message_id=call.get("messageId"),
            prefix=prefix,
            extra=extra,
            wire_names=True,
        )

    def batch(self, calls: Iterable[object]) -> list[PipelinesCall]:
        """Every call of a raw batch, checked; the whole must fit one request."""
        out = [self.raw(c, f"batch[{n}].") for n, c in enumerate(calls)]
        if not out:
            raise ValidationError("batch", "must hold at least one call")
        total = sum(len(c.payload) + 1 for c in out) + len(b'{"batch":[]}')
        if total > MAX_BATCH_BYTES:
            raise ValidationError(
                "batch",
                f"the calls encode to {total:,} bytes; Customer.io accepts at most "
                f"{MAX_BATCH_BYTES:,} per batch request",
            )
        return out


#: ``(user_id, event, properties) -> (payload, messageId)``, or None: not handled here
#: (encode with ``Encoder.call``, which gives the same bytes or the clear error).
FastTrack = Callable[[object, object, object], "tuple[bytes, str] | None"]
_MAX_CACHED: Final = 16_384


def track_encoder(encoder: Encoder) -> FastTrack:
    """The common ``track`` call (a string user id, a string event name, a dict or no
    properties, nothing else) encoded in one frame: the ``{"type":"track","userId":``
    part is cached per user and the event name per name (both bounded), the default
    context is encoded once, the ULID prefix and timestamp once per millisecond. The
    bytes are exactly those ``Encoder.call`` makes (a test holds them to it)."""
    users: dict[str, bytes] = {}
    events: dict[str, bytes] = {}
    # Keys in Encoder.call's order: type, userId, event, properties, context,
    # integrations, messageId, timestamp.
    middle = b',"context":' + _dumps(encoder._context)
    if encoder._integrations is not None:
        middle += b',"integrations":' + _dumps(encoder._integrations)
    middle += b',"messageId":"'
    props_key = b',"properties":'
    time_ns = _time_ns
    pop = _suffixes.pop  # list.pop is atomic: no two callers share a suffix
    refill = _refill
    dumps = orjson.dumps
    default, opts = _default, _OPTS
    last_ms = last_s = -1
    prefix = ""
    prefix_b = ts_tail = b""
    head = ""

    def encode(user: object, event: object, properties: object) -> tuple[bytes, str] | None:
        nonlocal last_ms, last_s, prefix, prefix_b, ts_tail, head
        if type(user) is not str or type(event) is not str:
            return None
        u = users.get(user)
        if u is None:
            if not user.strip():
                return None
            if len(users) >= _MAX_CACHED:
                users.clear()
            u = users[user] = b'{"type":"track","userId":' + dumps(user) + b',"event":'
        e = events.get(event)
        if e is None:
            if not event.strip():
                return None
            if len(events) >= _MAX_CACHED:
                events.clear()
            e = events[event] = dumps(event)
        ms = time_ns() // 1_000_000
        if ms != last_ms:
            last_ms = ms
            prefix = ulid_time_prefix(ms)
            prefix_b = prefix.encode()
            secs, frac = divmod(ms, 1000)
            if secs != last_s:
                last_s = secs
                head = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
            ts_tail = f'","timestamp":"{head}.{frac:03d}Z"}}'.encode()
        try:
            suffix = pop()
        except IndexError:
            refill()
            suffix = pop()
        if properties is None:
            payload = b"".join((u, e, middle, prefix_b, suffix.encode(), ts_tail))
        else:
            if type(properties) is not dict:
                return None
            try:
                props = dumps(properties, default, opts)
            except TypeError:
                return None  # Encoder.call names the bad value
            payload = b"".join((u, e, props_key, props, middle, prefix_b, suffix.encode(), ts_tail))
        if len(payload) > MAX_CALL_BYTES:
            return None
        return payload, prefix + suffix

    return encode


def _culprit(body: Mapping[str, Any], prefix: str, wire: bool) -> str:
    for key, value in body.items():
        try:
            _dumps(value)
        except TypeError:
            return prefix + (key if wire else _ARG_NAMES.get(key, key))
    return prefix + "call"


def _largest(body: Mapping[str, Any], prefix: str, wire: bool) -> str:
    sizes = {k: len(_dumps(v)) for k, v in body.items() if isinstance(v, (dict, str))}
    key = max(sizes, key=sizes.__getitem__) if sizes else "call"
    return prefix + (key if wire else _ARG_NAMES.get(key, key))


_ARG_NAMES: Final = {
    "userId": "user_id",
    "anonymousId": "anonymous_id",
    "groupId": "group_id",
    "previousId": "previous_id",
    "messageId": "message_id",
}
_WIRE_NAMES: Final = {v: k for k, v in _ARG_NAMES.items()}
