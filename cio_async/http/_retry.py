"""Retry decisions: which failures to retry, how long to wait (one rule and one jitter
source for direct calls and batches), and ``Retry-After`` parsing. No I/O here."""

from __future__ import annotations

import datetime
import email.utils
import random
import time

from .._config import RetryPolicy
from .._errors import APIConnectionError, APIStatusError, CustomerIOError, RateLimitError


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


#: The one jitter source for every retry (direct calls and batches).
JITTER = random.Random()


def retry_delay(
    policy: RetryPolicy,
    attempt: int,
    error: CustomerIOError,
    spent: float,
    *,
    idempotent: bool = True,
) -> float | None:
    """The one retry rule, shared by direct requests and batches: seconds to wait
    before attempt ``attempt + 1`` (``attempt`` attempts failed so far, the last with
    ``error``, ``spent`` seconds since the first began), or None to give up.

    Gives up when the error is not worth retrying, when ``policy.max_attempts`` (if
    set) attempts were made, when the server asks for a longer wait than
    ``max_retry_after``, or when the sleep would end past ``total_timeout``. A
    ``Retry-After`` is a floor under the computed backoff.
    """
    if policy.max_attempts is not None and attempt >= policy.max_attempts:
        return None
    if not should_retry(error, policy, idempotent=idempotent):
        return None
    delay = policy.delay(attempt - 1, getattr(error, "retry_after", None), JITTER)
    if delay is None or spent + delay > policy.total_timeout:
        return None
    return delay


def retry_headers(attempt: int) -> dict[str, str] | None:
    """The ``X-Retry-Count`` header for attempt number ``attempt`` (0 = the first)."""
    return {"X-Retry-Count": str(attempt)} if attempt else None
