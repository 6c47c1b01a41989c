"""JSON encoding, timestamps and event ids: the pure helpers on the hot path."""

from __future__ import annotations

import datetime as _dt
import os
import time
from collections.abc import Mapping
from typing import Any, Final

import orjson

from ._errors import ValidationError

__all__ = ["dumps", "json_default", "loads", "new_event_id", "new_ulid", "to_unix_seconds"]

_UTC = _dt.timezone.utc
# Unix seconds stay below 1e11 until the year 5138; millisecond values of any date
# after 1973 are above it, so the boundary tells the two apart.
_MAX_SECONDS: Final = 99_999_999_999
_OPTS: Final = orjson.OPT_PASSTHROUGH_DATETIME


def json_default(obj: Any) -> Any:
    """orjson ``default``: datetimes to Unix seconds, dates to ISO, sets to lists,
    other mappings (``MappingProxyType``, a ``Mapping`` class) to dicts."""
    # Customer.io wants Unix seconds everywhere, so datetimes inside attributes are
    # converted rather than sent as ISO strings.
    if isinstance(obj, _dt.datetime):
        return to_unix_seconds(obj, "value")
    if isinstance(obj, _dt.date):
        return obj.isoformat()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, Mapping):
        return dict(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def dumps(obj: Any) -> bytes:
    """Encode with orjson; datetimes become Unix seconds. Raises TypeError."""
    return orjson.dumps(obj, default=json_default, option=_OPTS)


def loads(data: bytes | str) -> Any:
    """Decode JSON (orjson)."""
    return orjson.loads(data)


def to_unix_seconds(value: object, field: str) -> int:
    """Convert a timestamp to integer Unix seconds, or raise ``ValidationError``.

    Accepts ``int``/``float`` seconds and ``datetime``. Aware datetimes are converted
    through UTC; naive datetimes are taken to be UTC already. Millisecond values
    (13 digits) and negative values are rejected rather than silently misread.
    """
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_UTC)
        try:
            secs = int(value.timestamp())
        except (OverflowError, ValueError, OSError):
            secs = -1 if value.year < 1970 else _MAX_SECONDS + 1
        if secs < 0:
            raise ValidationError(
                field,
                f"{value.isoformat()} is before 1970-01-01; Customer.io timestamps are "
                "Unix seconds and cannot be negative",
            )
        if secs > _MAX_SECONDS:
            raise ValidationError(
                field,
                f"{value.isoformat()} is too far in the future (after the year 5138) "
                "for a Unix-seconds timestamp",
            )
        return secs
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(
            field, f"must be Unix seconds (int) or a datetime, got {type(value).__name__}"
        )
    else:
        if value != value or value in (float("inf"), float("-inf")):
            raise ValidationError(field, "must be a finite number")
        secs = int(value)
    if secs < 0:
        raise ValidationError(field, f"must not be negative, got {secs}")
    if secs > _MAX_SECONDS:
        raise ValidationError(
            field, f"{secs} looks like milliseconds; Customer.io timestamps are Unix seconds"
        )
    return secs


_CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Two base32 digits per lookup: 13 lookups encode the 130-bit (128 + 2 pad) ULID.
_PAIRS: Final = tuple(a + b for a in _CROCKFORD for b in _CROCKFORD)
_time_ns = time.time_ns


_ulid_prefix: tuple[int, str, int] = (-1, "", 0)
# Random 16-character suffixes (80 random bits each: every character is 5 bits of one
# random byte), made 1024 at a time with os.urandom and bytes.translate, both in C,
# so an id costs a slice of a prepared string, not Python arithmetic on an integer.
_BYTE_TO_CHAR: Final = bytes(ord(_CROCKFORD[b & 31]) for b in range(256))
_suffixes: list[str] = []
# The 1024 slices of a refill's text, cut with map() (in C, not a Python loop).
_SUFFIX_SLICES: Final = tuple(slice(i, i + 16) for i in range(0, 16 * 1024, 16))


def _refill() -> None:
    text = os.urandom(16 * 1024).translate(_BYTE_TO_CHAR).decode("ascii")
    _suffixes.extend(map(text.__getitem__, _SUFFIX_SLICES))


def _forget_suffixes() -> None:
    # A forked child must never hand out suffixes its parent will also use.
    _suffixes.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_suffixes)


def ulid_time_prefix(ms: int) -> str:
    """A ULID's first 10 characters: Unix milliseconds ``ms`` in Crockford base32."""
    p = _PAIRS
    return (
        p[(ms >> 40) & 1023]
        + p[(ms >> 30) & 1023]
        + p[(ms >> 20) & 1023]
        + p[(ms >> 10) & 1023]
        + p[ms & 1023]
    )


def new_ulid() -> str:
    """A new ULID string (48-bit millisecond time + 80 random bits), 26 characters."""
    return new_event_id()[0]


def new_event_id() -> tuple[str, int]:
    """A new ULID and the current Unix second, from one clock read (the hot path)."""
    global _ulid_prefix
    ms = _time_ns() // 1_000_000
    cached_ms, prefix, secs = _ulid_prefix
    if ms != cached_ms:
        # The first 10 characters encode the millisecond; reuse them within it. (A
        # tuple, swapped in one assignment, so threads never see half an update.)
        prefix = ulid_time_prefix(ms)
        secs = ms // 1000
        _ulid_prefix = (ms, prefix, secs)
    while True:
        try:
            # list.pop is atomic: no two callers ever share a suffix.
            return prefix + _suffixes.pop(), secs
        except IndexError:
            _refill()
