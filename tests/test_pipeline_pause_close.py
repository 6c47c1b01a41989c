"""Regression: closing while the sender is paused by a 429 must not hang.

On Python < 3.12, ``asyncio.wait_for`` swallows a cancellation that lands while the
awaited thing completes. The sender used it to sleep out a 429 pause; ``aclose()``
wakes the sender (its flush) and cancels it in the same breath, so the cancellation
could be lost and ``aclose()`` wait for the sender forever.
"""

from __future__ import annotations

import asyncio

import pytest

from cio_async import AsyncCustomerIO, BatchPolicy, DeliveryAbandonedError, Person, RetryPolicy
from cio_async.testing import StandIn


@pytest.mark.parametrize("yields", [0, 3])
async def test_close_during_a_429_pause_does_not_hang(yields: int) -> None:
    async with StandIn() as server:
        server.fail_next(429, retry_after=30, path="/api/v2/batch")
        client = AsyncCustomerIO(
            **server.client_kwargs(),
            batch=BatchPolicy(
                linger=0.001,
                retry=RetryPolicy(max_attempts=3, initial_delay=0.001, max_retry_after=60),
            ),
        )
        await client.start()
        client.track_nowait("1", "e")
        await server.wait_for(lambda s: s.counts["fault_429"] == 1)
        await server.wait_for(lambda s: client.stats().paused_seconds > 0)
        # Waited for, so the sender wakes at once and starts sleeping out the pause.
        second = await client.submit(Person("2").event("e"))
        for _ in range(yields):
            await asyncio.sleep(0)
        result = await asyncio.wait_for(client.aclose(timeout=0), 5)
        assert result.dropped == 2  # both undelivered, both reported
        with pytest.raises(DeliveryAbandonedError):
            await second
