"""What the App API sends: transactional messages and broadcast triggers.

Every message is a frozen, keyword-only dataclass validated when it is built, so bad
input fails at the call with a ``ValidationError`` naming the field. The limits are
the App API reference's: exactly one identifier, at most 15 recipients across
``to``/``cc``/``bcc``, attachments under 2 MB in all (base64-encoded), ``send_at`` at
most 90 days ahead, at most 10,000 broadcast recipients.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

from .._encode import to_unix_seconds
from .._errors import ValidationError
from .._model import Person, PersonRef, as_person
from .._validate import check_id, check_text, encode_checked, short_repr

__all__ = [
    "SendResult",
    "TransactionalEmail",
    "TransactionalInApp",
    "TransactionalInbox",
    "TransactionalMessage",
    "TransactionalPush",
    "TransactionalSMS",
    "TransactionalWhatsApp",
    "broadcast_body",
    "check_filter",
]

MAX_RECIPIENTS: Final = 15
#: "The total size of all attachments must be less than 2 MB" (base64 text). Read as
#: 2,000,000 bytes: the stricter reading never lets a 413 through.
MAX_ATTACHMENT_BYTES: Final = 2_000_000
MAX_SEND_AHEAD: Final = 90 * 86_400
MAX_BROADCAST_RECIPIENTS: Final = 10_000
_FILTER_KEYS: Final = frozenset({"and", "or", "not", "segment", "attribute"})
_now = time.time


def _opt_text(name: str, value: object, max_bytes: int = 100_000) -> None:
    if value is not None:
        check_text(name, value, max_bytes)


def _opt_bool(name: str, value: object) -> None:
    if value is not None and not isinstance(value, bool):
        raise ValidationError(name, f"must be a bool, got {type(value).__name__}")


def _opt_mapping(name: str, value: object) -> None:
    if value is None:
        return
    if not isinstance(value, Mapping):
        raise ValidationError(name, f"must be a mapping, got {type(value).__name__}")
    encode_checked(name, value)


def _split_addresses(value: str) -> list[str]:
    """Split a comma-separated address list, keeping commas inside quoted display
    names (``"Lovelace, Ada" <ada@example.com>``)."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def _addresses(name: str, value: object, required: bool) -> str | None:
    """``to``/``cc``/``bcc`` as Customer.io wants them: one comma-separated string."""
    if value is None:
        if required:
            raise ValidationError(name, "is required")
        return None
    if isinstance(value, str):
        check_text(name, value, 100_000)
        return value
    if isinstance(value, Sequence):
        items = list(value)
        if not items:
            raise ValidationError(name, "must not be empty")
        for i, item in enumerate(items):
            check_text(f"{name}[{i}]", item, 1000)
        return ", ".join(items)
    raise ValidationError(
        name, f"must be a string or a list of strings, got {type(value).__name__}"
    )


def _encode_attachments(value: object) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValidationError("attachments", "must map file names to bytes or base64 text")
    out: dict[str, str] = {}
    total = 0
    for name, content in value.items():
        where = f"attachments[{short_repr(name)}]"
        check_text(where, name, 1000)
        stem, dot, ext = str(name).rpartition(".")
        if not dot or not stem or not ext:
            raise ValidationError(where, "the file name needs an extension, e.g. invoice.pdf")
        if isinstance(content, (bytes, bytearray, memoryview)):
            text = base64.b64encode(bytes(content)).decode("ascii")
        elif isinstance(content, str):
            try:
                base64.b64decode(content, validate=True)
            except (binascii.Error, ValueError):
                raise ValidationError(
                    where, "a str must be base64-encoded already; pass bytes to have it encoded"
                ) from None
            text = content
        else:
            raise ValidationError(
                where, f"must be bytes or base64 text, not {type(content).__name__}"
            )
        total += len(text)
        out[name] = text
    if total >= MAX_ATTACHMENT_BYTES:
        raise ValidationError(
            "attachments",
            f"total {total:,} bytes base64-encoded; Customer.io takes less than 2 MB",
        )
    return out


@dataclass(frozen=True, kw_only=True)
class SendResult:
    """Customer.io's answer to a transactional send."""

    delivery_id: str
    #: Unix seconds when the message was queued.
    queued_at: int | None
    #: Unix seconds it is scheduled for, when ``send_at`` was in the future.
    send_at: int | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def _from_json(cls, data: Any) -> SendResult:
        body = data if isinstance(data, Mapping) else {}

        def seconds(v: Any) -> int | None:
            return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

        return cls(
            delivery_id=str(body.get("delivery_id", "")),
            queued_at=seconds(body.get("queued_at")),
            send_at=seconds(body.get("send_at")),
            raw=body,
        )


@dataclass(frozen=True, kw_only=True)
class TransactionalMessage:
    """Fields every transactional message shares. Build one of the subclasses
    (``TransactionalEmail``, ``TransactionalPush``, ...) and pass it to
    ``client.app.send()``.

    ``transactional_message_id`` is the message's numeric id or its trigger name;
    ``identifiers`` names exactly one person (``"42"``, ``Person(email=...)``,
    ``{"cio_id": ...}``; not a phone number). ``send_at`` (Unix seconds or a
    datetime) schedules it at most 90 days ahead; a past time sends now. ``extra``
    carries any other documented field as is.
    """

    channel: ClassVar[str] = ""
    _NAMES: ClassVar[Mapping[str, str]] = {}

    transactional_message_id: int | str
    identifiers: PersonRef
    message_data: Mapping[str, Any] | None = None
    send_at: dt.datetime | int | float | None = None
    language: str | None = None
    disable_message_retention: bool | None = None
    queue_draft: bool | None = None
    extra: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        self._validate()

    def _set(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)

    def _validate(self) -> None:
        tid = self.transactional_message_id
        if isinstance(tid, bool) or not isinstance(tid, (int, str)):
            raise ValidationError(
                "transactional_message_id", "must be the message's int id or its trigger name"
            )
        if isinstance(tid, int) and tid < 1:
            raise ValidationError("transactional_message_id", "must be a positive id")
        if isinstance(tid, str):
            check_text("transactional_message_id", tid, 1000)
        person = as_person(self.identifiers, "identifiers")
        if person.kind == "phone":
            raise ValidationError("identifiers", "must be one of id, email or cio_id")
        self._set("identifiers", person)
        _opt_mapping("message_data", self.message_data)
        if self.send_at is not None:
            self._set("send_at", to_unix_seconds(self.send_at, "send_at"))
        _opt_text("language", self.language, 100)
        _opt_mapping("extra", self.extra)
        # Every flag of every subclass (annotations are strings under
        # ``from __future__ import annotations``).
        for f in dataclasses.fields(self):
            if f.type == "bool | None":
                _opt_bool(f.name, getattr(self, f.name))

    @property
    def person(self) -> Person:
        """The recipient as a ``Person``."""
        return as_person(self.identifiers, "identifiers")

    def to_body(self, now: float | None = None) -> dict[str, Any]:
        """The request body; checks ``send_at`` against the clock (``now``)."""
        if isinstance(self.send_at, int):
            ahead = self.send_at - (_now() if now is None else now)
            if ahead > MAX_SEND_AHEAD:
                raise ValidationError(
                    "send_at", f"is {ahead / 86_400:.1f} days ahead; the limit is 90 days"
                )
        body: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None or f.name == "extra":
                continue
            if f.name == "identifiers":
                value = self.person.identifiers
            body[self._NAMES.get(f.name, f.name)] = value
        if self.extra:
            for k, v in self.extra.items():
                if k in body or k in self._NAMES.values():
                    raise ValidationError(f"extra.{k}", "is a named parameter; set it directly")
                body[k] = v
        return body


@dataclass(frozen=True, kw_only=True)
class TransactionalEmail(TransactionalMessage):
    """A transactional email (``POST /v1/send/email``).

    ``to``, ``cc`` and ``bcc`` take a comma-separated string or a list (display
    names in quotes allowed), 15 recipients in all. ``attachments`` maps file names
    (with an extension) to bytes, which are base64-encoded for you, or to base64
    text; under 2 MB in all. ``from_`` is sent as ``from``. ``subject``, ``body``
    and ``from_`` override the template (required when it has no content).
    """

    channel: ClassVar[str] = "email"
    _NAMES: ClassVar[Mapping[str, str]] = {"from_": "from"}

    to: str | Sequence[str]
    cc: str | Sequence[str] | None = None
    bcc: str | Sequence[str] | None = None
    from_: str | None = None
    reply_to: str | None = None
    subject: str | None = None
    preheader: str | None = None
    body: str | None = None
    body_plain: str | None = None
    body_amp: str | None = None
    headers: Mapping[str, str] | None = None
    attachments: Mapping[str, bytes | str] | None = field(default=None, repr=False)
    fake_bcc: bool | None = None
    tracked: bool | None = None
    send_to_unsubscribed: bool | None = None
    disable_css_preprocessing: bool | None = None
    auto_create: bool | None = None

    def _validate(self) -> None:
        super()._validate()
        total = 0
        for name, required in (("to", True), ("cc", False), ("bcc", False)):
            joined = _addresses(name, getattr(self, name), required)
            self._set(name, joined)
            total += len(_split_addresses(joined)) if joined else 0
            if total > MAX_RECIPIENTS:
                raise ValidationError(
                    name,
                    f"at most {MAX_RECIPIENTS} recipients across to, cc and bcc; got {total}",
                )
        for name in ("from_", "reply_to", "subject", "preheader"):
            _opt_text(name, getattr(self, name), 10_000)
        for name in ("body", "body_plain", "body_amp"):
            _opt_text(name, getattr(self, name), 10_000_000)
        headers = self.headers
        if headers is not None and not (
            isinstance(headers, Mapping)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())
        ):
            raise ValidationError("headers", "must map header names to string values")
        self._set("attachments", _encode_attachments(self.attachments))


@dataclass(frozen=True, kw_only=True)
class TransactionalPush(TransactionalMessage):
    """A transactional push notification (``POST /v1/send/push``). ``to`` picks the
    device (``"all"``, ``"last_used"`` or a token); ``custom_device`` sends to a
    device the person does not have on their profile."""

    channel: ClassVar[str] = "push"

    to: str | None = None
    title: str | None = None
    message: str | None = None
    image_url: str | None = None
    link: str | None = None
    sound: str | None = None
    custom_data: Mapping[str, Any] | None = None
    custom_payload: Mapping[str, Any] | None = None
    custom_device: Mapping[str, Any] | None = None
    send_to_unsubscribed: bool | None = None

    def _validate(self) -> None:
        super()._validate()
        for name in ("to", "title", "message", "image_url", "link", "sound"):
            _opt_text(name, getattr(self, name), 10_000)
        for name in ("custom_data", "custom_payload", "custom_device"):
            _opt_mapping(name, getattr(self, name))


@dataclass(frozen=True, kw_only=True)
class TransactionalSMS(TransactionalMessage):
    """A transactional SMS (``POST /v1/send/sms``); ``to`` overrides the phone number
    on the person's profile."""

    channel: ClassVar[str] = "sms"

    to: str | None = None
    send_to_unsubscribed: bool | None = None

    def _validate(self) -> None:
        super()._validate()
        _opt_text("to", self.to, 1000)


@dataclass(frozen=True, kw_only=True)
class TransactionalWhatsApp(TransactionalSMS):
    """A transactional WhatsApp message (``POST /v1/send/whatsapp``)."""

    channel: ClassVar[str] = "whatsapp"


@dataclass(frozen=True, kw_only=True)
class TransactionalInApp(TransactionalMessage):
    """A transactional in-app message (``POST /v1/send/in_app``)."""

    channel: ClassVar[str] = "in_app"


@dataclass(frozen=True, kw_only=True)
class TransactionalInbox(TransactionalMessage):
    """A transactional inbox message (``POST /v1/send/inbox_message``)."""

    channel: ClassVar[str] = "inbox_message"


# -- broadcasts ------------------------------------------------------------------------


def check_filter(name: str, value: object) -> None:
    """An audience filter: ``{"and"|"or": [...]}``, ``{"not": {...}}``,
    ``{"segment": {"id": 4}}`` or ``{"attribute": {"field", "operator", "value"}}``."""
    if not isinstance(value, Mapping) or not value:
        raise ValidationError(name, "must be a non-empty filter mapping")
    if len(value) != 1 or next(iter(value)) not in _FILTER_KEYS:
        raise ValidationError(name, f"must have exactly one key of {sorted(_FILTER_KEYS)}")
    ((key, inner),) = value.items()
    where = f"{name}.{key}"
    if key in ("and", "or"):
        if not isinstance(inner, Sequence) or isinstance(inner, (str, bytes)) or not inner:
            raise ValidationError(where, "must be a non-empty list of filters")
        for i, item in enumerate(inner):
            check_filter(f"{where}[{i}]", item)
    elif key == "not":
        check_filter(where, inner)
    elif key == "segment":
        sid = inner.get("id") if isinstance(inner, Mapping) else None
        if isinstance(sid, bool) or not isinstance(sid, int):
            raise ValidationError(where, 'must be {"id": <segment id>}')
    elif not isinstance(inner, Mapping) or not inner.get("field") or not inner.get("operator"):
        raise ValidationError(where, "needs field and operator")
    encode_checked(name, value)


def _check_count(name: str, n: int) -> None:
    if not n:
        raise ValidationError(name, "must not be empty")
    if n > MAX_BROADCAST_RECIPIENTS:
        raise ValidationError(name, f"holds {n:,} items; the limit is {MAX_BROADCAST_RECIPIENTS:,}")


def _recipient_list(name: str, value: object, email: bool) -> list[str]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValidationError(name, "must be a list")
    items = [check_id(f"{name}[{i}]", v) for i, v in enumerate(value)]
    _check_count(name, len(items))
    if email:
        for i, v in enumerate(items):
            if "@" not in v:
                raise ValidationError(f"{name}[{i}]", f"{v!r} is not an email address")
    return items


def _per_user_data(value: object) -> list[dict[str, Any]]:
    name = "per_user_data"
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise ValidationError(name, "must be a list of {id or email, data} mappings")
    out = []
    for i, item in enumerate(value):
        where = f"{name}[{i}]"
        if not isinstance(item, Mapping):
            raise ValidationError(where, "must be a mapping")
        keys = [k for k in ("id", "email") if item.get(k) is not None]
        if len(keys) != 1:
            raise ValidationError(where, "needs exactly one of id or email")
        unknown = set(item) - {"id", "email", "data"}
        if unknown:
            raise ValidationError(where, f"unknown keys {sorted(unknown)}")
        entry: dict[str, Any] = {keys[0]: check_id(f"{where}.{keys[0]}", item[keys[0]])}
        if item.get("data") is not None:
            _opt_mapping(f"{where}.data", item["data"])
            entry["data"] = item["data"]
        out.append(entry)
    _check_count(name, len(out))
    return out


# Which flags go with which recipient form. Customer.io rejects extra fields; the
# official Node client (lib/api.ts BROADCASTS_ALLOWED_RECIPIENT_FIELDS) allows both
# kinds of flag with per_user_data and data_file_url, whose entries may be either.
_FLAGS_FOR: Final[Mapping[str, frozenset[str]]] = {
    "ids": frozenset({"id_ignore_missing"}),
    "emails": frozenset({"email_ignore_missing", "email_add_duplicates"}),
    "per_user_data": frozenset(
        {"id_ignore_missing", "email_ignore_missing", "email_add_duplicates"}
    ),
    "data_file_url": frozenset(
        {"id_ignore_missing", "email_ignore_missing", "email_add_duplicates"}
    ),
}


def broadcast_body(
    *,
    data: Mapping[str, Any] | None,
    recipients: Mapping[str, Any] | None,
    ids: Iterable[str | int] | None,
    emails: Iterable[str] | None,
    per_user_data: Iterable[Mapping[str, Any]] | None,
    data_file_url: str | None,
    flags: Mapping[str, bool | None],
) -> dict[str, Any]:
    """Validate a broadcast trigger and build its body (see ``AppAPI.trigger_broadcast``)."""
    forms = {
        k: v
        for k, v in (
            ("recipients", recipients),
            ("ids", ids),
            ("emails", emails),
            ("per_user_data", per_user_data),
            ("data_file_url", data_file_url),
        )
        if v is not None
    }
    if len(forms) > 1:
        second = list(forms)[1]
        raise ValidationError(second, f"give one recipient form, not {' and '.join(forms)}")
    form = next(iter(forms), None)
    body: dict[str, Any] = {}
    if data is not None:
        _opt_mapping("data", data)
        body["data"] = data
    if recipients is not None:
        check_filter("recipients", recipients)
        body["recipients"] = recipients
    elif ids is not None:
        body["ids"] = _recipient_list("ids", ids, email=False)
    elif emails is not None:
        body["emails"] = _recipient_list("emails", emails, email=True)
    elif per_user_data is not None:
        body["per_user_data"] = _per_user_data(per_user_data)
    elif data_file_url is not None:
        url = check_text("data_file_url", data_file_url, 2048)
        if not url.startswith(("https://", "http://")):
            raise ValidationError("data_file_url", "must be an http(s) URL")
        body["data_file_url"] = url
    allowed = _FLAGS_FOR.get(form or "", frozenset())
    for flag, value in flags.items():
        if value is None:
            continue
        _opt_bool(flag, value)
        if flag not in allowed:
            kinds = [k for k, v in _FLAGS_FOR.items() if flag in v]
            raise ValidationError(flag, f"goes only with {' or '.join(kinds)}")
        body[flag] = value
    return body
