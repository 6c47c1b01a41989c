"""The cio_async error hierarchy.

::

    CustomerIOError
    ├── ConfigurationError        (also ValueError)    bad keys, region, sizes, policies
    ├── ValidationError           (also ValueError)    bad input at the call; names the field
    ├── ClientClosedError         (also RuntimeError)  used after aclose()
    ├── QueueFullError                                  admission refused: the queue is full
    ├── DeliveryAbandonedError                          dropped undelivered (shutdown, policy)
    ├── OperationRejectedError                          one batch item refused (207 / 400)
    ├── APIConnectionError        retryable            DNS, refused, reset
    │   ├── APITimeoutError       (also TimeoutError)  connect/read/total timeout
    │   └── TLSError              NOT retryable        certificate rejected
    └── APIStatusError            status, body, retry_after
        ├── BadRequestError       400
        ├── AuthenticationError   401
        ├── PermissionDeniedError 403
        ├── NotFoundError         404
        ├── RequestTooLargeError  413
        ├── UnprocessableError    422
        ├── RateLimitError        429   retryable
        └── ServerError           5xx   retryable for 500/502/503/504/522/524
    (also RedirectError for redirect loops or redirects we refuse to follow)

Every error answers ``retryable``; the retry loop asks the error, never a type list.
``map_client_errors()`` is the only place that translates aiohttp exceptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import aiohttp

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ClientClosedError",
    "ConfigurationError",
    "CustomerIOError",
    "DeliveryAbandonedError",
    "NotFoundError",
    "OperationRejectedError",
    "PermissionDeniedError",
    "QueueFullError",
    "RateLimitError",
    "RedirectError",
    "RequestTooLargeError",
    "ServerError",
    "TLSError",
    "UnprocessableError",
    "ValidationError",
    "error_for_status",
    "map_client_errors",
]

#: Statuses worth retrying: the transient ones Customer.io and its CDN return.
RETRYABLE_STATUSES: frozenset[int] = frozenset({408, 429, 500, 502, 503, 504, 522, 524})


class CustomerIOError(Exception):
    """Base class of every error cio_async raises."""

    _retryable: ClassVar[bool] = False

    @property
    def retryable(self) -> bool:
        """Whether sending the same request again may succeed."""
        return self._retryable


class ConfigurationError(CustomerIOError, ValueError):
    """A configuration value is missing or invalid."""


class ValidationError(CustomerIOError, ValueError):
    """An argument failed validation before any I/O; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class ClientClosedError(CustomerIOError, RuntimeError):
    """The client was used after ``aclose()``."""


class QueueFullError(CustomerIOError):
    """The delivery queue is full and the backpressure policy refused the operation."""

    _retryable = True


class DeliveryAbandonedError(CustomerIOError):
    """The operation was dropped before delivery; ``reason`` says why (e.g. ``shutdown``)."""

    def __init__(self, reason: str, message: str | None = None) -> None:
        self.reason = reason
        super().__init__(message or f"operation dropped undelivered: {reason}")


class OperationRejectedError(CustomerIOError):
    """Customer.io refused one operation of a batch (a 207 entry, or a 400 isolated to
    it by splitting). Retrying it unchanged cannot succeed."""

    def __init__(self, reason: str, field: str, message: str, status: int = 207) -> None:
        self.reason = reason
        self.field = field
        self.message = message
        self.status = status
        where = f" {field}:" if field else ""
        super().__init__(f"operation rejected ({reason}):{where} {message}")


class RedirectError(CustomerIOError):
    """A redirect could not be followed (loop, missing Location, too many hops)."""


class APIConnectionError(CustomerIOError):
    """The request did not complete: DNS, connection refused or reset, TLS."""

    _retryable = True

    def __init__(self, message: str, *, surely_not_sent: bool = False) -> None:
        super().__init__(message)
        #: True when the request certainly never reached the server (refused, DNS).
        #: Non-idempotent calls (transactional sends) retry only in that case.
        self.surely_not_sent = surely_not_sent


class APITimeoutError(APIConnectionError, TimeoutError):
    """The request timed out (connect, read or total)."""


class TLSError(APIConnectionError):
    """The server's TLS certificate was rejected. Permanent until the configuration
    changes (the trust store, ``PoolConfig.ssl_context``, the URL, a proxy that
    intercepts TLS), so it is never retried."""

    _retryable = False


class APIStatusError(CustomerIOError):
    """Customer.io answered with a non-success status."""

    status_code: ClassVar[int | None] = None

    def __init__(
        self,
        status: int,
        message: str,
        *,
        body: Any = None,
        retry_after: float | None = None,
        method: str = "",
        path: str = "",
    ) -> None:
        self.status = status
        self.body = body
        self.retry_after = retry_after
        self.method = method
        self.path = path
        where = f" ({method} {path})" if method else ""
        super().__init__(f"HTTP {status}{where}: {message}")

    @property
    def retryable(self) -> bool:
        return self.status in RETRYABLE_STATUSES

    @property
    def errors(self) -> list[Mapping[str, Any]]:
        """The ``errors`` list of a Track v2 / App API error body, if any."""
        if isinstance(self.body, Mapping):
            errs = self.body.get("errors")
            if isinstance(errs, list):
                return [e for e in errs if isinstance(e, Mapping)]
        return []


class BadRequestError(APIStatusError):
    """400: the request was malformed or failed validation; never retried."""

    status_code = 400


class AuthenticationError(APIStatusError):
    """401: the credentials were rejected."""

    status_code = 401


class PermissionDeniedError(APIStatusError):
    """403: the key lacks permission, or the content was refused."""

    status_code = 403


class NotFoundError(APIStatusError):
    """404: no such resource."""

    status_code = 404


class RequestTooLargeError(APIStatusError):
    """413: the body exceeded Customer.io's size limit."""

    status_code = 413


class UnprocessableError(APIStatusError):
    """422: the request was understood but refused (App API broadcasts)."""

    status_code = 422


class RateLimitError(APIStatusError):
    """429: rate limited; ``retry_after`` says how long to wait when the server said."""

    status_code = 429
    _retryable = True


class ServerError(APIStatusError):
    """5xx: a server-side failure."""

    _retryable = True


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    413: RequestTooLargeError,
    422: UnprocessableError,
    429: RateLimitError,
}


def _describe(body: Any) -> str:
    """A short human message out of the error body shapes Customer.io uses."""
    if isinstance(body, Mapping):
        meta = body.get("meta")
        if isinstance(meta, Mapping):
            if isinstance(meta.get("error"), str):
                return str(meta["error"])
            errs = meta.get("errors")
            if isinstance(errs, list) and errs:
                return "; ".join(str(e) for e in errs)
        errs = body.get("errors")
        if isinstance(errs, list) and errs:
            parts = []
            for e in errs[:5]:
                if isinstance(e, Mapping):
                    text = e.get("message") or e.get("detail") or e.get("reason") or e
                    field = e.get("field")
                    parts.append(f"{field}: {text}" if field else str(text))
                else:
                    parts.append(str(e))
            more = f" (+{len(errs) - 5} more)" if len(errs) > 5 else ""
            return "; ".join(parts) + more
        if isinstance(body.get("message"), str):
            return str(body["message"])
    if isinstance(body, str) and body:
        return body[:200]
    return "no error detail in the response"


def error_for_status(
    status: int,
    body: Any,
    *,
    retry_after: float | None = None,
    method: str = "",
    path: str = "",
) -> APIStatusError:
    """Build the right ``APIStatusError`` subclass for a response."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else APIStatusError
    return cls(
        status, _describe(body), body=body, retry_after=retry_after, method=method, path=path
    )


@contextlib.contextmanager
def map_client_errors(method: str, path: str) -> Iterator[None]:
    """Translate aiohttp and asyncio transport failures into cio_async errors.

    ``path`` is the request path only: never a full URL with credentials.
    """
    where = f"{method} {path}"
    try:
        yield
    except asyncio.CancelledError:
        raise
    except CustomerIOError:
        raise
    except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise APITimeoutError(f"timed out: {where}") from exc
    except aiohttp.ClientConnectorDNSError as exc:
        raise APIConnectionError(
            f"DNS lookup failed: {where}: {exc.os_error}", surely_not_sent=True
        ) from exc
    except aiohttp.ClientConnectorCertificateError as exc:
        reason = getattr(exc.certificate_error, "verify_message", None) or exc.certificate_error
        raise TLSError(
            f"TLS certificate rejected: {where}: {reason}. Not retried: make the server's"
            " certificate trusted (PoolConfig(ssl_context=...) with its CA, or the system"
            " trust store), or fix the URL if it points at the wrong host",
            surely_not_sent=True,
        ) from exc
    except aiohttp.ClientConnectorError as exc:
        # Refused/unreachable: the request never left this machine.
        raise APIConnectionError(
            f"cannot connect: {where}: {exc.os_error}", surely_not_sent=True
        ) from exc
    except (aiohttp.ClientError, ssl.SSLError, OSError) as exc:
        raise APIConnectionError(f"connection failed: {where}: {type(exc).__name__}") from exc
