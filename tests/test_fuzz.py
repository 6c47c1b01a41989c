"""Fuzz: random hostile input to every public call raises ``ValidationError`` or nothing.

Hostile values: lone surrogates, NUL and other control characters, a byte order mark,
NaN and infinities, integers past 64 bits, cyclic and 2,000-level values, datetimes
before 1970 or past 5138, bytes, sets, arbitrary objects, huge strings and wrong
types, mixed with valid values so that the deeper checks are reached too. Every call
runs against a real stand-in (accepted input is really sent).

What may escape:
- ``ValidationError`` for any bad value;
- ``ConfigurationError`` where an object of the wrong kind is passed where the SDK
  needs one of its own builders (``send``/``send_nowait``/``submit`` of something
  that is not an ``Operation``): a programming error, not bad data;
- ``NotFoundError`` from lookups of people the stand-in does not know, and
  ``UnprocessableError`` from a broadcast to ids it does not know (real answers about
  data, which no client-side check can know).
Anything else (``TypeError``, ``RecursionError``, ``AttributeError``, a 400 from the
stand-in for input the SDK let through) fails the test.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cio_async import (
    AsyncCustomerIO,
    BatchPolicy,
    ConfigurationError,
    Delivery,
    NotFoundError,
    Object,
    Operation,
    Person,
    Relationship,
    RetryPolicy,
    TransactionalEmail,
    TransactionalInApp,
    TransactionalPush,
    TransactionalSMS,
    UnprocessableError,
    ValidationError,
)
from cio_async.testing import StandIn

FAST = RetryPolicy(max_attempts=2, initial_delay=0.001, max_delay=0.002, jitter=0.0)
BATCH = BatchPolicy(linger=0.001, retry=FAST, shutdown_timeout=5.0)


class Tagged(dict):  # type: ignore[type-arg]
    """A dict with a short repr: hypothesis prints what it drew, and the repr of a
    2,000-level dict would itself overflow the stack."""

    def __repr__(self) -> str:
        return f"<{self.get('tag', 'dict')}>"


def _cyclic() -> dict[str, Any]:
    d = Tagged(tag="cyclic dict")
    d["self"] = d
    return d


def _cyclic_list() -> list[Any]:
    items: list[Any] = []
    items.append(Tagged(tag="cyclic list", x=items))
    return [Tagged(tag="cyclic list", x=items)]


def _deep(levels: int) -> Any:
    root = Tagged(tag=f"{levels}-level dict")
    cur: Any = root
    for i in range(levels):
        nxt: dict[str, Any] = {}
        cur["a"] = [nxt] if i % 2 else nxt
        cur = nxt
    return root


class _Opaque:
    pass


WEIRD_TEXT = [
    "",
    " ",
    "\t",
    "\x00",
    "a\x00b",
    "\ufeff42",
    "ev\ud800",
    "\udfff",
    "a\u2028b",
    "\x85",
    "cio_",
    "cio_\ud800",
    "@",
    "a@",
    "+1",
    "x" * 151,
    "é" * 80,
    "u" * 3000,
    "big" * 40_000,
]
WEIRD_VALUES: list[Any] = [
    math.nan,
    math.inf,
    -math.inf,
    2**64,
    -(2**63) - 1,
    2**200,
    b"bytes",
    bytearray(b"x"),
    _Opaque(),
    object,
    {1, 2},
    frozenset({"a"}),
    (1, "a"),
    dt.datetime(1960, 1, 1),
    dt.datetime(6000, 1, 1),
    dt.datetime.min,
    dt.datetime.max.replace(tzinfo=dt.timezone(dt.timedelta(hours=-5))),
    dt.date(1, 1, 1),
    dt.timedelta(days=1),
    _cyclic(),
    _cyclic_list(),
    MappingProxyType(_cyclic()),
    _deep(300),
    _deep(2000),
    {1: "int key"},
    {None: "none key"},
    {"k\ud800": "surrogate key"},
    {"": "empty key"},
    {"k" * 200: "long key"},
    {f"k{i}": i for i in range(301)},
    Person("42"),
    Object(1, "o"),
]

texts = st.one_of(
    st.sampled_from(WEIRD_TEXT),
    st.text(st.characters(codec=None, categories=["Cs", "Cc", "Cf", "Zs", "Ll", "So"]), max_size=8),
    st.text(max_size=12),
)
scalars = st.one_of(
    texts,
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.sampled_from(WEIRD_VALUES),
    st.datetimes(timezones=st.sampled_from([None, dt.timezone.utc])),
    st.binary(max_size=4),
)
keys = st.one_of(texts, st.integers(), st.none())
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(keys, inner, max_size=3),
        st.tuples(inner),
        st.builds(MappingProxyType, st.dictionaries(texts, inner, max_size=2)),
    ),
    max_leaves=6,
)
mappings = st.one_of(st.dictionaries(keys, values, max_size=4), values)


def valid_or(valid: Any, bad: st.SearchStrategy[Any] = values) -> st.SearchStrategy[Any]:
    """Mostly hostile, sometimes the valid value (so later arguments get checked)."""
    return st.one_of(st.just(valid), bad, bad)


person = st.one_of(
    st.just("42"),
    st.just({"email": "a@example.com"}),
    st.just(Person(cio_id="0300")),
    values,
    st.dictionaries(st.sampled_from(["id", "email", "cio_id", "phone", "x"]), values, max_size=2),
)
name = valid_or("purchase", texts)
data = valid_or(None, mappings)
when = valid_or(None)
relationships = st.one_of(
    st.just([Object(1, "o")]),
    st.lists(
        st.one_of(
            st.just(Object(2, "p")),
            st.builds(Relationship, st.just(Object(1, "o")), st.just({"role": "admin"})),
            values,
        ),
        max_size=3,
    ),
    values,
)

# String-valued mappings with a hostile key or value: past the type checks of device
# attributes and form data, to their encoding.
device_attributes = st.one_of(
    data, st.dictionaries(st.one_of(texts, st.integers()), st.one_of(texts, st.booleans()))
)
form = st.one_of(
    mappings,
    st.fixed_dictionaries(
        {"email": valid_or("a@example.com", texts)},
        optional={"note": texts, "n": values},
    ),
)


def builder_ops(draw: st.DrawFn) -> Any:
    """A Track v2 operation from a builder given hostile arguments (or the builder's
    ``ValidationError``), or a hostile non-operation."""
    which = draw(st.integers(0, 9))
    p = Person("42")
    builders: list[Callable[[], Any]] = [
        lambda: Person(draw(person)).event(draw(name), draw(data), timestamp=draw(when)),
        lambda: p.identify(draw(data), timestamp=draw(when), relationships=draw(relationships)),
        lambda: p.add_device(draw(name), draw(valid_or("ios")), attributes=draw(data)),
        lambda: p.merge(draw(person)),
        lambda: Object(draw(valid_or(1)), draw(valid_or("o"))).identify(draw(data)),
        lambda: Object(cio_object_id="ob").identify_anonymous(draw(valid_or(["anon"])), draw(data)),
        lambda: Delivery(draw(valid_or("dlv"))).event(draw(valid_or("opened")), draw(name)),
        lambda: Relationship(draw(valid_or(Object(1, "o"))), draw(data)),
        lambda: Operation.from_dict(draw(mappings)),
        lambda: draw(values),
    ]
    return builders[which]()


# Each public call: a name and a coroutine function (client, draw) running it once.
Call = Callable[[AsyncCustomerIO, st.DrawFn], Any]


async def _maybe(result: Any) -> Any:
    if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
        return await result
    return result


def _send_call(method: str) -> Call:
    def call(c: AsyncCustomerIO, draw: st.DrawFn) -> Any:
        op = builder_ops(draw)
        return getattr(c, method)(op)

    return call


def _message(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from([TransactionalEmail, TransactionalPush, TransactionalSMS]))
    common: dict[str, Any] = {
        "transactional_message_id": draw(valid_or(3)),
        "identifiers": draw(person),
        "message_data": draw(data),
        "send_at": draw(when),
        "language": draw(valid_or(None, texts)),
    }
    if kind is TransactionalEmail:
        common["to"] = draw(valid_or("a@example.com"))
        common["subject"] = draw(valid_or(None, texts))
        common["headers"] = draw(valid_or(None, mappings))
        common["attachments"] = draw(valid_or(None, mappings))
    elif kind is TransactionalPush:
        common["custom_data"] = draw(data)
        common["title"] = draw(valid_or(None, texts))
    else:
        common["to"] = draw(valid_or(None, texts))
    if draw(st.booleans()):
        return TransactionalInApp(transactional_message_id=3, identifiers="42", extra=draw(data))
    return kind(**common)


CALLS: dict[str, Call] = {
    "track_nowait": lambda c, d: c.track_nowait(d(person), d(name), d(data), timestamp=d(when)),
    "track": lambda c, d: c.track(
        d(person), d(name), d(data), id=d(valid_or(None, texts)), wait=d(st.booleans())
    ),
    "page_nowait": lambda c, d: c.page_nowait(d(person), d(name), d(data)),
    "page": lambda c, d: c.page(d(person), d(name), d(data), timestamp=d(when)),
    "screen_nowait": lambda c, d: c.screen_nowait(d(person), d(name), d(data), id=d(texts)),
    "screen": lambda c, d: c.screen(d(person), d(name), d(data)),
    "identify_nowait": lambda c, d: c.identify_nowait(
        d(person), d(data), update_only=d(st.booleans()), timestamp=d(when)
    ),
    "identify": lambda c, d: c.identify(
        d(person),
        d(data),
        subscription_preferences=d(valid_or(None, mappings)),
        relationships=d(valid_or(None, relationships)),
        wait=d(st.booleans()),
    ),
    "delete": lambda c, d: c.delete(d(person)),
    "suppress": lambda c, d: c.suppress(d(person)),
    "unsuppress": lambda c, d: c.unsuppress(d(person)),
    "merge": lambda c, d: c.merge(d(person), d(person)),
    "add_device": lambda c, d: c.add_device(
        d(person), d(name), d(valid_or("ios")), last_used=d(when), attributes=d(data)
    ),
    "delete_device": lambda c, d: c.delete_device(d(person), d(name)),
    "add_relationships": lambda c, d: c.add_relationships(d(person), d(relationships)),
    "delete_relationships": lambda c, d: c.delete_relationships(d(person), d(relationships)),
    "send": _send_call("send"),
    "send_nowait": _send_call("send_nowait"),
    "submit": _send_call("submit"),
    "track_anonymous": lambda c, d: c.track_anonymous(
        d(name), d(data), anonymous_id=d(valid_or(None, texts)), timestamp=d(when)
    ),
    "v1.identify": lambda c, d: c.v1.identify(d(person), d(data), timestamp=d(when)),
    "v1.track": lambda c, d: c.v1.track(d(person), d(name), d(data)),
    "v1.page": lambda c, d: c.v1.page(d(person), d(name), d(data)),
    "v1.delete": lambda c, d: c.v1.delete(d(person)),
    "v1.merge": lambda c, d: c.v1.merge(d(person), d(person)),
    "v1.add_device": lambda c, d: c.v1.add_device(
        d(person), d(name), d(valid_or("android")), attributes=d(device_attributes)
    ),
    "v1.add_to_segment": lambda c, d: c.v1.add_to_segment(d(valid_or(1)), d(valid_or(["42"]))),
    "v1.submit_form": lambda c, d: c.v1.submit_form(d(valid_or("f1", texts)), d(form)),
    "v1.report_metric": lambda c, d: c.v1.report_metric(
        d(valid_or("dlv")), d(valid_or("opened", texts)), timestamp=d(when), href=d(texts)
    ),
    "v1.report_push_event": lambda c, d: c.v1.report_push_event(
        d(valid_or("dlv", texts)), d(valid_or("opened")), d(name), timestamp=d(when)
    ),
    "v1.unsubscribe": lambda c, d: c.v1.unsubscribe(d(valid_or("dlv", texts))),
    "v2.entity": lambda c, d: c.v2.entity(builder_ops(d)),
    "v2.batch": lambda c, d: c.v2.batch([builder_ops(d) for _ in range(d(st.integers(0, 2)))]),
    "app.send": lambda c, d: c.app.send(_message(d)),
    "app.send_nowait": lambda c, d: c.app.send_nowait(_message(d)),
    "app.trigger_broadcast": lambda c, d: c.app.trigger_broadcast(
        d(valid_or(1)), data=d(data), ids=d(valid_or(None))
    ),
    "app.get_attributes": lambda c, d: c.app.get_attributes(d(person)),
    "app.find_by_email": lambda c, d: c.app.find_by_email(d(valid_or("a@example.com", texts))),
}

ALLOWED: tuple[type[BaseException], ...] = (ValidationError,)


def _allowed(call_name: str, exc: BaseException) -> bool:
    if isinstance(exc, ValidationError):
        return True
    if isinstance(exc, ConfigurationError) and call_name in ("send", "send_nowait", "submit"):
        return "Operation" in str(exc)
    if isinstance(exc, UnprocessableError) and call_name == "app.trigger_broadcast":
        return "not found" in str(exc)
    return isinstance(exc, NotFoundError) and call_name.startswith("app.get")


async def _run(calls: list[tuple[str, st.DataObject]]) -> list[str]:
    problems: list[str] = []
    async with (
        StandIn() as server,
        AsyncCustomerIO(**server.client_kwargs(), retry=FAST, batch=BATCH) as cio,
    ):
        for call_name, data_obj in calls:
            try:
                result = await _maybe(CALLS[call_name](cio, data_obj.draw))
                if isinstance(result, asyncio.Task):
                    await result
            except Exception as exc:
                if not _allowed(call_name, exc):
                    problems.append(f"{call_name}: {type(exc).__name__}: {str(exc)[:200]}")
        result = await cio.flush(5.0)
        if result.failed:
            problems.append(f"accepted operations failed delivery: {result}")
    return problems


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.data())
def test_hostile_input_to_every_public_call_raises_only_validation_error(
    data: st.DataObject,
) -> None:
    picked = data.draw(st.lists(st.sampled_from(sorted(CALLS)), min_size=1, max_size=12))
    problems = asyncio.run(_run([(name, data) for name in picked]))
    assert problems == []


def test_every_public_client_call_is_fuzzed() -> None:
    public = {
        n
        for n in dir(AsyncCustomerIO)
        if not n.startswith("_") and callable(getattr(AsyncCustomerIO, n))
    }
    lifecycle = {"start", "aclose", "flush", "stats", "spawn", "check_region", "from_env"}
    assert public - lifecycle - set(CALLS) == set()
