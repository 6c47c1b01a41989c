"""Track v1's legacy push metric (``POST /api/v1/push/events``) and custom unsubscribe
(``POST /unsubscribe/{delivery_id}``), against the stand-in."""

from __future__ import annotations

import time

import aiohttp
import pytest

from cio_async import AsyncCustomerIO, ValidationError
from cio_async.testing import StandIn


async def test_report_push_event_posts_the_documented_body(
    client: AsyncCustomerIO, server: StandIn
) -> None:
    before = int(time.time())
    await client.v1.report_push_event("dlv-1", "opened", "tok-9")
    await client.v1.report_push_event("dlv-1", "converted", "tok-9", timestamp=1_700_000_000)
    assert [r.path for r in server.requests] == ["/api/v1/push/events"] * 2
    first, second = (r.json for r in server.requests)
    assert first["delivery_id"] == "dlv-1"
    assert first["event"] == "opened"
    assert first["device_id"] == "tok-9"
    assert before <= first["timestamp"] <= int(time.time())
    assert second["timestamp"] == 1_700_000_000
    assert [(o.type, o.action) for o in server.ops()] == [("push", "opened"), ("push", "converted")]


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("", "opened", "t"), "delivery_id"),
        (("d", "clicked", "t"), "event"),
        (("d", ["opened"], "t"), "event"),
        (("d", "opened", " "), "device_id"),
        (("d\ud800", "opened", "t"), "delivery_id"),
    ],
)
async def test_report_push_event_validates_before_sending(
    client: AsyncCustomerIO, server: StandIn, args: tuple[object, ...], field: str
) -> None:
    with pytest.raises(ValidationError) as exc:
        await client.v1.report_push_event(*args)  # type: ignore[arg-type]
    assert exc.value.field == field
    assert server.requests == []


async def test_unsubscribe_posts_to_the_delivery(client: AsyncCustomerIO, server: StandIn) -> None:
    await client.v1.unsubscribe("dlv/7 x")
    (req,) = server.requests
    assert req.raw_path == "/unsubscribe/dlv%2F7%20x"
    assert req.headers["Content-Type"] == "application/json"
    assert req.json == {"unsubscribe": True}
    (op,) = server.ops("delivery", "unsubscribe")
    assert op.identifiers == {"delivery_id": "dlv/7 x"}
    with pytest.raises(ValidationError):
        await client.v1.unsubscribe(" ")


async def test_the_stand_in_serves_unsubscribe_without_auth_and_only_as_json(
    server: StandIn,
) -> None:
    # Customer.io's unsubscribe endpoint needs no credentials, but a JSON body.
    async with aiohttp.ClientSession() as session:
        url = f"{server.url}/unsubscribe/d1"
        async with session.post(url, json={"unsubscribe": True}) as resp:
            assert resp.status == 200
        async with session.post(url, data=b'{"unsubscribe":true}') as resp:
            assert resp.status == 400
        async with session.post(f"{server.url}/api/v1/push/events", json={}) as resp:
            assert resp.status == 401  # the push metric does need the Track key
