"""AsyncPipelines against the stand-in's Pipelines API, over real sockets."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio.from_thread
import orjson
import pytest
import pytest_asyncio

from cio_async import (
    DROPPED,
    AsyncPipelines,
    AuthenticationError,
    BatchPolicy,
    DeliveryAbandonedError,
    OperationRejectedError,
    Pipelines,
    PipelinesCall,
    PipelinesConfig,
    PipelinesRegionWarning,
    PipelinesRouter,
    ValidationError,
    __version__,
    asgi_lifespan,
)
from cio_async.testing import StandIn

from .conftest import FAST_BATCH

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")

Factory = Callable[..., AsyncPipelines]


@pytest_asyncio.fixture
async def make_cdp(server: StandIn) -> AsyncIterator[Factory]:
    made: list[AsyncPipelines] = []

    def factory(**kwargs: Any) -> AsyncPipelines:
        base: dict[str, Any] = {**server.pipelines_kwargs(), "batch": FAST_BATCH}
        base.update(kwargs)
        client = AsyncPipelines(**base)
        made.append(client)
        return client

    yield factory
    for c in made:
        await c.aclose()


def _batches(server: StandIn) -> list[dict[str, Any]]:
    return [r.json for r in server.requests if r.path == "/v1/batch"]


async def test_every_call_type_is_delivered_with_its_envelope(
    server: StandIn, make_cdp: Factory
) -> None:
    cdp = make_cdp(context={"app": {"name": "shop"}}, integrations={"All": True})
    ids = [
        await cdp.identify("u1", {"plan": "pro"}),
        await cdp.track("u1", "purchase", {"amount": 30}, context={"ip": "10.0.0.1"}),
        await cdp.page(None, "docs", "/home", {"ref": "x"}, anonymous_id="anon-1"),
        await cdp.screen("u1", name="Settings"),
        await cdp.group("u1", "acme", {"seats": 3}),
        await cdp.alias("anon-1", "u1"),
        *await cdp.batch([{"type": "track", "userId": "u2", "event": "raw", "messageId": "m-1"}]),
    ]
    assert (await cdp.flush()).delivered == 7
    calls = server.pipelines.calls
    assert [c.type for c in calls] == [
        "identify",
        "track",
        "page",
        "screen",
        "group",
        "alias",
        "track",
    ]
    assert [c.message_id for c in calls] == ids
    assert all(ULID.match(i) for i in ids[:-1]) and ids[-1] == "m-1"
    by_type = {c.type: c.body for c in calls[:6]}
    assert by_type["identify"]["traits"] == {"plan": "pro"}
    assert by_type["track"]["event"] == "purchase"
    assert by_type["track"]["properties"] == {"amount": 30}
    assert by_type["page"] == {**by_type["page"], "anonymousId": "anon-1", "name": "/home"}
    assert by_type["page"]["category"] == "docs" and "userId" not in by_type["page"]
    assert by_type["group"]["groupId"] == "acme" and by_type["group"]["traits"] == {"seats": 3}
    assert by_type["alias"]["previousId"] == "anon-1" and by_type["alias"]["userId"] == "u1"
    library = {"name": "cio_async", "version": __version__}
    for c in calls:
        assert c.body["context"]["library"] == library
        assert c.body["context"]["app"] == {"name": "shop"}  # the client-wide default
        assert c.body["integrations"] == {"All": True}
        assert ISO_MS.match(c.body["timestamp"]) and c.strict
        assert c.sent_at is not None and ISO_MS.match(c.sent_at)
    assert by_type["track"]["context"]["ip"] == "10.0.0.1"
    # sentAt is on the batch, not on the calls.
    assert all(
        "sentAt" in b and all("sentAt" not in c for c in b["batch"]) for b in _batches(server)
    )


async def test_wait_nowait_and_futures(server: StandIn, make_cdp: Factory) -> None:
    cdp = make_cdp()
    await cdp.start()
    mid = await cdp.track("u1", "waited", wait=True)
    assert server.pipelines.find(event="waited")[0].message_id == mid  # already there
    nowait = [
        cdp.identify_nowait("u1", {"a": 1}),
        cdp.track_nowait("u1", "e"),
        cdp.page_nowait("u1", name="/p"),
        cdp.screen_nowait("u1", name="s"),
        cdp.group_nowait("u1", "g"),
        cdp.alias_nowait("a", "u1"),
        *cdp.batch_nowait([{"type": "identify", "anonymousId": "x"}]),
    ]
    fut = await cdp.submit({"type": "track", "userId": "u9", "event": "submitted"})
    await fut
    assert server.pipelines.find(event="submitted")
    # From another thread, once started.
    other = await asyncio.to_thread(cdp.track_nowait, "u1", "from-thread")
    await cdp.flush()
    stored = {c.message_id for c in server.pipelines.calls}
    assert set(nowait) | {other} <= stored


async def test_batch_wait_waits_for_every_call(server: StandIn, make_cdp: Factory) -> None:
    cdp = make_cdp(batch=BatchPolicy(linger=30.0, shutdown_timeout=5.0))
    calls = [{"type": "track", "userId": f"u{i}", "event": "b"} for i in range(5)]
    ids = await asyncio.wait_for(cdp.batch(calls, wait=True), 10)
    assert [c.message_id for c in server.pipelines.calls] == ids


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda c: c.track_nowait(None, "e"), "user_id"),
        (lambda c: c.track_nowait("u", None), "event"),
        (lambda c: c.track_nowait("u", ""), "event"),
        (lambda c: c.track_nowait("u", "e", [1]), "properties"),
        (lambda c: c.identify_nowait("u", {"x": object()}), "traits"),
        (lambda c: c.identify_nowait(True), "user_id"),
        (lambda c: c.identify_nowait("u", timestamp=1_700_000_000_000), "timestamp"),
        (lambda c: c.identify_nowait("u", timestamp="yesterday"), "timestamp"),
        (lambda c: c.group_nowait("u", None), "group_id"),
        (lambda c: c.alias_nowait("old", None), "user_id"),
        (lambda c: c.page_nowait("u", name=3), "name"),
        (lambda c: c.track_nowait("u", "e", context=[1]), "context"),
        (lambda c: c.track_nowait("u", "e", {"pad": "x" * 33_000}), "properties"),
        (lambda c: c.identify_nowait("u", context={"pad": "x" * 33_000}), "context"),
        (
            lambda c: c.batch_nowait([{"type": "track", "userId": "u", "event": "e"}, {}]),
            "batch[1].type",
        ),
        (lambda c: c.batch_nowait([{"type": "track", "event": "e"}]), "batch[0].userId"),
        (lambda c: c.batch_nowait([]), "batch"),
        (
            lambda c: c.batch_nowait(
                [{"type": "track", "userId": "u", "event": "e", "properties": {"p": "x" * 30_000}}]
                * 17
            ),
            "batch",
        ),
    ],
)
async def test_bad_input_raises_validation_error_naming_the_field(
    server: StandIn, make_cdp: Factory, call: Callable[[AsyncPipelines], Any], field: str
) -> None:
    cdp = make_cdp()
    await cdp.start()
    with pytest.raises(ValidationError) as err:
        call(cdp)
    assert err.value.field == field
    await cdp.flush()
    assert not server.pipelines.calls and cdp.stats().admitted == 0


async def test_timestamps_are_iso_milliseconds(server: StandIn, make_cdp: Factory) -> None:
    cdp = make_cdp()
    await cdp.start()
    aware = dt.datetime(2026, 5, 1, 14, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    cdp.track_nowait("u", "dt", timestamp=aware)
    cdp.track_nowait("u", "naive", timestamp=dt.datetime(2026, 5, 1, 12, 0, 0, 5000))
    cdp.track_nowait("u", "secs", timestamp=1_777_636_800.5)
    cdp.track_nowait("u", "iso", timestamp="2026-05-01T12:00:00Z")
    cdp.track_nowait("u", "props", {"at": dt.datetime(2026, 5, 1, 12, 0)})
    await cdp.flush()
    ts = {c.body["event"]: c.body["timestamp"] for c in server.pipelines.calls}
    assert ts["dt"] == "2026-05-01T12:00:00.123Z"
    assert ts["naive"] == "2026-05-01T12:00:00.005Z"
    assert ts["secs"] == "2026-05-01T12:00:00.500Z"
    assert ts["iso"] == "2026-05-01T12:00:00.000Z"
    assert (
        server.pipelines.find(event="props")[0].body["properties"]["at"] == "2026-05-01T12:00:00Z"
    )


async def test_strict_mode_400_is_split_until_the_bad_call_is_isolated(
    server: StandIn, make_cdp: Factory
) -> None:
    # Valid to the client, refused by the workspace: only the server can say.
    server.pipelines.reject_call = lambda c: "unknown object type" if c["userId"] == "u5" else None
    errors: list[tuple[BaseException, Any]] = []
    cdp = make_cdp(on_error=lambda exc, call: errors.append((exc, call)))
    await cdp.start()
    ids = [cdp.track_nowait(f"u{i}", "e") for i in range(10)]
    result = await cdp.flush()
    assert (result.delivered, result.failed) == (9, 1)
    assert sorted(c.message_id for c in server.pipelines.calls) == sorted(ids[:5] + ids[6:])
    ((exc, call),) = errors
    assert isinstance(exc, OperationRejectedError) and exc.status == 400
    assert "unknown object type" in str(exc) and not exc.retryable
    assert isinstance(call, PipelinesCall) and call.message_id == ids[5] and call.user_id == "u5"
    # Every request carried the strict header; the batch was split (1 + 2 + ...).
    posts = [r for r in server.requests if r.path == "/v1/batch"]
    assert all(r.headers.get("X-Strict-Mode") == "1" for r in posts) and len(posts) > 3
    with pytest.raises(OperationRejectedError):
        await cdp.track("u5", "e", wait=True)


async def test_permissive_mode_loses_bad_calls_behind_a_200(
    server: StandIn, make_cdp: Factory
) -> None:
    server.pipelines.reject_call = lambda c: "nope" if c["userId"] == "u5" else None
    errors: list[Any] = []
    cdp = make_cdp(strict=False, on_error=lambda exc, call: errors.append(exc))
    await cdp.start()
    for i in range(10):
        cdp.track_nowait(f"u{i}", "e")
    result = await cdp.flush()
    # Customer.io's answer is 200: the client cannot know one call was not kept.
    assert (result.delivered, result.failed) == (10, 0) and not errors
    assert len(server.pipelines.calls) == 9
    assert all("X-Strict-Mode" not in r.headers for r in server.requests)


async def test_bad_write_key(server: StandIn, make_cdp: Factory) -> None:
    strict = make_cdp(write_key="wrong")
    with pytest.raises(AuthenticationError) as err:
        await strict.track("u", "e", wait=True)
    assert err.value.status == 401 and not err.value.retryable
    permissive = make_cdp(write_key="wrong", strict=False)
    await permissive.track("u", "e", wait=True)  # a 200 that keeps nothing
    assert not server.pipelines.calls and server.counts["cdp_unauthorized"] == 2
    auth = [r.headers["Authorization"] for r in server.requests]
    assert auth[0] == "Basic d3Jvbmc6"  # base64("wrong:"): the key as user, no password


async def test_retries_resend_the_same_message_ids(server: StandIn, make_cdp: Factory) -> None:
    cdp = make_cdp()
    await cdp.start()
    server.fail_next(503, path="/v1/batch")
    server.drop_next(after_processing=True, path="/v1/batch")  # accepted, answer lost
    ids = [cdp.track_nowait(f"u{i}", "e") for i in range(3)]
    result = await cdp.flush()
    assert result.delivered == 3 and cdp.stats().retried == 2
    sent = [[c["messageId"] for c in b["batch"]] for b in _batches(server)]
    assert sent == [ids, ids, ids]
    retries = [r.headers.get("X-Retry-Count") for r in server.requests]
    assert retries == [None, "1", "2"]
    # The stand-in ignores a repeated messageId, as Segment-style APIs do.
    assert [c.message_id for c in server.pipelines.calls] == ids
    assert server.counts["duplicate_events_ignored"] == 3


@pytest.mark.parametrize("n", [3, 400])
async def test_gzip(server: StandIn, make_cdp: Factory, n: int) -> None:
    cdp = make_cdp(gzip=True)
    await cdp.start()
    for i in range(n):
        cdp.track_nowait(f"u{i}", "e", {"path": "/pricing/" + "x" * 200, "n": i})
    assert (await cdp.flush()).delivered == n
    assert len(server.pipelines.calls) == n and all(c.gzip for c in server.pipelines.calls)
    # Compressed on the wire (the stand-in records the decoded body).
    wire = sum(int(r.headers["Content-Length"]) for r in server.requests)
    assert wire * 3 < sum(len(r.body) for r in server.requests)


def test_regions_and_key_inference() -> None:
    assert PipelinesConfig(write_key="abc").base_url == "https://cdp.customer.io/v1"
    assert PipelinesConfig(write_key="pk_eu_abc").base_url == "https://cdp-eu.customer.io/v1"
    assert PipelinesConfig(write_key="sk_us_abc").resolved_region == "us"
    assert PipelinesConfig(write_key="abc", region="EU").base_url == "https://cdp-eu.customer.io/v1"
    assert (
        PipelinesConfig(write_key="pk_eu_abc", url="http://proxy/v1").base_url == "http://proxy/v1"
    )
    assert "pk_eu_abc" not in repr(PipelinesConfig(write_key="pk_eu_abc"))
    with pytest.warns(PipelinesRegionWarning, match="EU region"):
        AsyncPipelines("pk_eu_abc", region="us")
    with pytest.warns(PipelinesRegionWarning, match="US region"):
        AsyncPipelines("sk_us_abc", url="https://cdp-eu.customer.io/v1")


async def test_wrong_region_is_a_silent_200_which_is_why_the_client_warns(
    server: StandIn, make_cdp: Factory
) -> None:
    server.pipelines.region = "us"
    server.cdp_write_key = "pk_eu_abc"
    cdp = make_cdp(write_key="pk_eu_abc")  # a custom url: the client cannot check it
    await cdp.track("u", "e", wait=True)
    assert not server.pipelines.calls and server.counts["cdp_wrong_region"] == 1


async def test_drops_go_to_on_drop_with_the_call(server: StandIn, make_cdp: Factory) -> None:
    dropped: list[tuple[Any, str]] = []
    policy = BatchPolicy(max_queue_events=2, when_full="drop_newest", linger=30.0)
    cdp = make_cdp(batch=policy, on_drop=lambda call, reason: dropped.append((call, reason)))
    await cdp.start()
    ids = [cdp.track_nowait(f"u{i}", "e") for i in range(3)]
    assert ids[2] is DROPPED  # the caller learns of the drop at the call
    assert ids[0] and ids[1]
    assert [r for _, r in dropped] == ["queue_full"]
    server.hold()
    await cdp.flush(timeout=0.01)  # the two queued calls go out and are held
    fut = await cdp.submit({"type": "track", "userId": "w", "event": "e"}, urgent=True)
    await server.wait_for(lambda s: s.held == 2)
    result = await cdp.aclose(timeout=0.05)
    server.release()
    assert result.dropped == 3
    assert {r for _, r in dropped[1:]} == {"shutdown"}
    assert all(isinstance(c, PipelinesCall) for c, _ in dropped)
    with pytest.raises(DeliveryAbandonedError):
        await fut


async def test_stats_and_hooks_count_pipelines_batches(server: StandIn, make_cdp: Factory) -> None:
    seen: list[str] = []

    class Hook:
        def on_request_end(self, op: str, *args: Any) -> None:
            seen.append(op)

    cdp = make_cdp(hooks=[Hook()])
    await cdp.start()
    for i in range(5):
        cdp.track_nowait(f"u{i}", "e")
    await cdp.flush()
    stats = cdp.stats()
    assert stats.delivered == 5 and stats.batches_sent == 1 and stats.admitted == 5
    assert seen == ["pipelines.batch"]


@pytest.fixture
def server_thread() -> Iterator[StandIn]:
    """A stand-in on its own loop thread, for the blocking facade."""
    with anyio.from_thread.start_blocking_portal("asyncio") as portal:
        server = StandIn()
        portal.call(server.start)
        try:
            yield server
        finally:
            portal.call(server.close)


def test_sync_facade(server_thread: StandIn) -> None:
    with Pipelines(**server_thread.pipelines_kwargs(), batch=FAST_BATCH) as cdp:
        mid = cdp.track("u1", "sync-event", {"a": 1})
        waited = cdp.identify("u1", {"plan": "pro"}, wait=True)
        cdp.page("u1", None, "/home")
        cdp.batch([{"type": "group", "userId": "u1", "groupId": "g"}])
        assert cdp.flush().pending == 0
    body = orjson.loads(orjson.dumps([c.body for c in server_thread.pipelines.calls]))
    assert {c["messageId"] for c in body} >= {mid, waited}
    assert [c["type"] for c in body] == ["track", "identify", "page", "group"]


@pytest.mark.parametrize(
    "properties", [None, {}, {"amount": 30, "at": dt.datetime(2026, 1, 1), "tags": ("a", "b")}]
)
@pytest.mark.parametrize("integrations", [None, {"All": False}])
def test_fast_track_bytes_equal_the_general_encoders(
    properties: dict[str, Any] | None, integrations: dict[str, Any] | None
) -> None:
    from cio_async.pipelines._encode import Encoder, track_encoder

    enc = Encoder({"app": {"name": "shop"}}, integrations)
    fast = track_encoder(enc)
    got = fast("u-1", "purchase", properties)
    assert got is not None
    payload, mid = got
    ts = orjson.loads(payload)["timestamp"]
    general = enc.call(
        "track",
        {"event": "purchase", "properties": properties},
        user_id="u-1",
        message_id=mid,
        timestamp=ts,
    )
    assert payload == general.payload
    # What it does not handle, it leaves to the general path (which names the field).
    assert fast("", "purchase", None) is None and fast("u", " ", None) is None
    assert fast(7, "purchase", None) is None and fast("u", "e", {"x": object()}) is None
    assert fast("u", "e", {"pad": "x" * 33_000}) is None


async def test_router_sends_each_call_to_its_workspace(server: StandIn) -> None:
    async with StandIn() as eu_server:
        us = AsyncPipelines(**server.pipelines_kwargs(), batch=FAST_BATCH)
        eu = AsyncPipelines(**eu_server.pipelines_kwargs(), batch=FAST_BATCH)
        router = PipelinesRouter(
            {"us": us, "eu": eu}, resolver=lambda user, anon: "eu" if user == "eu-1" else "us"
        )
        async with router:
            await router.identify("eu-1", {"plan": "pro"})
            await router.track("us-1", "purchase")
            router.track_nowait("eu-1", "viewed")
            await router.alias("anon", "eu-1")
            await router.page(None, name="/", anonymous_id="a", workspace="eu")
            results = await router.flush()
        assert results["eu"].delivered == 4 and results["us"].delivered == 1
        assert [c.type for c in eu_server.pipelines.calls] == ["identify", "track", "alias", "page"]
        assert [c.user_id for c in server.pipelines.calls] == ["us-1"]
        assert us.closed and eu.closed


async def test_asgi_lifespan_starts_and_flushes_a_pipelines_client(server: StandIn) -> None:
    cdp = AsyncPipelines(**server.pipelines_kwargs(), batch=BatchPolicy(linger=30.0))
    async with asgi_lifespan(cdp)(None) as state:
        state["cio"].track_nowait("u", "e")  # lingers until the app shuts down
    assert cdp.closed and len(server.pipelines.calls) == 1


async def test_a_retry_restamps_sent_at(server: StandIn, make_cdp: Factory) -> None:
    cdp = make_cdp()
    server.fail_next(503, path="/v1/batch")
    await cdp.track("u", "e", wait=True)
    first, retry = _batches(server)
    assert first["batch"] == retry["batch"] and retry["sentAt"] > first["sentAt"]
