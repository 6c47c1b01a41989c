"""Customer.io's Data Pipelines API (``cdp.customer.io/v1``) through the delivery core.

``AsyncPipelines`` (and ``Pipelines`` for sync code) send the Segment-style calls
``identify``, ``track``, ``page``, ``screen``, ``group`` and ``alias`` through the
same batching pipeline as the Track client::

    async with AsyncPipelines(write_key) as cdp:
        await cdp.identify("42", {"email": "ada@example.com"})
        cdp.track_nowait("42", "purchase", {"amount": 30})
"""

import importlib
from typing import TYPE_CHECKING, Any

from ._client import AsyncPipelines
from ._encode import MAX_BATCH_BYTES, MAX_CALL_BYTES, PipelinesCall, iso_timestamp
from ._endpoint import PIPELINES_HOSTS, PipelinesConfig, PipelinesRegionWarning, key_region

if TYPE_CHECKING:
    from ._router import PipelinesRouter
    from ._sync import Pipelines

# The blocking client (anyio's thread portal) and the router load on first use, as at
# the top level: ``import cio_async`` stays free of them.
_LAZY = {"Pipelines": "._sync", "PipelinesRouter": "._router"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_CALL_BYTES",
    "PIPELINES_HOSTS",
    "AsyncPipelines",
    "Pipelines",
    "PipelinesCall",
    "PipelinesConfig",
    "PipelinesRegionWarning",
    "PipelinesRouter",
    "iso_timestamp",
    "key_region",
]
