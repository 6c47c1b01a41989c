"""``cio-async import --api pipelines``: an import line to a Pipelines call.

Two line shapes are accepted:

- Segment-style calls, as ``AsyncPipelines.batch`` takes them::

    {"type": "identify", "userId": "42", "traits": {"plan": "pro"}}
    {"type": "track", "userId": "42", "event": "purchase", "properties": {"amount": 30}}
    {"type": "group", "userId": "42", "groupId": "acme", "traits": {"seats": 3}}

- the Track import schema (and so every CSV row), translated: ``id`` (or ``email``)
  becomes ``userId``; identify ``attributes`` become ``traits``; event ``data`` (or
  ``attributes``) become ``properties``; a track line's ``name`` is the ``event``, a
  page line's ``url`` its ``name``; ``delete`` becomes the semantic event
  ``User Deleted``.

A call without ``messageId`` gets one derived from the input and the line, so a
resumed or repeated import repeats it rather than adding a new call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from .._errors import ValidationError
from ..pipelines._encode import CALL_TYPES, Encoder, PipelinesCall
from ._import_lines import LineOptions, parse_timestamp

__all__ = ["line_call"]

_SEGMENT_KEYS: Final = frozenset(
    {"userId", "anonymousId", "traits", "properties", "event", "messageId", "groupId", "previousId"}
)
_TRACK_KEYS: Final = frozenset(
    {"type", "id", "email", "timestamp", "attributes", "data", "name", "url", "event_id"}
)


def line_call(
    obj: Mapping[str, Any],
    options: LineOptions,
    message_id: Callable[[], str],
    encoder: Encoder,
) -> PipelinesCall:
    """Validate a line object and encode its call (``ValidationError`` names the
    line's field)."""
    type_ = obj.get("type", options.kind)
    if type_ == "event":
        type_ = "track"
    if _SEGMENT_KEYS & obj.keys() or type_ in ("group", "alias"):
        call = dict(obj)
        call["type"] = type_
        if type_ == "track" and "event" not in call and options.event is not None:
            call["event"] = options.event
    else:
        call = _translate(obj, type_, options)
    call.setdefault("messageId", message_id())
    return encoder.raw(call)


def _translate(obj: Mapping[str, Any], type_: object, options: LineOptions) -> dict[str, Any]:
    for key in obj:
        if key not in _TRACK_KEYS:
            raise ValidationError(key, "is not a field of a Pipelines line (see the README)")
    if type_ not in (*CALL_TYPES, "delete"):
        raise ValidationError(
            "type", f"must be one of {', '.join(CALL_TYPES)} or delete, got {type_!r}"
        )
    user = obj.get("id", obj.get("email"))
    if user is None:
        raise ValidationError("id", "is required: a userId (id or email column)")
    call: dict[str, Any] = {"type": type_, "userId": user}
    if obj.get("timestamp") is not None:
        call["timestamp"] = parse_timestamp(obj["timestamp"])
    if obj.get("event_id") is not None:
        call["messageId"] = obj["event_id"]
    data = obj.get("data", obj.get("attributes"))
    if data is not None and not isinstance(data, Mapping):
        raise ValidationError("data", "must be an object")
    if type_ == "identify":
        traits = dict(obj.get("attributes") or {})
        if "email" in obj and "id" in obj:
            traits.setdefault("email", obj["email"])
        call["traits"] = traits
    elif type_ == "delete":
        call.update(type="track", event="User Deleted")
    elif type_ == "page":
        url = obj.get("url", obj.get("name"))
        call["name"] = url
        call["properties"] = {**(data or {}), **({"url": url} if obj.get("url") else {})}
    else:
        name = obj.get("name", options.event)
        call["event" if type_ == "track" else "name"] = name
        if data is not None:
            call["properties"] = data
    return call
