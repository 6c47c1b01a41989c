"""Customer.io's Data Pipelines API (``cdp.customer.io/v1``) through the delivery core.

``AsyncPipelines`` (and ``Pipelines`` for sync code) send the Segment-style calls
``identify``, ``track``, ``page``, ``screen``, ``group`` and ``alias`` through the
same batching pipeline as the Track client::

    async with AsyncPipelines(write_key) as cdp:
        await cdp.identify("42", {"email": "ada@example.com"})
        cdp.track_nowait("42", "purchase", {"amount": 30})
"""

from ._client import AsyncPipelines
from ._encode import MAX_BATCH_BYTES, MAX_CALL_BYTES, PipelinesCall, iso_timestamp
from ._endpoint import PIPELINES_HOSTS, PipelinesConfig, PipelinesRegionWarning, key_region
from ._router import PipelinesRouter
from ._sync import Pipelines

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
