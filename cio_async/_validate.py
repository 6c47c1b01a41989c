"""Input validation against Customer.io's documented limits.

Every check raises ``ValidationError`` naming the field, before any I/O. The limits
are the ones the Track API reference documents; each constant names one.
"""

from __future__ import annotations

import datetime as _dt
import re
import reprlib
from collections.abc import Mapping
from typing import Any, Final

from ._encode import dumps, to_unix_seconds
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
#: orjson refuses to nest deeper than 254 levels; a value is reported past that.
MAX_DEPTH: Final = 254
#: Characters an identifier may not contain: C0/C1 controls (NUL included), DEL, the
#: byte order mark, the Unicode non-characters U+FFFE/U+FFFF and line/paragraph
#: separators. Customer.io would store them invisibly or reject the person later.
_BAD_ID_CHARS: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")
_INT_RANGE: Final = (-(2**63), 2**64 - 1)


_REPR: Final = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60


def short_repr(value: object) -> str:
    """A bounded repr for error messages: safe for huge, deep or cyclic values."""
    try:
        return _REPR.repr(value)
    except Exception:  # noqa: BLE001 - a hostile __repr__ must not replace the error
        return f"<{type(value).__name__}>"


def event_name_rule(action: str | None) -> tuple[str, int]:
    """The field an event's name is reported as, and its byte limit: a page view's
    name is its URL."""
    return ("url", MAX_PAGE_URL_BYTES) if action == "page" else ("name", MAX_EVENT_NAME_BYTES)


def utf8_len(s: str) -> int:
    """Byte length of ``s`` in UTF-8 (cheap for ASCII)."""
    return len(s) if s.isascii() else len(s.encode("utf-8", "surrogatepass"))


def check_text(field: str, value: object, max_bytes: int) -> str:
    """A non-blank string of at most ``max_bytes`` UTF-8 bytes, valid UTF-8 (no lone
    surrogates)."""
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string, got {type(value).__name__}")
    # Lone surrogates are not printable: printable text skips the encode.
    if not value.isascii() and not value.isprintable():
        check_unicode(field, value)
    # Four bytes per character at most: short strings skip the encode.
    if len(value) * 4 > max_bytes and utf8_len(value) > max_bytes:
        raise ValidationError(field, f"is {utf8_len(value)} bytes; the limit is {max_bytes}")
    if not value or value.isspace():
        raise ValidationError(field, "must not be blank")
    return value


def check_unicode(field: str, value: str) -> str:
    """``value`` must be encodable as UTF-8 (a lone surrogate is not)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError(
            field,
            f"contains a lone surrogate {value[exc.start]!r} at index {exc.start}"
            " (not valid UTF-8)",
        ) from None
    return value


def check_id(field: str, value: object) -> str:
    """An identifier value: a non-blank string (ints are accepted) of at most 150 bytes,
    without control characters, NUL or a byte order mark."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    text = check_text(field, value, MAX_ID_BYTES)
    if not text.isprintable():
        bad = _BAD_ID_CHARS.search(text)
        if bad is not None:
            raise ValidationError(
                field,
                "must not contain control characters, NUL or a byte order mark; found "
                f"{bad.group()!r} at index {bad.start()}",
            )
    return text


def encode_checked(field: str, value: Any) -> bytes:
    """JSON-encode ``value``; a value that is not JSON (or NaN, infinite, out of range,
    cyclic, too deep, invalid UTF-8) raises ``ValidationError`` naming its path."""
    try:
        raw = dumps(value)
    except (TypeError, ValueError) as exc:
        found = find_unencodable(value, field)
        if found is not None:
            raise ValidationError(*found) from None
        raise ValidationError(field, f"is not JSON-serialisable ({exc})") from None
    if raw.find(b"null") >= 0:
        # orjson writes NaN and infinities as null; only then is a walk needed.
        check_finite(field, value)
    return raw


def check_finite(field: str, value: Any) -> None:
    """Raise ``ValidationError`` if ``value`` (already known to encode) holds a NaN or
    an infinity, which JSON cannot carry (orjson would send ``null``)."""
    if has_non_finite(value):
        found = find_unencodable(value, field)
        if found is not None:
            raise ValidationError(*found)


def has_non_finite(value: Any) -> bool:
    """True if ``value`` (one that orjson encoded: no cycles, bounded depth) holds a
    NaN or an infinity. Cheap: called whenever an encoding contains ``null``."""
    if type(value) is dict:
        value = value.values()
    elif isinstance(value, Mapping):
        value = list(value.values())
    elif isinstance(value, float):
        return value - value != 0
    elif not isinstance(value, (list, tuple, set, frozenset)):
        return False
    for v in value:
        t = type(v)
        if t is float:
            if v - v != 0:
                return True
        elif t is str or t is int or v is None or t is bool:
            continue
        elif has_non_finite(v):
            return True
    return False


def _shorten(path: str) -> str:
    return path if len(path) <= 120 else f"{path[:55]}...{path[-55:]}"


def find_unencodable(value: Any, path: str) -> tuple[str, str] | None:
    """The first ``(path, reason)`` in ``value`` that JSON cannot carry, or None.

    Bounded: stops at ``MAX_DEPTH`` levels and at a container that contains itself,
    so cyclic and absurdly deep values are reported, not a ``RecursionError``.
    """
    found = _walk(value, 0, set())
    if found is None:
        return None
    segments, reason = found
    return _shorten(path + "".join(reversed(segments))), reason


def _walk(value: Any, depth: int, active: set[int]) -> tuple[list[str], str] | None:
    """The reversed path segments to the first bad value and why, or None."""
    if isinstance(value, str):
        if not value.isascii() and not value.isprintable():
            try:
                check_unicode("", value)
            except ValidationError as exc:
                return [], exc.message
        return None
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        if not _INT_RANGE[0] <= value <= _INT_RANGE[1]:
            return [], "is an integer outside the 64-bit range JSON numbers can carry"
        return None
    if isinstance(value, float):
        if value - value != 0:  # NaN and the infinities
            return [], f"must be a finite number, got {value!r}"
        return None
    if isinstance(value, _dt.datetime):
        try:
            to_unix_seconds(value, "")
        except ValidationError as exc:
            return [], exc.message
        return None
    if isinstance(value, _dt.date):
        return None
    is_map = isinstance(value, Mapping)
    if not (is_map or isinstance(value, (list, tuple, set, frozenset))):
        return [], f"is not JSON-serialisable ({type(value).__name__})"
    if depth >= MAX_DEPTH:
        return [], f"is nested more than {MAX_DEPTH} levels deep"
    if id(value) in active:
        return [], "contains itself (a cyclic reference)"
    active.add(id(value))
    try:
        if is_map:
            for k, v in value.items():
                if not isinstance(k, str):
                    return [f"[{short_repr(k)}]"], "keys must be strings"
                found = _walk(k, depth, active)
                if found is not None:
                    return [f"[{short_repr(k)}]"], found[1]
                found = _walk(v, depth + 1, active)
                if found is not None:
                    found[0].append(f".{k}")
                    return found
        else:
            for i, v in enumerate(value):
                found = _walk(v, depth + 1, active)
                if found is not None:
                    found[0].append(f"[{i}]")
                    return found
    finally:
        active.discard(id(value))
    return None


def check_attributes(field: str, attrs: object, *, reserved: frozenset[str] = frozenset()) -> None:
    """Person/object attributes: a mapping of at most 300 names (each <= 150 bytes)
    to values of at most 1000 bytes each. ``reserved`` names do not count."""
    if not isinstance(attrs, Mapping):
        raise ValidationError(field, f"must be a mapping, got {type(attrs).__name__}")
    if len(attrs) > MAX_ATTRIBUTES and sum(1 for k in attrs if k not in reserved) > MAX_ATTRIBUTES:
        raise ValidationError(field, f"has {len(attrs)} attributes; the limit is {MAX_ATTRIBUTES}")
    for name, value in attrs.items():
        if not isinstance(name, str):
            raise ValidationError(f"{field}[{short_repr(name)}]", "attribute names must be strings")
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
        elif value is None or isinstance(value, (bool, int)):
            if type(value) is int and not _INT_RANGE[0] <= value <= _INT_RANGE[1]:
                encode_checked(f"{field}.{name}", value)  # names the out-of-range int
            continue
        elif isinstance(value, float):
            if value - value != 0:
                raise ValidationError(f"{field}.{name}", f"must be a finite number, got {value}")
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
