"""Every Track v1 endpoint against the stand-in: method, path, headers, auth and body."""

from __future__ import annotations

import base64
import datetime as dt
import time

import pytest

from cio_async import (
    AccountRegion,
    AsyncCustomerIO,
    AuthenticationError,
    BadRequestError,
    Object,
    Person,
    Relationship,
    ValidationError,
)
from cio_async.testing import RecordedRequest, StandIn

ULID_CHARS = set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")


def only_request(server: StandIn) -> RecordedRequest:
    assert len(server.requests) == 1, [r.path for r in server.requests]
    return server.requests[0]


def assert_track_headers(req: RecordedRequest, server: StandIn, body: bool = True) -> None:
    expected = base64.b64encode(f"{server.site_id}:{server.track_api_key}".encode()).decode()
    assert req.headers["Authorization"] == f"Basic {expected}"
    assert req.headers["User-Agent"].startswith("cio_async")
    if body:
        assert req.headers["Content-Type"] == "application/json"
    assert req.status in (200, 204)


async def test_identify_sends_put_with_attributes_and_timestamp(
    client: AsyncCustomerIO, server: StandIn
) -> None:
    before = int(time.time())
    await client.v1.identify("42", {"email": "ada@example.com", "plan": "pro"})
    req = only_request(server)
    assert (req.method, req.raw_path) == ("PUT", "/api/v1/customers/42")
    assert_track_headers(req, server)
    body = req.json
    assert body["email"] == "ada@example.com" and body["plan"] == "pro"
    assert before <= body["_timestamp"] <= int(time.time())
    assert server.people["id:42"]["plan"] == "pro"


async def test_identify_reserved_fields(client: AsyncCustomerIO, server: StandIn) -> None:
    await client.v1.identify(
        Person(email="ada@example.com"),
        {"plan": "pro"},
        update_only=True,
        timestamp=dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
        subscription_preferences={"topics": {"topic_1": True}},
        relationships=[Relationship(Object(1, "acme"), {"role": "admin"})],
    )
    req = only_request(server)
    assert req.raw_path == "/api/v1/customers/ada%40example.com"
    body = req.json
    assert body["_update"] is True
    assert body["_timestamp"] == 1704164645
    assert body["cio_subscription_preferences"] == {"topics": {"topic_1": True}}
    assert body["cio_relationships"] == {
        "action": "add_relationships",
        "relationships": [
            {
                "identifiers": {"object_type_id": "1", "object_id": "acme"},
                "relationship_attributes": {"role": "admin"},
            }
        ],
    }


async def test_identifiers_are_percent_encoded(client: AsyncCustomerIO, server: StandIn) -> None:
    await client.v1.identify(Person(id="a/b c+d?é~._-"), {"x": 1})
    req = only_request(server)
    assert req.raw_path == "/api/v1/customers/a%2Fb%20c%2Bd%3F%C3%A9~._-"
    assert server.ops()[0].identifiers == {"id": "a/b c+d?é~._-"}


async def test_percent_signs_survive_the_round_trip(
    client: AsyncCustomerIO, server: StandIn
) -> None:
    await client.v1.identify("x%41y", {"a": 1})
    await client.v1.delete_device("x%41y", "tok%2F1")
    assert [r.raw_path for r in server.requests] == [
        "/api/v1/customers/x%2541y",
        "/api/v1/customers/x%2541y/devices/tok%252F1",
    ]
    assert [o.identifiers for o in server.ops()] == [{"id": "x%41y"}, {"id": "x%41y"}]
    assert server.ops()[1].body == {"device_id": "tok%2F1"}


async def test_cio_id_gets_prefix_in_v1_path(client: AsyncCustomerIO, server: StandIn) -> None:
    await client.v1.delete(Person(cio_id="03000001"))
    await client.v1.delete("cio_03000002")
    assert [r.raw_path for r in server.requests] == [
        "/api/v1/customers/cio_03000001",
        "/api/v1/customers/cio_03000002",
    ]
    assert [r.method for r in server.requests] == ["DELETE", "DELETE"]
    assert "Content-Type" not in server.requests[0].headers
    assert server.requests[0].body == b""


async def test_track_event_has_ulid_and_timestamp(client: AsyncCustomerIO, server: StandIn) -> None:
    event_id = await client.v1.track("42", "purchase", {"amount": 30})
    req = only_request(server)
    assert (req.method, req.raw_path) == ("POST", "/api/v1/customers/42/events")
    assert_track_headers(req, server)
    body = req.json
    assert body["name"] == "purchase" and body["data"] == {"amount": 30}
    assert body["id"] == event_id and len(event_id) == 26 and set(event_id) <= ULID_CHARS
    assert abs(body["timestamp"] - time.time()) < 5
    assert "type" not in body


async def test_track_with_caller_id(client: AsyncCustomerIO, server: StandIn) -> None:
    assert await client.v1.track("42", "x", id="my-id", timestamp=1700000000) == "my-id"
    body = only_request(server).json
    assert body["id"] == "my-id" and body["timestamp"] == 1700000000


async def test_page_and_screen(client: AsyncCustomerIO, server: StandIn) -> None:
    await client.v1.page("42", "https://example.com/pricing?x=1", {"referrer": "g"})
    await client.v1.screen("42", "Home")
    page, screen = (r.json for r in server.requests)
    assert page["type"] == "page" and page["name"] == "https://example.com/pricing?x=1"
    assert page["data"] == {"referrer": "g"}
    assert screen["type"] == "screen" and screen["name"] == "Home"
    assert [o.action for o in server.events()] == ["page", "screen"]


async def test_track_anonymous_and_invite(client: AsyncCustomerIO, server: StandIn) -> None:
    await client.v1.track_anonymous("viewed", {"x": 1}, anonymous_id="anon-1")
    await client.v1.track_anonymous("invite", {"recipient": "friend@example.com"})
    a, b = (r.json for r in server.requests)
    assert server.requests[0].raw_path == "/api/v1/events"
    assert a["anonymous_id"] == "anon-1" and a["name"] == "viewed" and len(a["id"]) == 26
    assert "anonymous_id" not in b and b["data"]["recipient"] == "friend@example.com"
    with pytest.raises(ValidationError) as err:
        await client.v1.track_anonymous("invite", {"no": "recipient"})
    assert err.value.field == "anonymous_id"
    assert len(server.requests) == 2


async def test_devices(client: AsyncCustomerIO, server: StandIn) -> None:
    await client.v1.add_device(
        "42", "tok/en", "ios", last_used=1700000000, attributes={"push_enabled": True}
    )
    await client.v1.delete_device("42", "tok/en")
    add, delete = server.requests
    assert (add.method, add.raw_path) == ("PUT", "/api/v1/customers/42/devices")
    assert add.json == {
        "device": {
            "id": "tok/en",
            "platform": "ios",
            "last_used": 1700000000,
            "attributes": {"push_enabled": "true"},
        }
    }
    assert (delete.method, delete.raw_path) == (
        "DELETE",
        "/api/v1/customers/42/devices/tok%2Fen",
    )
    with pytest.raises(ValidationError, match="platform"):
        await client.v1.add_device("42", "t", "windows")


async def test_suppress_unsuppress(client: AsyncCustomerIO, server: StandIn) -> None:
    await client.v1.suppress("42")
    await client.v1.unsuppress("42")
    assert [(r.method, r.raw_path) for r in server.requests] == [
        ("POST", "/api/v1/customers/42/suppress"),
        ("POST", "/api/v1/customers/42/unsuppress"),
    ]
    assert server.suppressed == set()
    assert [o.action for o in server.ops()] == ["suppress", "unsuppress"]


async def test_merge(client: AsyncCustomerIO, server: StandIn) -> None:
    await client.v1.merge("42", {"email": "old@example.com"})
    req = only_request(server)
    assert (req.method, req.raw_path) == ("POST", "/api/v1/merge_customers")
    assert req.json == {"primary": {"id": "42"}, "secondary": {"email": "old@example.com"}}
    with pytest.raises(ValidationError, match="secondary"):
        await client.v1.merge("42", "42")


async def test_segments_are_chunked_by_1000(client: AsyncCustomerIO, server: StandIn) -> None:
    sent = await client.v1.add_to_segment(7, [str(i) for i in range(2345)], id_type="email")
    assert sent == 2345
    sizes = [len(r.json["ids"]) for r in server.requests]
    assert sizes == [1000, 1000, 345]
    assert all(r.path == "/api/v1/segments/7/add_customers" for r in server.requests)
    assert all(r.query == {"id_type": "email"} for r in server.requests)
    assert len(server.segments[7]) == 2345
    await client.v1.remove_from_segment(7, ["0", "1"], id_type="email")
    assert len(server.segments[7]) == 2343
    with pytest.raises(ValidationError, match="ids"):
        await client.v1.add_to_segment(7, [])
    with pytest.raises(ValidationError, match="segment_id"):
        await client.v1.add_to_segment(0, ["1"])


async def test_form_submit(client: AsyncCustomerIO, server: StandIn) -> None:
    await client.v1.submit_form("sign up", {"email": "a@example.com", "name": "Ada"})
    req = only_request(server)
    assert (req.method, req.raw_path) == ("POST", "/api/v1/forms/sign%20up/submit")
    assert req.json == {"data": {"email": "a@example.com", "name": "Ada"}}
    assert req.status == 204
    with pytest.raises(ValidationError, match="data"):
        await client.v1.submit_form("f", {"name": "no identifier"})
    with pytest.raises(ValidationError, match=r"data\.age"):
        await client.v1.submit_form("f", {"id": "1", "age": 3})  # type: ignore[dict-item]


async def test_report_metric(client: AsyncCustomerIO, server: StandIn) -> None:
    await client.v1.report_metric(
        "dlv_1", "clicked", timestamp=1700000000, href="https://example.com"
    )
    req = only_request(server)
    assert (req.method, req.raw_path) == ("POST", "/api/v1/metrics")
    assert req.json == {
        "delivery_id": "dlv_1",
        "metric": "clicked",
        "timestamp": 1700000000,
        "href": "https://example.com",
    }


async def test_region_lookup(client: AsyncCustomerIO, server: StandIn) -> None:
    region = await client.v1.get_region()
    assert region == AccountRegion(region="us", url=server.url, environment_id=1)
    req = only_request(server)
    assert (req.method, req.raw_path) == ("GET", "/api/v1/accounts/region")
    assert_track_headers(req, server, body=False)


async def test_bad_credentials_raise_authentication_error(server: StandIn) -> None:
    async with AsyncCustomerIO("wrong", "creds", region=server.region) as c:
        with pytest.raises(AuthenticationError) as err:
            await c.v1.identify("42", {"a": 1})
    assert err.value.status == 401 and not err.value.retryable
    assert "creds" not in str(err.value)
    assert len(server.requests) == 1  # a 401 is never retried


async def test_server_side_400_is_not_retried(client: AsyncCustomerIO, server: StandIn) -> None:
    server.fail_next(400, body={"meta": {"errors": ["bad attribute"]}})
    with pytest.raises(BadRequestError, match="bad attribute") as err:
        await client.v1.identify("42", {"a": 1})
    assert err.value.body == {"meta": {"errors": ["bad attribute"]}}
    assert len(server.requests) == 1
