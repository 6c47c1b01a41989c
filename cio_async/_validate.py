"""Input validation against Customer.io's documented limits.

Every check raises ``ValidationError`` naming the field, before any I/O. The limits
are the ones the Track API reference documents; each constant names one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from ._encode import dumps
from ._errors import ValidationError

MAX_ID_BYTES: Final = 150
MAX_EVENT_NAME_BYTES: Final = 100
MAX_PAGE_URL_BYTES: Final = 2048
MAX_ATTRIBUTE_NAME_BYTES: Final = 150
MAX_ATTRIBUTES: Final = 300
MAX_ATTRIBUTE_VALUE_BYTES: Final = 1000
MAX_EVENT_DATA_BYTES: Final = 100_000
MAX_OPERATION_BYTES: Final = 32_000
MAX_BATCH_BYTES: Final = 500_000
MAX_SEGMENT_IDS: Final = 1000


def event_name_rule(action: str | None) -> tuple[str, int]:
    """The field an event's name is reported as, and its byte limit: a page view's
    name is its URL."""
    return ("url", MAX_PAGE_URL_BYTES) if action == "page" else ("name", MAX_EVENT_NAME_BYTES)


def utf8_len(s: str) -> int:
    """Byte length of ``s`` in UTF-8 (cheap for ASCII)."""
    return len(s) if s.isascii() else len(s.encode("utf-8", "surrogatepass"))


def check_text(field: str, value: object, max_bytes: int) -> str:
    """A non-blank string of at most ``max_bytes`` UTF-8 bytes."""
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string, got {type(value).__name__}")
    # Four bytes per character at most: short strings skip the encode.
    if len(value) * 4 > max_bytes and utf8_len(value) > max_bytes:
        raise ValidationError(field, f"is {utf8_len(value)} bytes; the limit is {max_bytes}")
    if not value or value.isspace():
        raise ValidationError(field, "must not be blank")
    return value


def check_id(field: str, value: object) -> str:
    """An identifier value: a non-blank string (ints are accepted) of at most 150 bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return check_text(field, value, MAX_ID_BYTES)


def encode_checked(field: str, value: Any) -> bytes:
    """JSON-encode ``value``; a non-JSON value raises ``ValidationError`` naming its path."""
    try:
        return dumps(value)
    except (TypeError, ValueError) as exc:
        path = _find_bad(value, field)
        raise ValidationError(path or field, f"is not JSON-serialisable ({exc})") from None


def _find_bad(value: Any, path: str) -> str | None:
    try:
        dumps(value)
        return None
    except (TypeError, ValueError):
        pass
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                return f"{path}[{k!r}] (keys must be strings)"
            found = _find_bad(v, f"{path}.{k}")
            if found:
                return found
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            found = _find_bad(v, f"{path}[{i}]")
            if found:
                return found
    return path


def check_attributes(field: str, attrs: object, *, reserved: frozenset[str] = frozenset()) -> None:
    """Person/object attributes: a mapping of at most 300 names (each <= 150 bytes)
    to values of at most 1000 bytes each. ``reserved`` names do not count."""
    if not isinstance(attrs, Mapping):
        raise ValidationError(field, f"must be a mapping, got {type(attrs).__name__}")
    if len(attrs) > MAX_ATTRIBUTES and sum(1 for k in attrs if k not in reserved) > MAX_ATTRIBUTES:
        raise ValidationError(field, f"has {len(attrs)} attributes; the limit is {MAX_ATTRIBUTES}")
    for name, value in attrs.items():
        if not isinstance(name, str):
            raise ValidationError(f"{field}[{name!r}]", "attribute names must be strings")
        if len(name) * 4 > MAX_ATTRIBUTE_NAME_BYTES and utf8_len(name) > MAX_ATTRIBUTE_NAME_BYTES:
            raise ValidationError(
                f"{field}.{name[:40]}...",
                f"attribute name is {utf8_len(name)} bytes; the limit is "
                f"{MAX_ATTRIBUTE_NAME_BYTES}",
            )
        if not name:
            raise ValidationError(field, "attribute names must not be empty")
        if name in reserved:
            continue
        if isinstance(value, str):
            if len(value) * 4 > MAX_ATTRIBUTE_VALUE_BYTES:
                size = utf8_len(value)
                if size > MAX_ATTRIBUTE_VALUE_BYTES:
                    raise ValidationError(
                        f"{field}.{name}",
                        f"value is {size} bytes; the limit is {MAX_ATTRIBUTE_VALUE_BYTES}",
                    )
        elif value is None or isinstance(value, (bool, int, float)):
            continue
        else:
            size = len(encode_checked(f"{field}.{name}", value))
            if size > MAX_ATTRIBUTE_VALUE_BYTES:
                raise ValidationError(
                    f"{field}.{name}",
                    f"value is {size} bytes encoded; the limit is {MAX_ATTRIBUTE_VALUE_BYTES}",
                )


def check_event_data(field: str, data: object) -> bytes:
    """Event data: a mapping, JSON-serialisable, at most 100,000 bytes encoded."""
    if not isinstance(data, Mapping):
        raise ValidationError(field, f"must be a mapping, got {type(data).__name__}")
    raw = encode_checked(field, data)
    if len(raw) > MAX_EVENT_DATA_BYTES:
        raise ValidationError(
            field, f"is {len(raw)} bytes encoded; the limit is {MAX_EVENT_DATA_BYTES}"
        )
    return raw


def check_operation_size(payload: bytes, field: str = "operation") -> bytes:
    """A Track v2 operation must stay under 32,000 bytes encoded."""
    if len(payload) > MAX_OPERATION_BYTES:
        raise ValidationError(
            field,
            f"is {len(payload)} bytes encoded; Customer.io accepts at most "
            f"{MAX_OPERATION_BYTES} per operation",
        )
    return payload
