"""Reporting webhook verification: the exact signed string, good/bad/stale signatures,
headers, payload parsing, and a real aiohttp handler on loopback."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest
import pytest_asyncio
from aiohttp import web

from cio_async import (
    WebhookError,
    WebhookEvent,
    parse_webhook,
    sign_webhook,
    verify_webhook_signature,
)

KEY = "whsec-test-signing-key"
TS = 1_700_000_000
BODY = orjson.dumps(
    {
        "event_id": "01E4C4CT6YDC7Y5M7FE1GWWPQJ",
        "object_type": "email",
        "metric": "opened",
        "timestamp": TS,
        "data": {
            "customer_id": "42",
            "delivery_id": "RPILAgABcRhIBqSp7kiPekGBIeVh",
            "identifiers": {"id": "42"},
            "recipient": "ada@example.com",
            "subject": "Hi",
        },
    }
)


def expected_signature(key: str, ts: int, body: bytes) -> str:
    # Written out independently of the library: HMAC-SHA256 over "v0:<ts>:<body>", hex.
    return hmac.new(key.encode(), b"v0:%d:" % ts + body, hashlib.sha256).hexdigest()


def test_the_signed_string_is_v0_timestamp_body() -> None:
    headers = sign_webhook(KEY, BODY, TS)
    assert headers == {
        "X-CIO-Timestamp": str(TS),
        "X-CIO-Signature": expected_signature(KEY, TS, BODY),
    }


def test_a_good_signature_parses_the_event() -> None:
    headers = {
        "X-CIO-Timestamp": str(TS),
        "X-CIO-Signature": expected_signature(KEY, TS, BODY),
    }
    event = parse_webhook(KEY, BODY, headers, now=TS + 10)
    assert isinstance(event, WebhookEvent)
    assert (event.event_id, event.object_type, event.metric, event.timestamp) == (
        "01E4C4CT6YDC7Y5M7FE1GWWPQJ",
        "email",
        "opened",
        TS,
    )
    assert event.delivery_id == "RPILAgABcRhIBqSp7kiPekGBIeVh"
    assert event.customer_id == "42"
    assert event.data["recipient"] == "ada@example.com"


def test_header_names_match_without_case_and_body_may_be_str() -> None:
    headers = {k.lower(): v for k, v in sign_webhook(KEY, BODY, TS).items()}
    assert parse_webhook(KEY, BODY.decode(), headers, now=TS).metric == "opened"
    upper = {k.upper(): v.upper() for k, v in sign_webhook(KEY, BODY, TS).items()}
    assert parse_webhook(KEY, BODY, upper, now=TS).metric == "opened"  # hex in capitals


@pytest.mark.parametrize(
    ("body", "signed_with", "ts_header", "reason"),
    [
        (BODY.replace(b"opened", b"clicked"), KEY, str(TS), "bad_signature"),  # tampered
        (BODY, "another-key", str(TS), "bad_signature"),
        (BODY, KEY, str(TS + 1), "bad_signature"),  # the timestamp is signed too
        (BODY, KEY, "yesterday", "bad_timestamp"),
    ],
)
def test_bad_signatures_are_refused(
    body: bytes, signed_with: str, ts_header: str, reason: str
) -> None:
    headers = {
        "X-CIO-Timestamp": ts_header,
        "X-CIO-Signature": expected_signature(signed_with, TS, BODY),
    }
    with pytest.raises(WebhookError) as err:
        parse_webhook(KEY, body, headers, now=TS)
    assert err.value.reason == reason
    assert isinstance(err.value, ValueError)


def test_garbage_signatures_are_refused_not_crashed() -> None:
    for sig in ("", "zz", "é" * 64, expected_signature(KEY, TS, BODY)[:-1]):
        with pytest.raises(WebhookError):
            verify_webhook_signature(KEY, BODY, signature=sig, timestamp=TS, now=TS)


def test_stale_and_future_timestamps_are_refused() -> None:
    headers = sign_webhook(KEY, BODY, TS)
    for now in (TS + 301, TS - 301):
        with pytest.raises(WebhookError) as err:
            parse_webhook(KEY, BODY, headers, now=now)
        assert err.value.reason == "stale"
    assert parse_webhook(KEY, BODY, headers, now=TS + 299).event_id
    assert parse_webhook(KEY, BODY, headers, tolerance=3600, now=TS + 3000).event_id
    assert parse_webhook(KEY, BODY, headers, tolerance=None, now=TS + 10**7).event_id
    # Default clock: a webhook signed just now passes.
    fresh = sign_webhook(KEY, BODY)
    assert abs(int(fresh["X-CIO-Timestamp"]) - time.time()) < 5
    assert verify_webhook_signature(
        KEY, BODY, signature=fresh["X-CIO-Signature"], timestamp=fresh["X-CIO-Timestamp"]
    )


def test_missing_headers() -> None:
    sig = sign_webhook(KEY, BODY, TS)
    for headers in ({}, {"X-CIO-Timestamp": str(TS)}, {"X-CIO-Signature": sig["X-CIO-Signature"]}):
        with pytest.raises(WebhookError) as err:
            parse_webhook(KEY, BODY, headers, now=TS)
        assert err.value.reason == "missing_header"


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[1, 2]", b'{"metric": "sent"}', b'{"event_id": "e", "metric": "sent"}'],
)
def test_malformed_payloads_are_refused_after_verification(body: bytes) -> None:
    with pytest.raises(WebhookError) as err:
        parse_webhook(KEY, body, sign_webhook(KEY, body, TS), now=TS)
    assert err.value.reason == "malformed"


def test_an_empty_key_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="signing key"):
        sign_webhook("  ", BODY, TS)


# -- in a real aiohttp handler ---------------------------------------------------------


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[tuple[str, list[WebhookEvent]]]:
    received: list[WebhookEvent] = []

    async def handle(request: web.Request) -> web.Response:
        try:
            event = parse_webhook(KEY, await request.read(), request.headers)
        except WebhookError as exc:
            return web.Response(status=401, text=exc.reason)
        received.append(event)
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/cio", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/cio", received
    finally:
        await runner.cleanup()


async def test_a_handler_accepts_signed_and_refuses_forged_requests(
    receiver: tuple[str, list[WebhookEvent]],
) -> None:
    url, received = receiver
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=BODY, headers=sign_webhook(KEY, BODY)) as resp:
            assert resp.status == 200
        forged = sign_webhook("guessed-key", BODY)
        async with session.post(url, data=BODY, headers=forged) as resp:
            assert resp.status == 401
            assert await resp.text() == "bad_signature"
        replayed = sign_webhook(KEY, BODY, int(time.time()) - 3600)
        async with session.post(url, data=BODY, headers=replayed) as resp:
            assert resp.status == 401
            assert await resp.text() == "stale"
    assert [e.metric for e in received] == ["opened"]
