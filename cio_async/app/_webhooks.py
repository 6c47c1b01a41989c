"""Verify and parse Customer.io's signed reporting webhooks. Pure functions, no I/O.

How Customer.io signs (checked before writing this):

- Headers ``X-CIO-Timestamp`` (Unix seconds) and ``X-CIO-Signature`` (hex).
- The signature is the hex HMAC-SHA256, keyed with the webhook's signing key, of the
  string ``"v0:" + timestamp + ":" + raw_body``.

Sources: Customer.io's own Node SDK, ``customerio/customerio-node`` ``lib/webhooks.ts``
(``verifyRequestSignature``: ``hmac.update(`v0:${timestamp}:`)``, then the raw body,
``digest('hex')``, compared with ``timingSafeEqual``; it cites
https://docs.customer.io/api/webhooks/), and healthjoy/async-customerio
``request_validator.py`` (``b"v0:" + timestamp + b":" + body``, citing
https://customer.io/docs/journeys/webhooks/#securely-verify-requests). Neither
documents a replay window, so the timestamp tolerance (5 minutes by default) is ours.

The payload is one event per request: ``{event_id, object_type, metric, timestamp,
data: {...}}`` (docs.customer.io/api/webhooks).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from .._encode import loads
from .._errors import CustomerIOError

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookError",
    "WebhookEvent",
    "parse_webhook",
    "sign_webhook",
    "verify_webhook_signature",
]

SIGNATURE_HEADER: Final = "X-CIO-Signature"
TIMESTAMP_HEADER: Final = "X-CIO-Timestamp"
DEFAULT_TOLERANCE: Final = 300.0


class WebhookError(CustomerIOError, ValueError):
    """A webhook request failed verification or could not be parsed. ``reason`` is
    ``missing_header``, ``bad_timestamp``, ``bad_signature``, ``stale`` or
    ``malformed``. Answer such a request with 400 (or 401) and do not act on it."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(f"webhook rejected ({reason}): {message}")


def _key(signing_key: str | bytes) -> bytes:
    if isinstance(signing_key, str):
        signing_key = signing_key.strip().encode()
    if not signing_key:
        raise ValueError("the webhook signing key is empty")
    return signing_key


def _bytes(body: bytes | bytearray | memoryview | str) -> bytes:
    return body.encode() if isinstance(body, str) else bytes(body)


def sign_webhook(
    signing_key: str | bytes, body: bytes | str, timestamp: int | str | None = None
) -> dict[str, str]:
    """The ``X-CIO-Timestamp`` and ``X-CIO-Signature`` headers Customer.io would send
    with ``body`` (default timestamp: now). For testing your webhook handler."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    mac = hmac.new(_key(signing_key), b"v0:" + ts.encode() + b":" + _bytes(body), hashlib.sha256)
    return {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: mac.hexdigest()}


def verify_webhook_signature(
    signing_key: str | bytes,
    body: bytes | str,
    *,
    signature: str | None,
    timestamp: str | int | None,
    tolerance: float | None = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> int:
    """Check a webhook's signature (constant-time) and age; return its timestamp.

    ``body`` must be the raw request body exactly as received: re-serialised JSON
    does not hash the same. ``tolerance`` seconds bound how far the timestamp may be
    from ``now`` (either way) to stop replays; None skips that check. Raises
    ``WebhookError``.
    """
    if not signature or timestamp is None or timestamp == "":
        missing = SIGNATURE_HEADER if not signature else TIMESTAMP_HEADER
        raise WebhookError("missing_header", f"no {missing} header")
    try:
        ts = int(str(timestamp).strip())
    except ValueError:
        raise WebhookError("bad_timestamp", f"{TIMESTAMP_HEADER} is not Unix seconds") from None
    expected = sign_webhook(signing_key, body, ts)[SIGNATURE_HEADER].encode()
    given = signature.strip().lower().encode("utf-8", "replace")
    if not hmac.compare_digest(expected, given):
        raise WebhookError("bad_signature", "the signature does not match the body")
    if tolerance is not None:
        age = (time.time() if now is None else now) - ts
        if abs(age) > tolerance:
            raise WebhookError(
                "stale", f"signed {age:.0f}s from now; the tolerance is {tolerance:.0f}s"
            )
    return ts


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """One reporting webhook event (a message sent, delivered, opened, clicked...)."""

    event_id: str
    #: ``email``, ``push``, ``sms``, ``in_app``, ``webhook``, ``customer``, ...
    object_type: str | None
    #: ``sent``, ``delivered``, ``opened``, ``clicked``, ``bounced``, ...
    metric: str
    #: Unix seconds when it happened.
    timestamp: int
    data: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def delivery_id(self) -> str | None:
        value = self.data.get("delivery_id")
        return None if value is None else str(value)

    @property
    def customer_id(self) -> str | None:
        value = self.data.get("customer_id")
        return None if value is None else str(value)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        lower = name.lower()
        for k, v in headers.items():
            if k.lower() == lower:
                return v
    return value


def parse_webhook(
    signing_key: str | bytes,
    body: bytes | str,
    headers: Mapping[str, str],
    *,
    tolerance: float | None = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> WebhookEvent:
    """Verify a reporting webhook request and parse its event.

    ``headers`` is any mapping of the request headers (names matched without regard
    to case); ``body`` the raw body. Raises ``WebhookError``::

        try:
            event = parse_webhook(key, await request.read(), request.headers)
        except WebhookError:
            return web.Response(status=401)
    """
    verify_webhook_signature(
        signing_key,
        body,
        signature=_header(headers, SIGNATURE_HEADER),
        timestamp=_header(headers, TIMESTAMP_HEADER),
        tolerance=tolerance,
        now=now,
    )
    try:
        payload = loads(_bytes(body))
    except ValueError:
        raise WebhookError("malformed", "the body is not JSON") from None
    if not isinstance(payload, Mapping):
        raise WebhookError("malformed", "the body is not a JSON object")
    event_id, metric, ts = payload.get("event_id"), payload.get("metric"), payload.get("timestamp")
    if not isinstance(event_id, str) or not isinstance(metric, str):
        raise WebhookError("malformed", "event_id and metric are required")
    if isinstance(ts, bool) or not isinstance(ts, int):
        raise WebhookError("malformed", "timestamp must be Unix seconds")
    data = payload.get("data")
    object_type = payload.get("object_type")
    return WebhookEvent(
        event_id=event_id,
        object_type=object_type if isinstance(object_type, str) else None,
        metric=metric,
        timestamp=ts,
        data=dict(data) if isinstance(data, Mapping) else {},
        raw=dict(payload),
    )
