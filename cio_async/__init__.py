"""cio_async: the asyncio-native Customer.io SDK.

Pooled connections, bounded concurrency, safe retries (every event carries a ULID so
a retry never double-counts) and clear errors for bad input, for the Track API v1/v2.

    async with AsyncCustomerIO(site_id, api_key) as cio:
        await cio.v1.identify("42", {"email": "ada@example.com"})
        await cio.v1.track("42", "purchase", {"amount": 30})
"""

from ._client import AsyncCustomerIO
from ._config import ClientConfig, PoolConfig, Region, RetryPolicy
from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConfigurationError,
    CustomerIOError,
    DeliveryAbandonedError,
    NotFoundError,
    PermissionDeniedError,
    QueueFullError,
    RateLimitError,
    RedirectError,
    RequestTooLargeError,
    ServerError,
    UnprocessableError,
    ValidationError,
)
from ._model import Delivery, Object, Operation, Person, PersonRef, Relationship
from ._track import AccountRegion, BatchError, BatchResult, TrackV1, TrackV2
from ._version import __version__

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AccountRegion",
    "AsyncCustomerIO",
    "AuthenticationError",
    "BadRequestError",
    "BatchError",
    "BatchResult",
    "ClientClosedError",
    "ClientConfig",
    "ConfigurationError",
    "CustomerIOError",
    "Delivery",
    "DeliveryAbandonedError",
    "NotFoundError",
    "Object",
    "Operation",
    "PermissionDeniedError",
    "Person",
    "PersonRef",
    "PoolConfig",
    "QueueFullError",
    "RateLimitError",
    "RedirectError",
    "Region",
    "Relationship",
    "RequestTooLargeError",
    "RetryPolicy",
    "ServerError",
    "TrackV1",
    "TrackV2",
    "UnprocessableError",
    "ValidationError",
    "__version__",
]
