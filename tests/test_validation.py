"""Every validation rule fails at the call, before any I/O, naming the field."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from cio_async import AsyncCustomerIO, Object, Person, ValidationError
from cio_async.testing import StandIn


def field_of(fn: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(ValidationError) as err:
        fn(*args, **kwargs)
    assert isinstance(err.value, ValueError)
    assert err.value.field in str(err.value)
    return err.value.field


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"id": ""}, "person.id"),
        ({"id": "   "}, "person.id"),
        ({"id": "x" * 151}, "person.id"),
        ({"email": "é" * 76 + "@x"}, "person.email"),
        ({"email": "not-an-email"}, "person.email"),
        ({"phone": "555"}, "person.phone"),
        ({}, "person"),
        ({"id": "1", "email": "a@b.c"}, "person"),
    ],
)
def test_person_identifier_rules(kwargs: dict[str, Any], field: str) -> None:
    assert field_of(Person, **kwargs) == field


def test_identifier_at_the_limit_is_fine() -> None:
    assert Person("x" * 150).value == "x" * 150
    assert Person(email="é" * 74 + "@x").kind == "email"  # 148 + 2 = 150 bytes


def test_event_name_limit() -> None:
    Person("1").event("n" * 100)
    assert field_of(Person("1").event, "n" * 101) == "name"
    assert field_of(Person("1").event, "ü" * 51) == "name"  # 102 bytes
    assert field_of(Person("1").event, " ") == "name"


def test_attribute_limits() -> None:
    p = Person("1")
    assert field_of(p.identify, {"a" * 151: 1}).startswith("attributes.")
    p.identify({"a" * 150: 1})
    assert field_of(p.identify, {f"k{i}": i for i in range(301)}) == "attributes"
    p.identify({f"k{i}": i for i in range(300)})
    assert field_of(p.identify, {"bio": "x" * 1001}) == "attributes.bio"
    p.identify({"bio": "x" * 1000})
    assert field_of(p.identify, {"bio": "ü" * 501}) == "attributes.bio"
    assert field_of(p.identify, {"tags": ["x" * 600, "y" * 600]}) == "attributes.tags"
    assert field_of(p.identify, {"": 1}) == "attributes"
    assert field_of(p.identify, {1: 1}) == "attributes[1]"


def test_non_json_values_name_the_path() -> None:
    p = Person("1")
    assert field_of(p.identify, {"price": Decimal("1.5")}) == "attributes.price"
    assert field_of(p.event, "e", {"nested": {"deep": [1, object()]}}) == (
        "operation.attributes.nested.deep[1]"
    )


def test_event_data_limit_v1(client: AsyncCustomerIO) -> None:
    # v1 events allow 100,000 bytes of data; v2 operations 32,000 in all.
    assert field_of(Person("1").event, "e", {"blob": "x" * 40_000}) == "operation"


async def test_v1_event_data_limit(client: AsyncCustomerIO, server: StandIn) -> None:
    await client.v1.track("1", "e", {"blob": "x" * 99_000})
    with pytest.raises(ValidationError) as err:
        await client.v1.track("1", "e", {"blob": "x" * 100_001})
    assert err.value.field == "data"
    assert len(server.requests) == 1


def test_operation_limit() -> None:
    attrs = {f"k{i}": "x" * 990 for i in range(40)}  # each value fine, 40 KB in all
    assert field_of(Person("1").identify, attrs) == "operation"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (1_700_000_000_000, "milliseconds"),
        (-5, "negative"),
        ("2024-01-01", "Unix seconds"),
        (True, "Unix seconds"),
        (float("nan"), "finite"),
    ],
)
def test_timestamps_rejected(value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as err:
        Person("1").event("e", timestamp=value)
    assert err.value.field == "timestamp"


def test_timestamps_accepted() -> None:
    aware = dt.datetime(2024, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    naive = dt.datetime(2024, 1, 1, 10)
    a = Person("1").event("e", timestamp=aware).to_dict()["timestamp"]
    b = Person("1").event("e", timestamp=naive).to_dict()["timestamp"]
    assert a == b == 1704103200  # aware converted via UTC; naive taken as UTC
    assert Person("1").event("e", timestamp=1704103200.9).to_dict()["timestamp"] == 1704103200


def test_datetimes_inside_attributes_become_unix_seconds() -> None:
    when = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    attrs = Person("1").identify({"created_at": when}).to_dict()["attributes"]
    assert attrs == {"created_at": 1704067200}


def test_object_and_misc_rules() -> None:
    assert field_of(Object, 1, "") == "object.object_id"
    assert field_of(Object) == "object"
    assert field_of(Person("1").add_device, "", "ios") == "token"
    assert field_of(Person("1").add_device, "t", "ios", attributes={"x": 1}) == "attributes.x"
    assert field_of(Person("1").add_relationships, []) == "relationships"


async def test_client_calls_validate_before_io(client: AsyncCustomerIO, server: StandIn) -> None:
    with pytest.raises(ValidationError):
        await client.track("", "e")
    with pytest.raises(ValidationError):
        await client.identify("1", {"x": "y" * 2000})
    with pytest.raises(ValidationError):
        client.track_nowait("1", "e", timestamp=1_700_000_000_000)
    with pytest.raises(ValidationError):
        await client.v1.identify({"email": "a@b.c", "id": "1"}, {})
    with pytest.raises(ValidationError):
        await client.v1.identify(Person(phone="+15555550100"), {})
    await client.flush()
    assert server.requests == []
    assert client.stats().admitted == 0
