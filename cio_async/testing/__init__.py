"""Test helpers: a local Customer.io stand-in server you can use in your own tests.

``StandIn`` speaks the Track API (v1 and v2), the Data Pipelines API and the App API
over real HTTP on loopback, records what it accepted and can be scripted to misbehave.
The pytest fixtures live in ``cio_async.testing.pytest_plugin``, which pytest loads by
itself (a ``pytest11`` entry point) once the package is installed.
"""

from ._app_routes import RecordedSend, RecordedTrigger
from ._cdp_standin import PipelinesState, RecordedCall
from ._standin import Fault, RecordedOperation, RecordedRequest, StandIn

__all__ = [
    "Fault",
    "PipelinesState",
    "RecordedCall",
    "RecordedOperation",
    "RecordedRequest",
    "RecordedSend",
    "RecordedTrigger",
    "StandIn",
]
