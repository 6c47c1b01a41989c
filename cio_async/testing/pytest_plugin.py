"""pytest fixtures for testing code that uses cio_async.

Installed with ``pip install 'cio-async[testing]'``, pytest loads this plugin by itself
(a ``pytest11`` entry point): no ``conftest.py`` line is needed. Fixtures:

- ``cio_stand_in``: a running ``StandIn`` on 127.0.0.1 (a fresh one per test).
- ``cio_client``: an ``AsyncCustomerIO`` pointed at it (App API rate limiters off, see
  ``StandIn.client_kwargs``), closed after the test.

Both are async fixtures and need pytest-asyncio (in the ``testing`` extra). Without it
the plugin still loads, and a test that asks for one fails saying what to install.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from types import ModuleType
from typing import Any

import pytest

from .._client import AsyncCustomerIO
from ._standin import StandIn

_MISSING = "the cio_async fixtures need pytest-asyncio: pip install 'cio-async[testing]'"

pytest_asyncio: ModuleType | None
try:
    import pytest_asyncio
except ImportError:  # cio-async installed without the [testing] extra
    pytest_asyncio = None


def _async_fixture(fn: Callable[..., Any]) -> Any:
    """``pytest_asyncio.fixture(fn)``, or a fixture that fails saying what to install."""
    if pytest_asyncio is not None:
        return pytest_asyncio.fixture(fn)

    def unavailable() -> None:
        pytest.fail(_MISSING)

    unavailable.__doc__ = fn.__doc__
    return pytest.fixture(name=fn.__name__)(unavailable)


@_async_fixture
async def cio_stand_in() -> AsyncIterator[StandIn]:
    """A Customer.io stand-in server on a free loopback port."""
    async with StandIn() as server:
        yield server


@_async_fixture
async def cio_client(cio_stand_in: StandIn) -> AsyncIterator[AsyncCustomerIO]:
    """An ``AsyncCustomerIO`` talking to ``cio_stand_in`` (App API limiters off)."""
    async with AsyncCustomerIO(**cio_stand_in.client_kwargs()) as client:
        yield client
