"""Hostile input is refused at the call with a ``ValidationError`` naming the field.

Lone surrogates, control characters in identifiers, NaN and infinities, integers and
datetimes JSON or Customer.io cannot carry, cyclic and absurdly deep values, and a
merge of a person into itself: each used to escape as ``TypeError``/``RecursionError``
or be sent silently (``null``), on the fast path and the general path alike.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import AsyncIterator, Callable
from types import MappingProxyType
from typing import Any

import pytest
import pytest_asyncio

from cio_async import (
    AsyncCustomerIO,
    BatchPolicy,
    Object,
    Operation,
    Person,
    Region,
    ValidationError,
)

# Never sends on its own: nothing here should be queued anyway.
QUIET = BatchPolicy(linger=3600, max_batch_events=10_000, shutdown_timeout=0)


@pytest_asyncio.fixture
async def cio() -> AsyncIterator[AsyncCustomerIO]:
    client = AsyncCustomerIO("site", "key", region=Region.custom("http://127.0.0.1:9"), batch=QUIET)
    await client.start()
    yield client
    assert client.stats().admitted == 0, "an invalid call was admitted"
    await client.aclose(timeout=0)


def cyclic() -> dict[str, Any]:
    d: dict[str, Any] = {}
    d["self"] = d
    return d


def deep(levels: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    cur = root
    for _ in range(levels):
        cur["a"] = {}
        cur = cur["a"]
    return root


Call = Callable[[AsyncCustomerIO], Any]

SURROGATE_CASES: list[tuple[str, Call, str]] = [
    ("event name", lambda c: c.track_nowait("42", "ev\ud800"), "name"),
    ("person", lambda c: c.track_nowait("4\ud8002", "ev"), "person"),
    ("event id", lambda c: c.track_nowait("42", "ev", id="x\udfff"), "id"),
    ("page url", lambda c: c.page_nowait("42", "/p\ud800"), "url"),
    ("screen name", lambda c: c.screen_nowait("42", "s\ud800"), "name"),
    ("Person.event", lambda c: Person("42").event("e\ud800"), "name"),
    ("Person id", lambda c: Person("4\ud800"), "person.id"),
    ("Person email", lambda c: Person(email="a\ud800@b.co"), "person.email"),
    ("identify person", lambda c: c.identify_nowait("4\ud800"), "person"),
    (
        "data value",
        lambda c: c.track_nowait("42", "ev", {"k": "v\ud800"}),
        "operation.attributes.k",
    ),
    ("nested value", lambda c: c.identify_nowait("42", {"k": ["v\ud800"]}), "attributes.k[0]"),
    ("object id", lambda c: Object(1, "o\ud800"), "object.object_id"),
]


@pytest.mark.parametrize("case", SURROGATE_CASES, ids=[c[0] for c in SURROGATE_CASES])
async def test_lone_surrogates_are_validation_errors(
    cio: AsyncCustomerIO, case: tuple[str, Call, str]
) -> None:
    _, call, field = case
    with pytest.raises(ValidationError) as exc:
        call(cio)
    assert exc.value.field == field
    assert "surrogate" in exc.value.message


async def test_awaited_forms_refuse_surrogates_too(cio: AsyncCustomerIO) -> None:
    for coro in (
        lambda: cio.track("42", "ev\ud800"),
        lambda: cio.page("4\ud800", "/p"),
        lambda: cio.screen("42", "s", {"x": "\ud800"}),
        lambda: cio.identify("42", {"k\ud800": 1}),
        lambda: cio.v1.track("42", "ev\ud800"),
    ):
        with pytest.raises(ValidationError):
            await coro()


@pytest.mark.parametrize("bad", ["4\x002", "\ufeff42", "a\x1fb", "a\x7fb", "a\x85b", "a\tb"])
async def test_control_characters_in_identifiers_are_refused(
    cio: AsyncCustomerIO, bad: str
) -> None:
    with pytest.raises(ValidationError) as exc:
        cio.track_nowait(bad, "ev")
    assert exc.value.field == "person"
    with pytest.raises(ValidationError):
        Person(bad)
    with pytest.raises(ValidationError) as exc:
        cio.track_nowait("42", "ev", id=bad)
    assert exc.value.field == "id"
    with pytest.raises(ValidationError) as exc:
        Person(email=f"me{bad}@example.com")
    assert exc.value.field == "person.email"
    with pytest.raises(ValidationError):
        await cio.identify({"id": bad})


async def test_printable_unicode_identifiers_still_pass() -> None:
    assert Person("josé-😀").value == "josé-😀"
    assert Person(email="zoë@example.com").kind == "email"


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
async def test_nan_and_infinity_are_refused_naming_the_field(
    cio: AsyncCustomerIO, value: float
) -> None:
    # track_nowait on a plain dict takes the fast path; a MappingProxy the general one.
    for call, field in [
        (lambda: cio.track_nowait("42", "ev", {"x": value}), "operation.attributes.x"),
        (
            lambda: cio.track_nowait("42", "ev", MappingProxyType({"x": value})),
            "operation.attributes.x",
        ),
        (lambda: cio.page_nowait("42", "/p", {"l": [1.0, value]}), "operation.attributes.l[1]"),
        (lambda: cio.identify_nowait("42", {"score": value}), "attributes.score"),
        (lambda: cio.identify_nowait("42", {"n": {"score": value}}), "attributes.n.score"),
        (lambda: Person("42").event("ev", {"x": value}), "operation.attributes.x"),
        (lambda: Object(1, "o").identify({"x": value}), "attributes.x"),
        (
            lambda: Operation.from_dict({"type": "person", "action": "event", "d": {"x": value}}),
            "operation.d.x",
        ),
    ]:
        with pytest.raises(ValidationError) as exc:
            call()
        assert exc.value.field == field
        assert "finite" in exc.value.message
    with pytest.raises(ValidationError):
        await cio.track("42", "ev", {"x": value})


async def test_null_values_still_pass_the_finite_check() -> None:
    op = Person("42").event("ev", {"x": None, "y": [None, 1.5]})
    assert op.to_dict()["attributes"] == {"x": None, "y": [None, 1.5]}


@pytest.mark.parametrize(
    ("when", "reason"),
    [
        (dt.datetime(1960, 1, 1), "before 1970"),
        (dt.datetime(6000, 1, 1), "5138"),
        (dt.datetime.max.replace(tzinfo=dt.timezone(dt.timedelta(hours=-5))), "5138"),
        (dt.datetime.min.replace(tzinfo=dt.timezone(dt.timedelta(hours=5))), "before 1970"),
    ],
)
async def test_out_of_range_datetimes_say_why(
    cio: AsyncCustomerIO, when: dt.datetime, reason: str
) -> None:
    with pytest.raises(ValidationError) as exc:
        cio.track_nowait("42", "ev", {"at": when})
    assert exc.value.field == "operation.attributes.at"
    assert reason in exc.value.message
    assert "serial" not in exc.value.message
    with pytest.raises(ValidationError) as exc:
        cio.identify_nowait("42", {"n": {"at": when}})
    assert reason in exc.value.message
    with pytest.raises(ValidationError) as exc:
        cio.track_nowait("42", "ev", timestamp=when)
    assert exc.value.field == "timestamp"
    assert reason in exc.value.message


async def test_huge_integers_are_refused(cio: AsyncCustomerIO) -> None:
    with pytest.raises(ValidationError) as exc:
        cio.track_nowait("42", "ev", {"n": 2**70})
    assert exc.value.field == "operation.attributes.n"
    with pytest.raises(ValidationError) as exc:
        cio.identify_nowait("42", {"n": -(2**64)})
    assert exc.value.field == "attributes.n"


@pytest.mark.parametrize("make", [cyclic, lambda: deep(2000), lambda: deep(300)])
async def test_cyclic_and_too_deep_values_are_validation_errors(
    cio: AsyncCustomerIO, make: Callable[[], dict[str, Any]]
) -> None:
    value = make()
    calls: list[Call] = [
        lambda c: c.track_nowait("42", "ev", value),
        lambda c: c.track_nowait("42", "ev", MappingProxyType(value)),
        lambda c: c.identify_nowait("42", value),
        lambda c: c.identify_nowait("42", {"x": value}),
        lambda c: c.identify_nowait("42", {"x": [value]}, update_only=True),
        lambda c: Person("42").event("ev", value),
        lambda c: Object(1, "o").identify({"x": value}),
    ]
    for call in calls:
        with pytest.raises(ValidationError) as exc:
            call(cio)
        assert "cyclic" in exc.value.message or "levels deep" in exc.value.message
        assert len(exc.value.field) < 130  # a short path, not 2,000 segments
    with pytest.raises(ValidationError):
        await cio.identify("42", {"x": value})
    with pytest.raises(ValidationError):
        await cio.v1.track("42", "ev", value)


async def test_merge_of_a_person_into_itself_is_refused(cio: AsyncCustomerIO) -> None:
    with pytest.raises(ValidationError) as exc:
        await cio.merge("a", "a")
    assert exc.value.field == "secondary"
    with pytest.raises(ValidationError):
        await cio.merge("a", Person(id="a"))
    with pytest.raises(ValidationError):
        await cio.merge({"email": "x@y.co"}, "x@y.co")
    with pytest.raises(ValidationError):
        Person("a").merge("a")
    # Different people (and different kinds with the same text) still merge.
    assert Person("a").merge(Person(email="a@b.co")).action == "merge"
    assert Person("a").merge(Person(cio_id="a")).action == "merge"


async def test_nan_is_not_deduplicated_as_a_repeat_of_none() -> None:
    # Both encode to null, so the dedup fingerprint alone cannot tell them apart.
    client = AsyncCustomerIO("site", "key", region=Region.custom("http://127.0.0.1:9"), batch=QUIET)
    await client.start()
    try:
        assert await client.identify("42", {"x": None})
        with pytest.raises(ValidationError) as exc:
            await client.identify("42", {"x": math.nan})
        assert exc.value.field == "attributes.x"
        assert client.stats().admitted == 1
    finally:
        await client.aclose(timeout=0)
