"""The admission fast path for person events (track, page, screen).

``AsyncCustomerIO.track`` is the SDK's hottest call: a web handler pays for it on
every request. The general path validates the event, encodes it (``event_payload``)
and hands it to the pipeline, three Python frames and about twenty thousand machine
instructions. This module fuses the common case into one closure per action, which
validates, encodes and queues the event in a single frame, its state held in closure
cells (the cheapest variables CPython has) rather than on objects:

- the identifier part of the payload is cached per person string (recently seen
  people cost one dict lookup instead of five checks and an encode), bounded;
- the event name part is cached per name, bounded;
- the ULID's time prefix is made once per millisecond and the timestamp once per
  second; the random suffixes come from the shared pool in ``_encode``.

The bytes are exactly those ``event_payload`` makes (a test holds them to it). Anything
unusual (a ``Person`` object or another non-string reference, a caller's own id or
timestamp, a ``Mapping`` that is not a dict, a value orjson cannot encode, a full queue,
another thread, a closing client) returns ``None`` and the caller takes the general
path, which gives the same result or the same clear error. Nothing is admitted unless
the whole event was valid.
"""

from __future__ import annotations

import time
from asyncio import events as _events
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from orjson import dumps

from ._encode import _OPTS, _refill, _suffixes, json_default, ulid_time_prefix
from ._model import person_ident
from ._queue import MemoryQueue
from ._validate import MAX_OPERATION_BYTES, check_text, event_name_rule, has_non_finite

if TYPE_CHECKING:
    from ._pipeline import Pipeline

#: ``(person, name, data) -> event id``, a 1-tuple ``(event id,)`` when admitted and
#: the caller should yield to the loop, or ``None``: take the general path.
FastAdmit = Callable[[object, object, object], "str | tuple[str] | None"]

#: Recently seen person strings -> ``{"id":"..."},"name":``. Shared by every client and
#: action (it depends on the string alone). About 200 bytes an entry: 3 MB at most.
_IDENTS: dict[str, bytes] = {}
_MAX_IDENTS: Final = 16_384
_MAX_NAMES: Final = 4096
# C-level, and unlike get_running_loop() returns None (not raises) off the loop.
_running_loop = _events._get_running_loop


_KIND_OPEN: Final = {k: b'{"%b":' % k.encode() for k in ("id", "email", "cio_id", "phone")}
_NAME_KEY: Final = b'},"name":'


def _ident(person: str) -> bytes:
    kind, value = person_ident(person)  # validates; raises ValidationError
    piece = b"".join((_KIND_OPEN[kind], dumps(value), _NAME_KEY))
    if len(_IDENTS) >= _MAX_IDENTS:
        _IDENTS.clear()  # cheaper than an LRU on the hot path; refills with who is active
    _IDENTS[person] = piece
    return piece


def no_fast_path(person: object, name: object, data: object) -> None:
    """The fast path where there is none (another queue backend, no track credentials)."""
    return None


def event_admitter(pipeline: Pipeline, action: str) -> FastAdmit:
    """The fused fast path for ``action`` (``event``, ``page`` or ``screen``) on
    ``pipeline``'s in-memory queue. See the module docstring for what it declines."""
    q = pipeline._queue
    if type(q) is not MemoryQueue:
        return no_fast_path
    p = pipeline
    items = q._items
    max_events, max_bytes = p._max_events, p._max_bytes
    batch_events, batch_bytes = p._batch_events, p._batch_bytes
    linger = p._policy.linger
    head = b'{"type":"person","action":"%b","identifiers":' % action.encode()
    name_field, name_limit = event_name_rule(action)
    names: dict[str, bytes] = {}
    idents = _IDENTS
    make_ident = _ident
    running_loop = _running_loop
    time_ns = time.time_ns
    pop = _suffixes.pop  # list.pop is atomic: no two callers share a suffix
    refill = _refill
    last_ms = last_s = -1
    prefix = ""
    prefix_b = ts_attrs = ts_end = b""
    since_yield = 0

    def admit(person: object, name: object, data: object) -> str | tuple[str] | None:
        nonlocal last_ms, last_s, prefix, prefix_b, ts_attrs, ts_end, since_yield
        loop = p._fast_loop
        if (
            loop is None
            or running_loop() is not loop
            or type(person) is not str
            or q.events >= max_events  # full: the policy decides, before any encoding
        ):
            return None
        ident = idents.get(person)
        if ident is None:
            ident = make_ident(person)
        name_part = names.get(name) if type(name) is str else None
        if name_part is None:
            check_text(name_field, name, name_limit)
            if len(names) >= _MAX_NAMES:
                names.clear()
            name_part = names[name] = dumps(name) + b',"id":"'  # type: ignore[index]
        ms = time_ns() // 1_000_000
        if ms != last_ms:
            last_ms = ms
            prefix = ulid_time_prefix(ms)  # once per millisecond
            prefix_b = prefix.encode()
            if ms // 1000 != last_s:
                last_s = ms // 1000
                ts_attrs = b'","timestamp":%d,"attributes":' % last_s
                ts_end = b'","timestamp":%d}' % last_s
        try:
            suffix = pop()
        except IndexError:
            refill()
            suffix = pop()
        if data:
            if type(data) is not dict:
                return None  # a Mapping, or not a mapping: the general path checks it
            try:
                encoded = dumps(data, json_default, _OPTS)
            except (TypeError, ValueError):
                return None  # the general path names the bad value
            # NaN/inf encode as null: the general path rejects them. (``find``, not
            # ``in``: bytes ``in`` first tries the needle as an int, a raised and
            # cleared TypeError on every call.)
            if encoded.find(b"null") >= 0 and has_non_finite(data):
                return None
            payload = b"".join(
                (head, ident, name_part, prefix_b, suffix.encode(), ts_attrs, encoded, b"}")
            )
        else:
            payload = b"".join((head, ident, name_part, prefix_b, suffix.encode(), ts_end))
        size = len(payload)
        if size > MAX_OPERATION_BYTES or q.nbytes + size > max_bytes:
            return None  # too large, or no room for its bytes: the policy decides
        items.append(payload)
        q.events += 1
        q.nbytes += size
        if q.events >= batch_events or q.nbytes >= batch_bytes:
            if not p._woken:
                p._wake_for_batch()
        elif p._timer is None and not p._linger_due:
            p._timer = loop.call_later(linger, p._linger_elapsed)
        since_yield += 1
        if since_yield >= batch_events:
            # Once per batch's worth: a producer awaiting in a tight loop must not
            # starve the sender (an await of a finished call never yields).
            since_yield = 0
            return (prefix + suffix,)
        return prefix + suffix

    return admit


__all__ = ["FastAdmit", "event_admitter", "no_fast_path"]
