"""Under ``drop_newest`` a queued call that was dropped says so at the call:
``DROPPED`` instead of an event id (or of True for identify), awaited and nowait."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import pytest

from cio_async import (
    DROPPED,
    AsyncCustomerIO,
    BatchPolicy,
    DeliveryAbandonedError,
    Operation,
)
from cio_async.testing import StandIn

from .conftest import FAST_BATCH, ClientFactory


def full_queue_client(make_client: ClientFactory, drops: list[str]) -> AsyncCustomerIO:
    """One batch (of one) in flight at a time, room for 2 queued: with the stand-in
    holding requests, the 4th admission on is dropped."""

    def on_drop(op: Operation, reason: str) -> None:
        drops.append(reason)

    return make_client(
        batch=BatchPolicy(
            linger=30.0,
            max_batch_events=1,
            max_in_flight=1,
            max_queue_events=2,
            when_full="drop_newest",
            retry=FAST_BATCH.retry,
            shutdown_timeout=5.0,
        ),
        on_drop=on_drop,
    )


def test_dropped_is_a_falsy_empty_string() -> None:
    assert isinstance(DROPPED, str) and DROPPED == "" and not DROPPED
    assert repr(DROPPED) == "cio_async.DROPPED"
    assert pickle.loads(pickle.dumps(DROPPED)) is DROPPED


@pytest.mark.parametrize("action", ["track", "page", "screen"])
async def test_awaited_calls_return_dropped(
    make_client: ClientFactory, server: StandIn, action: str
) -> None:
    drops: list[str] = []
    c = full_queue_client(make_client, drops)
    call: Callable[..., Any] = getattr(c, action)
    server.hold()
    async with c:
        first = await call("0", "e")
        await server.wait_for(lambda s: s.held == 1)
        kept = [await call(str(i), "e") for i in (1, 2)]
        dropped = await call("3", "e")
        also = await call("4", "e", id="01HZZZZZZZZZZZZZZZZZZZZZZZ")  # the general path
        server.release()
        await c.flush()
    assert first and all(kept) and first is not DROPPED
    assert dropped is DROPPED and also is DROPPED
    assert drops == ["queue_full", "queue_full"]
    assert sorted(e.identifiers["id"] for e in server.ops()) == ["0", "1", "2"]


@pytest.mark.parametrize("action", ["track_nowait", "page_nowait", "screen_nowait"])
async def test_nowait_calls_return_dropped(
    make_client: ClientFactory, server: StandIn, action: str
) -> None:
    drops: list[str] = []
    c = full_queue_client(make_client, drops)
    call: Callable[..., str] = getattr(c, action)
    server.hold()
    async with c:
        first = call("0", "e")
        await server.wait_for(lambda s: s.held == 1)
        kept = [call(str(i), "e") for i in (1, 2)]
        dropped = call("3", "e")
        also = call("4", "e", timestamp=1_700_000_000)  # the general path
        server.release()
        await c.flush()
    assert first and all(kept)
    assert dropped is DROPPED and also is DROPPED
    assert drops == ["queue_full", "queue_full"]


async def test_identify_returns_dropped_and_can_be_retried(
    make_client: ClientFactory, server: StandIn
) -> None:
    drops: list[str] = []
    c = full_queue_client(make_client, drops)
    server.hold()
    async with c:
        assert await c.identify("0", {"n": 0}) is True
        await server.wait_for(lambda s: s.held == 1)
        assert c.identify_nowait("1", {"n": 1}) is True
        assert await c.identify("2", {"n": 2}) is True
        assert await c.identify("3", {"n": 3}) is DROPPED
        assert c.identify_nowait("4", {"n": 4}) is DROPPED
        server.release()
        await c.flush()
        # A dropped identify is not remembered as sent: the same call goes out now.
        assert await c.identify("3", {"n": 3}) is True
        assert await c.identify("3", {"n": 3}) is False  # and this one is a duplicate
        await c.flush()
    assert drops == ["queue_full", "queue_full"]
    assert sorted(o.identifiers["id"] for o in server.ops()) == ["0", "1", "2", "3"]


async def test_a_waiting_call_raises_instead(make_client: ClientFactory, server: StandIn) -> None:
    drops: list[str] = []
    c = full_queue_client(make_client, drops)
    server.hold()
    async with c:
        await c.track("0", "e")
        await server.wait_for(lambda s: s.held == 1)
        await c.track("1", "e")
        await c.track("2", "e")
        with pytest.raises(DeliveryAbandonedError) as err:
            await c.track("3", "e", wait=True)
        server.release()
        await c.flush()
    assert err.value.reason == "queue_full"


async def test_calls_without_a_result_return_dropped(
    make_client: ClientFactory, server: StandIn
) -> None:
    drops: list[str] = []
    c = full_queue_client(make_client, drops)
    op = Operation.from_dict({"type": "person", "action": "delete", "identifiers": {"id": "9"}})
    server.hold()
    async with c:
        assert await c.delete("0") is None
        await server.wait_for(lambda s: s.held == 1)
        assert await c.suppress("1") is None
        assert c.send_nowait(op) is None
        assert await c.delete("3") is DROPPED
        assert await c.add_device("4", "tok", "ios") is DROPPED
        assert await c.send(op) is DROPPED
        assert c.send_nowait(op) is DROPPED
        server.release()
        await c.flush()
    assert drops == ["queue_full"] * 4
