"""pytest fixtures for testing code that uses cio_async.

Enable with ``pytest_plugins = ["cio_async.testing.pytest_plugin"]`` in your
``conftest.py`` (needs pytest-asyncio). Fixtures:

- ``cio_stand_in``: a running ``StandIn`` on 127.0.0.1 (a fresh one per test).
- ``cio_client``: an ``AsyncCustomerIO`` pointed at it, closed after the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from .._client import AsyncCustomerIO
from ._standin import StandIn


@pytest_asyncio.fixture
async def cio_stand_in() -> AsyncIterator[StandIn]:
    """A Customer.io stand-in server on a free loopback port."""
    async with StandIn() as server:
        yield server


@pytest_asyncio.fixture
async def cio_client(cio_stand_in: StandIn) -> AsyncIterator[AsyncCustomerIO]:
    """An ``AsyncCustomerIO`` talking to ``cio_stand_in``."""
    async with AsyncCustomerIO(**cio_stand_in.client_kwargs()) as client:
        yield client
