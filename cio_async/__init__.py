"""cio_async: the asyncio-native Customer.io SDK.

Pooled connections, bounded concurrency, a batching pipeline to Track v2 with nothing
lost silently, safe retries (every event carries a ULID, so a retry never
double-counts), identify deduplication and clear errors for bad input::

    async with AsyncCustomerIO(site_id, track_api_key) as cio:
        await cio.identify("42", {"email": "ada@example.com"})
        cio.track_nowait("42", "purchase", {"amount": 30})
"""

import logging as _logging

from ._client import AsyncCustomerIO
from ._config import BatchPolicy, ClientConfig, PoolConfig, Region, RetryPolicy
from ._dedup import DedupCache, MemoryDedupCache
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
    OperationRejectedError,
    PermissionDeniedError,
    QueueFullError,
    RateLimitError,
    RedirectError,
    RequestTooLargeError,
    ServerError,
    UnprocessableError,
    ValidationError,
)
from ._integrations import (
    CLIENT_KEY,
    aiohttp_cleanup_ctx,
    asgi_lifespan,
    install_signal_handlers,
)
from ._model import Delivery, Object, Operation, Person, PersonRef, Relationship
from ._pipeline import FlushResult
from ._queue import MemoryQueue, QueueBackend
from ._router import WorkspaceRouter
from ._stats import Hooks, LatencyStats, Stats
from ._sync import CustomerIO
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
    "BatchPolicy",
    "BatchResult",
    "CLIENT_KEY",
    "ClientClosedError",
    "ClientConfig",
    "ConfigurationError",
    "CustomerIO",
    "CustomerIOError",
    "DedupCache",
    "Delivery",
    "DeliveryAbandonedError",
    "FlushResult",
    "Hooks",
    "LatencyStats",
    "MemoryDedupCache",
    "MemoryQueue",
    "NotFoundError",
    "Object",
    "Operation",
    "OperationRejectedError",
    "PermissionDeniedError",
    "Person",
    "PersonRef",
    "PoolConfig",
    "QueueBackend",
    "QueueFullError",
    "RateLimitError",
    "RedirectError",
    "Region",
    "Relationship",
    "RequestTooLargeError",
    "RetryPolicy",
    "ServerError",
    "Stats",
    "TrackV1",
    "TrackV2",
    "UnprocessableError",
    "ValidationError",
    "WorkspaceRouter",
    "__version__",
    "aiohttp_cleanup_ctx",
    "asgi_lifespan",
    "install_signal_handlers",
]

# Quiet unless the application configures logging (credentials are never logged).
_logging.getLogger("cio_async").addHandler(_logging.NullHandler())

# Public classes print as cio_async.X, not cio_async._module.X.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type):
        _obj.__module__ = __name__
del _name, _obj
