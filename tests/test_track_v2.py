"""Track v2: typed operation builders, /api/v2/entity and the raw /api/v2/batch call."""

from __future__ import annotations

import pytest

from cio_async import (
    AsyncCustomerIO,
    BadRequestError,
    Delivery,
    Object,
    Operation,
    Person,
    Relationship,
    RequestTooLargeError,
    ValidationError,
)
from cio_async.testing import StandIn


def test_person_builders_produce_documented_shapes() -> None:
    p = Person(email="ada@example.com")
    ident = p.identify(
        {"plan": "pro"},
        timestamp=1700000000,
        update_only=True,
        subscription_preferences={"topics": {"topic_1": False}},
        relationships=[Relationship(Object("3", "acme"), {"role": "owner"})],
    ).to_dict()
    assert ident == {
        "type": "person",
        "action": "identify",
        "identifiers": {"email": "ada@example.com"},
        "timestamp": 1700000000,
        "attributes": {
            "plan": "pro",
            "_update": True,
            "cio_subscription_preferences": {"topics": {"topic_1": False}},
        },
        "cio_relationships": [
            {
                "identifiers": {"object_type_id": "3", "object_id": "acme"},
                "relationship_attributes": {"role": "owner"},
            }
        ],
    }
    ev = Person("42").event("purchase", {"amount": 3}, timestamp=1700000001)
    d = ev.to_dict()
    assert d["action"] == "event" and d["name"] == "purchase"
    assert d["attributes"] == {"amount": 3} and d["id"] == ev.event_id and len(d["id"]) == 26
    assert "data" not in d  # v2 carries event data in "attributes"
    assert Person("42").page("/pricing").to_dict()["name"] == "/pricing"
    assert Person("42").screen("Home").to_dict()["action"] == "screen"
    assert Person(cio_id="cio_abc").delete().to_dict()["identifiers"] == {"cio_id": "abc"}
    assert Person(phone="+15555550100").suppress().to_dict()["identifiers"] == {
        "phone": "+15555550100"
    }
    assert Person("42").unsuppress().to_dict()["action"] == "unsuppress"
    dev = Person("42").add_device("tok", "android", last_used=5).to_dict()
    assert dev["device"] == {"token": "tok", "platform": "android", "last_used": 5}
    assert Person("42").delete_device("tok").to_dict()["device"] == {"token": "tok"}
    merge = Person("42").merge({"email": "old@example.com"}).to_dict()
    assert merge == {
        "type": "person",
        "action": "merge",
        "primary": {"id": "42"},
        "secondary": {"email": "old@example.com"},
    }
    rel = Person("42").add_relationships([Object(cio_object_id="o1")]).to_dict()
    assert rel["cio_relationships"] == [{"identifiers": {"cio_object_id": "o1"}}]
    assert Person("42").delete_relationships([Object(1, "a")]).to_dict()["action"] == (
        "delete_relationships"
    )


def test_object_and_delivery_builders() -> None:
    o = Object(5, "acme")
    d = o.identify({"name": "Acme"}, relationships=[Relationship("42", {"r": 1})]).to_dict()
    assert d == {
        "type": "object",
        "action": "identify",
        "identifiers": {"object_type_id": "5", "object_id": "acme"},
        "attributes": {"name": "Acme"},
        "cio_relationships": [{"identifiers": {"id": "42"}, "relationship_attributes": {"r": 1}}],
    }
    anon = o.identify_anonymous(["anon-1"]).to_dict()
    assert anon["cio_relationships"] == [{"identifiers": {"anonymous_id": "anon-1"}}]
    assert o.delete().to_dict()["action"] == "delete"
    assert o.add_relationships([Person(email="a@b.c")]).to_dict()["cio_relationships"] == [
        {"identifiers": {"email": "a@b.c"}}
    ]
    assert o.delete_relationships(["7"]).to_dict()["action"] == "delete_relationships"
    dl = Delivery("dlv1").event("opened", "devtok", timestamp=9).to_dict()
    assert dl == {
        "type": "delivery",
        "action": "event",
        "identifiers": {"id": "dlv1"},
        "name": "opened",
        "timestamp": 9,
        "attributes": {"device_token": "devtok"},
    }
    with pytest.raises(ValidationError, match="name"):
        Delivery("d").event("clicked", "t")
    with pytest.raises(ValidationError, match="type_id"):
        Object("companies", "acme")
    with pytest.raises(ValidationError, match="target"):
        Person("42").add_relationships([Relationship("7")])


async def test_entity_posts_one_operation(client: AsyncCustomerIO, server: StandIn) -> None:
    op = Person("42").identify({"plan": "pro"})
    await client.v2.entity(op)
    (req,) = server.requests
    assert (req.method, req.path) == ("POST", "/api/v2/entity")
    assert req.headers["Authorization"].startswith("Basic ")
    assert req.body == op.payload
    (rec,) = server.ops()
    assert (rec.source, rec.type, rec.action) == ("entity", "person", "identify")


async def test_entity_accepts_raw_dicts(client: AsyncCustomerIO, server: StandIn) -> None:
    await client.v2.entity(
        {"type": "object", "action": "delete", "identifiers": {"cio_object_id": "x"}}
    )
    assert server.ops()[0].identifiers == {"cio_object_id": "x"}
    with pytest.raises(BadRequestError) as err:
        await client.v2.entity({"type": "person", "action": "fly", "identifiers": {"id": "1"}})
    assert err.value.errors[0]["field"] == "action"


async def test_batch_reports_207_rejections(client: AsyncCustomerIO, server: StandIn) -> None:
    ops: list[Operation | dict[str, object]] = [
        Person("1").event("a"),
        {"type": "person", "action": "bogus", "identifiers": {"id": "2"}},
        Object(1, "o").identify({"n": 1}),
    ]
    result = await client.v2.batch(ops)
    assert result.status == 207 and not result.ok
    assert [(e.batch_index, e.field) for e in result.errors] == [(1, "action")]
    assert [o.action for o in server.ops()] == ["event", "identify"]
    (req,) = server.requests
    assert req.path == "/api/v2/batch" and len(req.json["batch"]) == 3


async def test_batch_all_ok(client: AsyncCustomerIO, server: StandIn) -> None:
    result = await client.v2.batch([Person(str(i)).event("e") for i in range(10)])
    assert result.ok and result.status == 200
    assert len(server.events("e")) == 10


async def test_batch_size_limits_checked_before_sending(
    client: AsyncCustomerIO, server: StandIn
) -> None:
    big = Person("1").identify({f"k{i}": "x" * 900 for i in range(30)})
    with pytest.raises(ValidationError, match="500000"):
        await client.v2.batch([big] * 20)
    with pytest.raises(ValidationError, match="operations"):
        await client.v2.batch([])
    assert server.requests == []


async def test_stand_in_answers_413_for_oversize_entity(
    client: AsyncCustomerIO, server: StandIn
) -> None:
    # Bypass the builders' own check to prove the stand-in enforces the limit too.
    raw = Operation(
        b'{"type":"person","action":"identify","x":"' + b"y" * 33_000 + b'"}',
        "person",
        "identify",
        "id:1",
        None,
    )
    with pytest.raises(RequestTooLargeError):
        await client.v2.entity(raw)
