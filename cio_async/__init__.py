"""cio_async: the asyncio-native Customer.io SDK.

Pooled connections, bounded concurrency, a batching pipeline to Track v2 with nothing
lost silently, safe retries (every event carries a ULID, so a retry never
double-counts), identify deduplication and clear errors for bad input::

    async with AsyncCustomerIO(site_id, track_api_key) as cio:
        await cio.identify("42", {"email": "ada@example.com"})
        cio.track_nowait("42", "purchase", {"amount": 30})
        await cio.app.send(TransactionalEmail(transactional_message_id=3, to="a@example.com",
                                              identifiers="42"))

The Data Pipelines API (``cdp.customer.io/v1``) goes through the same pipeline::

    async with AsyncPipelines(write_key) as cdp:
        cdp.track_nowait("42", "purchase", {"amount": 30})
"""

import importlib as _importlib
import logging as _logging
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from ._client import AsyncCustomerIO
from ._config import (
    AppConfig,
    BatchPolicy,
    ClientConfig,
    PoolConfig,
    RateLimit,
    Region,
    RetryPolicy,
    SpoolConfig,
)
from ._dedup import AsyncDedupCache, DedupCache, MemoryDedupCache
from ._dropped import DROPPED, Dropped
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
    TLSError,
    UnprocessableError,
    ValidationError,
)
from ._model import Delivery, Object, Operation, Person, PersonRef, Relationship
from ._stats import Hooks, LatencyStats, Stats
from ._version import __version__
from .app._api import AppAPI
from .app._messages import (
    SendResult,
    TransactionalEmail,
    TransactionalInApp,
    TransactionalInbox,
    TransactionalMessage,
    TransactionalPush,
    TransactionalSMS,
    TransactionalWhatsApp,
)
from .app._people import PeopleSearch, PersonAttributes, PersonIdentifiers, Segment
from .delivery import Batch, FlushResult, MemoryBackend, QueueBackend
from .http._ratelimit import Limiter, RateBudget
from .pipelines import (
    AsyncPipelines,
    PipelinesCall,
    PipelinesConfig,
    PipelinesRegionWarning,
)
from .spool import SpoolError, SpoolStats
from .track._api import AccountRegion, BatchError, BatchResult, TrackV1, TrackV2

# Optional machinery loads on first use (as aiohttp does): `import cio_async` does not
# import aiohttp.web (framework hooks), anyio's thread portal (the sync client) or the
# webhook and router modules until one of their names is touched.
_LAZY = {
    "CLIENT_KEY": "._integrations",
    "aiohttp_cleanup_ctx": "._integrations",
    "asgi_lifespan": "._integrations",
    "install_signal_handlers": "._integrations",
    "CustomerIO": "._sync",
    "SyncAppAPI": "._sync_api",
    "SyncTrackV1": "._sync_api",
    "SyncTrackV2": "._sync_api",
    "Pipelines": ".pipelines",
    "PipelinesRouter": ".pipelines",
    "WorkspaceRouter": "._router",
    "WebhookError": ".app._webhooks",
    "WebhookEvent": ".app._webhooks",
    "parse_webhook": ".app._webhooks",
    "sign_webhook": ".app._webhooks",
    "verify_webhook_signature": ".app._webhooks",
}

if _TYPE_CHECKING:
    from ._integrations import (
        CLIENT_KEY,
        aiohttp_cleanup_ctx,
        asgi_lifespan,
        install_signal_handlers,
    )
    from ._router import WorkspaceRouter
    from ._sync import CustomerIO
    from ._sync_api import SyncAppAPI, SyncTrackV1, SyncTrackV2
    from .app._webhooks import (
        WebhookError,
        WebhookEvent,
        parse_webhook,
        sign_webhook,
        verify_webhook_signature,
    )
    from .pipelines import Pipelines, PipelinesRouter
__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AccountRegion",
    "AppAPI",
    "AppConfig",
    "AsyncCustomerIO",
    "AsyncDedupCache",
    "AsyncPipelines",
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
    "DROPPED",
    "DedupCache",
    "Delivery",
    "DeliveryAbandonedError",
    "Dropped",
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
    "Pipelines",
    "PipelinesCall",
    "PipelinesConfig",
    "PipelinesRegionWarning",
    "PipelinesRouter",
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
    "SpoolConfig",
    "SpoolError",
    "SpoolStats",
    "Stats",
    "SyncAppAPI",
    "SyncTrackV1",
    "SyncTrackV2",
    "TLSError",
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


def _public(obj: _Any) -> _Any:
    # Public classes print as cio_async.X, not cio_async._module.X.
    if isinstance(obj, type):
        obj.__module__ = __name__
    return obj


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = _public(getattr(_importlib.import_module(module, __name__), name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


for _name in __all__:
    if _name not in _LAZY:
        _public(globals()[_name])
del _name
