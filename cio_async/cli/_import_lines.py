"""The line formats of ``cio-async import``: NDJSON objects and CSV rows to operations.

Both formats become the same *line object* (a dict in the NDJSON schema) and go
through ``build()``, which uses the SDK's own builders, so a line is accepted exactly
when the client would accept the call. Every problem raises ``ValidationError``
naming the field of the line.

NDJSON, one object per line::

    {"type": "identify", "id": "42", "attributes": {"plan": "pro"}, "timestamp": 1700000000}
    {"type": "track", "email": "ada@example.com", "name": "purchase", "data": {"amount": 30}}
    {"type": "page", "cio_id": "a3000001", "url": "/pricing"}
    {"type": "screen", "id": "42", "name": "Settings"}
    {"type": "delete", "id": "43"}

CSV (or TSV) has a header line; every row is one operation of ``--kind`` (default
``identify``). See ``CsvColumns`` for how columns are read.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from .._errors import ValidationError
from .._model import Operation, Person

__all__ = [
    "KINDS",
    "CsvColumns",
    "HeaderError",
    "LineOptions",
    "build",
    "line_event_id",
    "parse_ndjson",
]

#: Operation kinds a line can carry (``event`` is accepted as another name for ``track``).
KINDS: Final = ("identify", "track", "page", "screen", "delete")
_ALIASES: Final = {"event": "track"}
PERSON_KEYS: Final = ("id", "email", "cio_id", "phone")
_COMMON: Final = frozenset({"type", "identifiers", "timestamp", *PERSON_KEYS})
_EVENT_FIELDS: Final = frozenset({"data", "attributes", "event_id"})
_FIELDS: Final[Mapping[str, frozenset[str]]] = {
    "identify": _COMMON | {"attributes", "update_only"},
    "track": _COMMON | _EVENT_FIELDS | {"name"},
    "screen": _COMMON | _EVENT_FIELDS | {"name"},
    "page": _COMMON | _EVENT_FIELDS | {"url", "name"},
    "delete": _COMMON,
}
_CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


@dataclass(frozen=True, slots=True)
class LineOptions:
    """Command-line defaults that shape how lines are read.

    ``kind``: the type of lines that name none (CSV: of every row). ``event``: the
    event name of track/screen lines that name none (CSV: of every row, and a
    ``name`` column is then ordinary data). ``id_column``: the CSV column holding
    the person's identifier.
    """

    kind: str | None = None
    event: str | None = None
    id_column: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"kind": self.kind, "event": self.event, "id_column": self.id_column}


def line_event_id(salt: bytes, line: int, raw: bytes) -> str:
    """A ULID-shaped event id (26 Crockford base32 characters) derived from the input's
    identity (``salt``), the line number and the line's bytes.

    The same line of the same input always gets the same id, so a line sent again
    after a crash (delivered, but not yet in the checkpoint) is ignored by
    Customer.io as a repeat. A changed line is a different event and gets a new id.
    """
    digest = hashlib.sha256(b"cio-async import\x00" + salt + line.to_bytes(8, "big") + raw).digest()
    n = int.from_bytes(digest[:16], "big")  # 128 bits: the first character stays 0-7
    return "".join(_CROCKFORD[(n >> shift) & 31] for shift in range(125, -1, -5))


def parse_timestamp(value: object, field: str = "timestamp") -> object:
    """Unix seconds as given, or a string: digits, or an ISO 8601 date-time (a trailing
    ``Z`` means UTC; no offset means UTC)."""
    if not isinstance(value, str):
        return value  # numbers are checked by the builders
    s = value.strip()
    try:
        return int(s)
    except ValueError:
        pass
    try:
        return float(s)
    except ValueError:
        pass
    iso = s[:-1] + "+00:00" if s.endswith(("Z", "z")) else s
    try:
        return _dt.datetime.fromisoformat(iso)
    except ValueError:
        raise ValidationError(
            field, f"must be Unix seconds or an ISO 8601 date-time, got {value!r}"
        ) from None


def parse_ndjson(raw: bytes) -> dict[str, Any]:
    """One NDJSON line to a line object (not yet validated)."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        hint = ""
        if raw.lstrip().startswith(b"["):
            hint = "; a JSON array? put one object per line, e.g. jq -c '.[]' FILE"
        raise ValidationError("line", f"is not valid JSON ({exc}){hint}") from None
    if not isinstance(obj, dict):
        hint = ""
        if isinstance(obj, list):
            hint = "; put one object per line, e.g. jq -c '.[]' FILE"
        raise ValidationError("line", f"must be a JSON object, got {_json_type(obj)}{hint}")
    return obj


def _json_type(v: object) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    return "an object"


def _person(obj: Mapping[str, Any]) -> Person:
    given = [(k, obj[k]) for k in PERSON_KEYS if obj.get(k) is not None]
    idents = obj.get("identifiers")
    if idents is not None:
        if not isinstance(idents, Mapping) or len(idents) != 1:
            raise ValidationError(
                "identifiers", "must be an object with exactly one of id, email, cio_id, phone"
            )
        ((k, v),) = idents.items()
        if k not in PERSON_KEYS:
            raise ValidationError("identifiers", f"{k!r} is not one of id, email, cio_id, phone")
        given.append((k, v))
    if len(given) != 1:
        got = f" (got {', '.join(k for k, _ in given)})" if given else ""
        raise ValidationError(
            "id", f"give the person as exactly one of id, email, cio_id or phone{got}"
        )
    kind, value = given[0]
    try:
        return Person(**{kind: value})
    except ValidationError as exc:
        raise ValidationError(kind, exc.message) from None


def _mapping(obj: Mapping[str, Any], field: str) -> Mapping[str, Any] | None:
    value = obj.get(field)
    if value is not None and not isinstance(value, Mapping):
        raise ValidationError(field, f"must be an object, got {_json_type(value)}")
    return value


def _prefixed(prefix: str, fn: Callable[[], Operation]) -> Operation:
    # The builders name their own arguments ("attributes", "id"); say it in the
    # line's terms instead ("data", "event_id").
    try:
        return fn()
    except ValidationError as exc:
        field = exc.field
        if field == "attributes" or field.startswith("attributes."):
            field = prefix + field[len("attributes") :]
        elif field == "id":
            field = "event_id"
        raise ValidationError(field, exc.message) from None


def build(obj: Mapping[str, Any], options: LineOptions, event_id: Callable[[], str]) -> Operation:
    """Validate a line object and build its operation.

    ``event_id()`` supplies the id of an event that brings none (``event_id`` field).
    """
    type_ = obj.get("type", options.kind)
    if type_ is None:
        raise ValidationError(
            "type", f"is required: one of {', '.join(KINDS)} (or pass --kind for every line)"
        )
    if not isinstance(type_, str) or _ALIASES.get(type_, type_) not in _FIELDS:
        raise ValidationError("type", f"must be one of {', '.join(KINDS)}, got {type_!r}")
    kind = _ALIASES.get(type_, type_)
    allowed = _FIELDS[kind]
    for key in obj:
        if key not in allowed:
            raise ValidationError(
                key, f"is not a field of a {kind} line (fields: {', '.join(sorted(allowed))})"
            )
    person = _person(obj)
    ts = obj.get("timestamp")
    timestamp = None if ts is None else parse_timestamp(ts)
    if kind == "delete":
        return person.delete()
    if kind == "identify":
        attrs = _mapping(obj, "attributes")
        update_only = obj.get("update_only", False)
        if not isinstance(update_only, bool):
            raise ValidationError("update_only", "must be true or false")
        return person.identify(attrs, timestamp=timestamp, update_only=update_only)

    if obj.get("data") is not None and obj.get("attributes") is not None:
        raise ValidationError("data", "give the event data as data or attributes, not both")
    data_field = "data" if obj.get("data") is not None else "attributes"
    data = _mapping(obj, data_field)
    eid = obj.get("event_id")
    if eid is None:
        eid = event_id()
    elif not isinstance(eid, str):
        raise ValidationError("event_id", "must be a string (a ULID)")
    if kind == "page":
        if obj.get("url") is not None and obj.get("name") is not None:
            raise ValidationError("url", "give the page as url or name, not both")
        url = obj.get("url", obj.get("name"))
        if url is None:
            raise ValidationError("url", "is required for a page line")
        return _prefixed(data_field, lambda: person.page(url, data, id=eid, timestamp=timestamp))
    name = obj.get("name", options.event)
    if name is None:
        raise ValidationError("name", f"is required for a {kind} line (or pass --event NAME)")
    builder = person.screen if kind == "screen" else person.event
    return _prefixed(data_field, lambda: builder(name, data, id=eid, timestamp=timestamp))


class HeaderError(ValueError):
    """The CSV header cannot be used; no row of the file could be read."""


class CsvColumns:
    """Turns CSV rows into line objects, by header name.

    - The person: the ``--id-column`` if given (an ``id``, ``email``, ``cio_id`` or
      ``phone`` column means that identifier; any other column is read like the SDK
      reads a string: an email if it contains ``@``, a cio_id if it starts with
      ``cio_``, otherwise an id), else the first of ``id``, ``cio_id``, ``email``,
      ``phone`` in the header.
    - ``timestamp``: the operation's time (Unix seconds or ISO 8601), not an attribute.
    - track and screen: ``name`` is the event name unless ``--event`` gives one;
      ``event_id`` passes an id through. page: ``url`` is the page.
    - Every other column is an attribute (identify) or event data (track, page,
      screen); delete ignores them. Values stay strings; empty cells are left out.
    """

    def __init__(self, header: Sequence[str], options: LineOptions) -> None:
        names = [h.strip() for h in header]
        seen: set[str] = set()
        for i, name in enumerate(names, 1):
            if not name:
                raise HeaderError(f"column {i} of the header has no name")
            if name in seen:
                raise HeaderError(f"the header names column {name!r} twice")
            seen.add(name)
        self.names = names
        self.kind = options.kind or "identify"
        if options.id_column is not None:
            if options.id_column not in seen:
                raise HeaderError(
                    f"--id-column {options.id_column!r} is not in the header "
                    f"(columns: {', '.join(names)})"
                )
            self.id_column = options.id_column
        else:
            found = [k for k in ("id", "cio_id", "email", "phone") if k in seen]
            if not found:
                raise HeaderError(
                    "no identifier column: the header needs an id, cio_id, email or phone "
                    "column (or pass --id-column NAME)"
                )
            self.id_column = found[0]
        self.id_kind = self.id_column if self.id_column in PERSON_KEYS else None
        special = {"timestamp": "timestamp"}
        if self.kind in ("track", "screen"):
            special["event_id"] = "event_id"
            if options.event is None:
                special["name"] = "name"
        elif self.kind == "page":
            special["event_id"] = "event_id"
            special["url"] = "url"
        self.special = special
        self.event = options.event if self.kind in ("track", "screen") else None
        if self.kind in ("track", "screen") and self.event is None and "name" not in seen:
            raise HeaderError(
                f"a {self.kind} CSV needs a name column or --event NAME for every row"
            )
        if self.kind == "page" and "url" not in seen:
            raise HeaderError("a page CSV needs a url column")

    def line_object(self, row: Sequence[str]) -> dict[str, Any]:
        """One data row to a line object; ``ValidationError`` names the column."""
        if len(row) > len(self.names):
            raise ValidationError(
                "line", f"has {len(row)} fields; the header has {len(self.names)}"
            )
        obj: dict[str, Any] = {"type": self.kind}
        values: dict[str, str] = {}
        for name, value in zip(self.names, row, strict=False):  # short rows: cells missing
            if value == "":
                continue
            if name == self.id_column:
                kind = self.id_kind
                if kind is None:
                    v = value.strip()
                    kind = "email" if "@" in v else "cio_id" if v.startswith("cio_") else "id"
                obj[kind] = value
            elif name in self.special:
                obj[self.special[name]] = value
            else:
                values[name] = value
        if not any(k in obj for k in PERSON_KEYS):
            raise ValidationError(self.id_column, "is empty; every row needs the person")
        if self.event is not None:
            obj["name"] = self.event
        if values and self.kind != "delete":
            obj["attributes" if self.kind == "identify" else "data"] = values
        return obj
