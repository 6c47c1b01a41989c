"""The event encoder: the admission path for person events (track, page, screen).

``AsyncCustomerIO.track`` is the SDK's hottest call: a web handler pays for it on
every request. The general path validates the event, encodes it (``encode_event``)
and hands it to the delivery core. This module does the common case in one closure per
action, which validates and encodes the event in a single frame, its state held in
closure cells (the cheapest variables CPython has) rather than on objects, then makes
one ``offer`` of the ready bytes to the accumulator (every queue backend gets the same
path):

- the identifier part of the payload is cached per person string (recently seen
  people cost one dict lookup instead of five checks and an encode), bounded;
- the event name part is cached per name, bounded;
- the ULID's time prefix is made once per millisecond and the timestamp once per
  second; the random suffixes come from the shared pool in ``_encode``.

The closures and ``encode_event`` (the general path) join the same cached pieces, so
they make the same bytes (a property test holds them to it). An event a closure does
not encode (a ``Person`` object or another non-string reference, a caller's own id or
timestamp, a ``Mapping`` that is not a dict, a value orjson cannot encode) returns
``None`` and the caller encodes it with ``encode_event``, which gives the same result
or the same clear error. An event the accumulator declines (a full
queue, another thread, a closing client, a backend whose appends commit later) comes
back with its bytes, which the caller admits the general way without encoding again.
Nothing is admitted unless the whole event was valid.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from orjson import dumps

from .._encode import (
    _OPTS,
    _PAIRS,
    _refill,
    _suffixes,
    json_default,
    new_event_id,
    to_unix_seconds,
    ulid_time_prefix,
)
from .._errors import ValidationError
from .._model import PersonRef, person_ident
from .._validate import (
    MAX_OPERATION_BYTES,
    check_finite,
    check_id,
    check_operation_size,
    check_text,
    encode_checked,
    event_name_rule,
    has_non_finite,
)
from ._accumulator import DECLINED

#: ``(person, name, data) ->``: the event id when admitted; ``(event id,)`` when
#: admitted and the caller should yield to the loop; ``(event id, payload)`` when
#: encoded but declined by the accumulator (admit ``payload`` the general way); or
#: ``None``: not handled here (encode with ``encode_event``).
EncodeAdmit = Callable[[object, object, object], "str | tuple[str] | tuple[str, bytes] | None"]

#: Recently seen person strings -> ``{"id":"..."},"name":``. Shared by every client and
#: action (it depends on the string alone). About 200 bytes an entry: 3 MB at most.
_IDENTS: dict[str, bytes] = {}
_MAX_IDENTS: Final = 16_384
_MAX_NAMES: Final = 4096

_KIND_OPEN: Final = {k: b'{"%b":' % k.encode() for k in ("id", "email", "cio_id", "phone")}
_NAME_KEY: Final = b'},"name":'
#: Event names -> ``"name","id":"``, per action; shared by both encoding paths.
_NAMES: Final[dict[str, dict[str, bytes]]] = {"event": {}, "page": {}, "screen": {}}
_HEADS: Final = {a: b'{"type":"person","action":"%b","identifiers":' % a.encode() for a in _NAMES}
#: Per action, recently seen person strings -> that action's head and the identifier
#: part joined (one piece fewer to join per event on the fast path).
_HEADED: Final[dict[str, dict[str, bytes]]] = {a: {} for a in _NAMES}


def encode_event(
    person: PersonRef,
    action: str,
    name: str,
    attributes: Mapping[str, Any] | None,
    id: str | None,
    timestamp: object,
) -> tuple[bytes, str]:
    """Validate and encode a person event/page/screen; return ``(payload, event_id)``.

    The general path, for what ``event_encoder``'s closures do not take (a ``Person``,
    a caller's id or timestamp, a ``Mapping`` that is not a dict, bad input that needs
    its clear error). It builds the payload from the same cached pieces, so both paths
    make the same bytes.
    """
    if type(person) is str:
        ident = _IDENTS.get(person) or _ident(person)
    else:
        kind, value = person_ident(person)
        ident = b"".join((_KIND_OPEN[kind], dumps(value), _NAME_KEY))
    names = _NAMES[action]
    name_part = names.get(name) if type(name) is str else None
    if name_part is None:
        field, limit = event_name_rule(action)
        check_text(field, name, limit)
        if len(names) >= _MAX_NAMES:
            names.clear()
        name_part = names[name] = dumps(name) + b',"id":"'
    if id is None:
        event_id, now = new_event_id()
        id_bytes = event_id.encode()
    else:
        event_id, now = check_id("id", id), int(time.time())
        id_bytes = dumps(event_id)[1:-1]  # a caller's id may need escaping
    ts = now if timestamp is None else to_unix_seconds(timestamp, "timestamp")
    if attributes:
        if type(attributes) is not dict and not isinstance(attributes, Mapping):
            raise ValidationError("attributes", "must be a mapping")
        try:
            encoded = dumps(attributes, json_default, _OPTS)
        except (TypeError, ValueError):
            encode_checked("operation.attributes", attributes)  # names the bad value
            raise
        if encoded.find(b"null") >= 0:
            check_finite("operation.attributes", attributes)  # NaN/inf encode as null
        payload = b"".join(
            (
                _HEADS[action],
                ident,
                name_part,
                id_bytes,
                b'","timestamp":%d,"attributes":' % ts,
                encoded,
                b"}",
            )
        )
    else:
        payload = b"".join((_HEADS[action], ident, name_part, id_bytes, b'","timestamp":%d}' % ts))
    if len(payload) > MAX_OPERATION_BYTES:
        check_operation_size(payload)
    return payload, event_id


def _ident(person: str) -> bytes:
    kind, value = person_ident(person)  # validates; raises ValidationError
    piece = b"".join((_KIND_OPEN[kind], dumps(value), _NAME_KEY))
    if len(_IDENTS) >= _MAX_IDENTS:
        _IDENTS.clear()  # cheaper than an LRU on the hot path; refills with who is active
    _IDENTS[person] = piece
    return piece


def _slow_clock(ms: int) -> tuple[str, bytes, bytes, int]:
    """For the millisecond ``ms``: the ULID's first eight characters, the timestamp
    pieces, and the ``time_ns()`` at which the next of them changes."""
    secs = ms // 1000
    next_change = min((secs + 1) * 1000, ((ms >> 10) + 1) << 10) * 1_000_000
    return (
        ulid_time_prefix(ms)[:8],
        b'","timestamp":%d,"attributes":' % secs,
        b'","timestamp":%d}' % secs,
        next_change,
    )


def no_fast_path(person: object, name: object, data: object) -> None:
    """The encoder where there is none (no track credentials): always the general path."""
    return None


def event_encoder(action: str, offer: Callable[[bytes], int]) -> EncodeAdmit:
    """The encoder for ``action`` (``event``, ``page`` or ``screen``), admitting
    through ``offer`` (``Accumulator.offer``). See the module docstring."""
    head = _HEADS[action]
    name_field, name_limit = event_name_rule(action)
    names = _NAMES[action]
    headed = _HEADED[action]
    time_ns = time.time_ns
    pop = _suffixes.pop  # list.pop is atomic: no two callers share a suffix
    refill = _refill
    pairs = _PAIRS
    next_ms = next_slow = 0  # time_ns() values from which the cached pieces are stale
    prefix = high = ""
    ts_attrs = ts_end = b""

    def headed_of(person: str) -> bytes:
        if len(headed) >= _MAX_IDENTS:
            headed.clear()  # as ``_ident`` does
        piece = headed[person] = head + (_IDENTS.get(person) or _ident(person))
        return piece

    def name_part_of(name: object) -> bytes:
        check_text(name_field, name, name_limit)  # raises for a bad name, named
        if len(names) >= _MAX_NAMES:
            names.clear()
        part = names[name] = dumps(name) + b',"id":"'  # type: ignore[index]
        return part

    def encode_admit(
        person: object, name: object, data: object
    ) -> str | tuple[str] | tuple[str, bytes] | None:
        # Every line here runs on every call: see the module docstring before adding one.
        nonlocal next_ms, next_slow, high, prefix, ts_attrs, ts_end
        # The caches hold str keys only, so a hit is a valid str (or one equal to it);
        # anything else misses and is checked on the way in. Event names repeat (a
        # subscript, its rare miss a KeyError); people may not (``get``).
        try:
            pre = headed.get(person)  # type: ignore[call-overload]
        except TypeError:
            return None  # unhashable: the general path names it
        if pre is None:
            if type(person) is not str:
                return None
            pre = headed_of(person)
        try:
            name_part = names[name]  # type: ignore[index]
        except (KeyError, TypeError):
            name_part = name_part_of(name)
        if data:
            if type(data) is not dict:
                return None  # a Mapping, or not a mapping: the general path checks it
            try:
                encoded = dumps(data, json_default, _OPTS)
            except (TypeError, ValueError):
                return None  # the general path names the bad value
            # NaN/inf encode as null: the general path refuses them by name.
            # (``partition``: bytes ``in`` first tries the needle as an int, a raised
            # and cleared TypeError, and ``find`` parses its arguments the slow way on
            # Python 3.11; ``partition`` takes one argument, the cheapest call here.)
            if encoded.partition(b"null")[1] and has_non_finite(data):
                return None
        else:
            encoded = None
        now = time_ns()
        if now >= next_ms:
            # Once per millisecond: the id's last two time characters. The first
            # eight change every 1,024 ms and the timestamp every second: both only
            # when ``next_slow`` passes.
            ms = now // 1_000_000
            next_ms = (ms + 1) * 1_000_000
            if now >= next_slow:
                high, ts_attrs, ts_end, next_slow = _slow_clock(ms)
            prefix = high + pairs[ms & 1023]
        try:
            eid = prefix + pop()
        except IndexError:
            refill()
            eid = prefix + pop()
        if encoded is not None:
            payload = b"".join((pre, name_part, eid.encode(), ts_attrs, encoded, b"}"))
            if len(payload) > MAX_OPERATION_BYTES:
                check_operation_size(payload)  # raises the ValidationError
        else:
            payload = b"".join((pre, name_part, eid.encode(), ts_end))
        admitted = offer(payload)
        if not admitted:  # ADMITTED
            return eid
        if admitted == DECLINED:
            return (eid, payload)
        return (eid,)

    return encode_admit


__all__ = ["EncodeAdmit", "encode_event", "event_encoder", "no_fast_path"]
