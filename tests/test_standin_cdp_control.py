"""The stand-in's Pipelines (CDP) batch endpoint and its out-of-band control routes."""

from __future__ import annotations

import asyncio
import base64
import gzip
from typing import Any

import aiohttp
import orjson
import pytest

from cio_async.testing import StandIn
from cio_async.testing._cdp_standin import CDP_BATCH_PATH

WRITE_KEY = "stand-in-write-key"
BASIC = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()


def _call(n: int, **extra: Any) -> dict[str, Any]:
    return {"type": "track", "userId": f"u{n}", "event": "clicked", "messageId": f"m{n}", **extra}


async def _post(
    server: StandIn,
    body: Any,
    *,
    auth: str | None = BASIC,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> tuple[int, Any]:
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    if auth is not None:
        hdrs["Authorization"] = auth
    data = raw if raw is not None else orjson.dumps(body)
    async with (
        aiohttp.ClientSession() as session,
        session.post(server.url + CDP_BATCH_PATH, data=data, headers=hdrs) as resp,
    ):
        return resp.status, orjson.loads(await resp.read() or b"null")


async def test_cdp_batch_records_calls_and_ignores_repeated_message_ids(server: StandIn) -> None:
    batch = [
        _call(1, properties={"a": 1}),
        {"type": "identify", "userId": "u1", "traits": {"plan": "pro"}, "messageId": "m2"},
        {"type": "page", "anonymousId": "anon", "name": "/home", "messageId": "m3"},
    ]
    assert await _post(server, {"batch": batch}) == (200, {})
    assert await _post(server, {"batch": [_call(1)]}) == (200, {})  # same messageId
    assert [e.name for e in server.events()] == ["clicked", "/home"]
    assert server.counts["person.event"] == 1 and server.counts["person.identify"] == 1
    assert server.counts["duplicate_events_ignored"] == 1
    assert server.counts["cdp_batches"] == 2
    assert server.people["id:u1"]["plan"] == "pro"
    assert server.ops(action="page")[0].identifiers == {"anonymous_id": "anon"}


async def test_cdp_auth_basic_write_key_or_bearer(server: StandIn) -> None:
    assert (await _post(server, {"batch": [_call(1)]}, auth=f"Bearer {WRITE_KEY}"))[0] == 200
    status, body = await _post(server, {"batch": [_call(2)]}, auth=None)
    assert status == 401 and body["code"] == "unauthorized" and body["message"]
    wrong = "Basic " + base64.b64encode(b"other:").decode()
    assert (await _post(server, {"batch": [_call(3)]}, auth=wrong))[0] == 401
    # The Track credentials do not open the Pipelines endpoint.
    assert (await _post(server, {"batch": [_call(4)]}, auth=server._track_auth))[0] == 401
    server.cdp_write_key = "rotated"
    assert (await _post(server, {"batch": [_call(5)]}))[0] == 401
    assert len(server.events()) == 1


async def test_cdp_permissive_mode_answers_200_but_drops_invalid_calls(server: StandIn) -> None:
    batch = [_call(1), {"type": "track", "userId": "u2"}, {"type": "nope", "userId": "u3"}]
    assert await _post(server, {"batch": batch}) == (200, {})
    assert len(server.events()) == 1
    assert server.counts["cdp_rejected_calls"] == 2
    assert (await _post(server, None, raw=b"not json"))[0] == 200
    assert server.counts["cdp_rejected_batches"] == 1


async def test_cdp_strict_mode_answers_400(server: StandIn) -> None:
    strict = {"X-Strict-Mode": "1"}
    status, body = await _post(server, {"batch": [{"type": "track"}]}, headers=strict)
    assert status == 400 and body["code"] == "invalid_request"
    status, body = await _post(server, {"batch": []}, headers=strict)
    assert status == 400
    big = [_call(i, properties={"pad": "x" * 20_000}) for i in range(30)]
    status, body = await _post(server, {"batch": big}, headers=strict)
    assert status == 400 and body["code"] == "payload_too_large"
    assert not server.events()


async def test_cdp_gzip_body(server: StandIn) -> None:
    raw = gzip.compress(orjson.dumps({"batch": [_call(1)]}))
    status, _ = await _post(server, None, raw=raw, headers={"Content-Encoding": "gzip"})
    assert status == 200 and len(server.events()) == 1


async def test_cdp_with_the_real_analytics_client(server: StandIn) -> None:
    analytics = pytest.importorskip("customerio.analytics")
    errors: list[Any] = []
    client = analytics.Client(
        WRITE_KEY,
        host=server.url,
        upload_interval=0.05,
        max_retries=0,
        on_error=lambda exc, batch: errors.append(exc),
    )
    try:
        for i in range(5):
            client.track(f"u{i}", "clicked", {"n": i})
        client.identify("u0", {"plan": "pro"})
        await asyncio.to_thread(client.flush)
    finally:
        await asyncio.to_thread(client.join)
    assert not errors
    assert len(server.events(name="clicked")) == 5
    assert server.people["id:u0"]["plan"] == "pro"


async def test_control_routes_are_out_of_band() -> None:
    async with StandIn(rtt=0.2) as server, aiohttp.ClientSession() as session:
        state_url = server.url + "/_stand-in/state"
        config_url = server.url + "/_stand-in/config"
        async with session.get(state_url) as resp:  # no auth, no simulated round trip
            state = await resp.json()
        assert state["counts"] == {} and state["connections"] == 0 and state["rtt"] == 0.2
        cfg = {"rtt": 0, "rate_limit": 5}
        async with session.post(config_url, json=cfg) as resp:
            state = await resp.json()
        assert (state["rtt"], state["rate_limit"]) == (0, 5)
        assert server.rate_limit == 5
        server.counts["requests"] = 3
        server.connections = 2
        async with session.post(config_url, json={"reset": True, "rate_limit": None}) as resp:
            state = await resp.json()
        assert state["counts"] == {} and state["connections"] == 0
        assert server.rate_limit is None
        async with session.post(config_url, data=b"[1]") as resp:
            assert resp.status == 400
