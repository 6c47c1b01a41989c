"""Test helpers: a local Customer.io stand-in server you can use in your own tests.

``StandIn`` speaks the Track API (v1 and v2) and the App API over real HTTP on
loopback, records what it accepted and can be scripted to misbehave. The pytest
fixtures live in ``cio_async.testing.pytest_plugin`` (add it to ``pytest_plugins``).
"""

from ._app_routes import RecordedSend, RecordedTrigger
from ._standin import Fault, RecordedOperation, RecordedRequest, StandIn

__all__ = [
    "Fault",
    "RecordedOperation",
    "RecordedRequest",
    "RecordedSend",
    "RecordedTrigger",
    "StandIn",
]
