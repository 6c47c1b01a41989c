"""Retry decisions: which failures to retry, and ``Retry-After`` parsing. No I/O here."""

from __future__ import annotations

import datetime
import email.utils
import time

from ._config import RetryPolicy
from ._errors import APIConnectionError, APIStatusError, CustomerIOError, RateLimitError


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date.

    Returns None when absent or unparseable; never negative. A date without a zone is
    taken as UTC.
    """
    if not value:
        return None
    value = value.strip()
    try:
        secs = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.timezone.utc)
        secs = when.timestamp() - (time.time() if now is None else now)
    if secs != secs:  # NaN
        return None
    return max(0.0, secs)


def should_retry(exc: CustomerIOError, policy: RetryPolicy, *, idempotent: bool) -> bool:
    """Whether ``exc`` is worth another attempt under ``policy``.

    Non-idempotent requests (transactional sends, broadcast triggers) are retried only
    when they surely never reached Customer.io, or on 429 (a refused request).
    """
    if isinstance(exc, APIStatusError):
        if not idempotent and not isinstance(exc, RateLimitError):
            return False
        return exc.status in policy.retry_statuses
    if isinstance(exc, APIConnectionError):
        # A rejected TLS certificate (TLSError) is permanent: the error says so.
        return exc.retryable and (idempotent or exc.surely_not_sent)
    return exc.retryable
