"""cio_async: the asyncio-native Customer.io SDK.

Pooled connections, bounded concurrency, a batching pipeline to Track v2 with nothing
lost silently, safe retries (every event carries a ULID, so a retry never
double-counts), identify deduplication and clear errors for bad input::

    async with AsyncCustomerIO(site_id, track_api_key) as cio:
        await cio.identify("42", {"email": "ada@example.com"})
        cio.track_nowait("42", "purchase", {"amount": 30})
        await cio.app.send(TransactionalEmail(transactional_message_id=3, to="a@example.com",
                                              identifiers="42"))
"""

import logging as _logging

from ._app import AppAPI
from ._client import AsyncCustomerIO
from ._config import (
    AppConfig,
    BatchPolicy,
    ClientConfig,
    PoolConfig,
    RateLimit,
    Region,
    RetryPolicy,
)
from ._dedup import AsyncDedupCache, DedupCache, MemoryDedupCache
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
from ._messages import (
    SendResult,
    TransactionalEmail,
    TransactionalInApp,
    TransactionalInbox,
    TransactionalMessage,
    TransactionalPush,
    TransactionalSMS,
    TransactionalWhatsApp,
)
from ._model import Delivery, Object, Operation, Person, PersonRef, Relationship
from ._people import PeopleSearch, PersonAttributes, PersonIdentifiers, Segment
from ._ratelimit import Limiter, RateBudget
from ._router import WorkspaceRouter
from ._stats import Hooks, LatencyStats, Stats
from ._sync import CustomerIO
from ._track import AccountRegion, BatchError, BatchResult, TrackV1, TrackV2
from ._version import __version__
from ._webhooks import (
    WebhookError,
    WebhookEvent,
    parse_webhook,
    sign_webhook,
    verify_webhook_signature,
)
from .delivery import Batch, FlushResult, MemoryBackend, QueueBackend

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AccountRegion",
    "AppAPI",
    "AppConfig",
    "AsyncCustomerIO",
    "AsyncDedupCache",
    "AuthenticationError",
    "BadRequestError",
    "Batch",
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
    "Limiter",
    "MemoryBackend",
    "MemoryDedupCache",
    "NotFoundError",
    "Object",
    "Operation",
    "OperationRejectedError",
    "PeopleSearch",
    "PermissionDeniedError",
    "Person",
    "PersonAttributes",
    "PersonIdentifiers",
    "PersonRef",
    "PoolConfig",
    "QueueBackend",
    "QueueFullError",
    "RateBudget",
    "RateLimit",
    "RateLimitError",
    "RedirectError",
    "Region",
    "Relationship",
    "RequestTooLargeError",
    "RetryPolicy",
    "Segment",
    "SendResult",
    "ServerError",
    "Stats",
    "TrackV1",
    "TrackV2",
    "TransactionalEmail",
    "TransactionalInApp",
    "TransactionalInbox",
    "TransactionalMessage",
    "TransactionalPush",
    "TransactionalSMS",
    "TransactionalWhatsApp",
    "UnprocessableError",
    "ValidationError",
    "WebhookError",
    "WebhookEvent",
    "WorkspaceRouter",
    "__version__",
    "aiohttp_cleanup_ctx",
    "asgi_lifespan",
    "install_signal_handlers",
    "parse_webhook",
    "sign_webhook",
    "verify_webhook_signature",
]

# Quiet unless the application configures logging (credentials are never logged).
_logging.getLogger("cio_async").addHandler(_logging.NullHandler())

# Public classes print as cio_async.X, not cio_async._module.X.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type):
        _obj.__module__ = __name__
del _name, _obj
