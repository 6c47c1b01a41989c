"""The event encoder, the admission path for track/page/screen (``cio_async.delivery``).

It must make exactly the bytes the general path makes, take nothing it cannot handle
(the general path gives the same result or the same error), admit nothing invalid,
and stop the moment the client starts closing. What was queued is read from a queue
backend written against the public protocol (``tests.backends.ListBackend``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import string
import threading
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cio_async import (
    AsyncCustomerIO,
    BatchPolicy,
    ClientClosedError,
    Person,
    QueueFullError,
    Region,
    ValidationError,
)
from cio_async._model import event_payload
from cio_async.delivery import ADMITTED, DECLINED, event_encoder
from cio_async.testing import StandIn

from .backends import ListBackend
from .conftest import ClientFactory

# A client that never sends on its own (long linger, huge batches): the tests look at
# what was queued.
QUIET = BatchPolicy(linger=3600, max_batch_events=10_000, shutdown_timeout=0)


QUEUES: dict[int, ListBackend] = {}


def quiet_client(on_drop: Any = None, **batch: Any) -> AsyncCustomerIO:
    policy = dataclasses.replace(QUIET, **batch)
    backend = ListBackend()
    cio = AsyncCustomerIO(
        "site",
        "key",
        region=Region.custom("http://127.0.0.1:9"),
        batch=policy,
        queue=backend,
        on_drop=on_drop,
    )
    QUEUES[id(cio)] = backend
    return cio


def queued(cio: AsyncCustomerIO) -> list[bytes]:
    return QUEUES[id(cio)].queued()


def recording_encoder(action: str, result: int = ADMITTED) -> tuple[Any, list[bytes]]:
    """An encoder whose ``offer`` records the bytes and answers ``result``."""
    offered: list[bytes] = []

    def offer(payload: bytes) -> int:
        offered.append(payload)
        return result

    return event_encoder(action, offer), offered


def general_bytes(payload: bytes, person: Any, action: str, name: str, data: Any) -> bytes:
    """What the general encoder makes for the same event (same id and timestamp)."""
    doc = orjson.loads(payload)
    made, event_id = event_payload(person, action, name, data, doc["id"], doc["timestamp"])
    assert event_id == doc["id"]
    return made


person_ids = st.one_of(
    st.text(string.ascii_letters + string.digits + "-_.:", min_size=1, max_size=40),
    st.emails(),
    st.text(min_size=1, max_size=20).filter(lambda s: not s.isspace()),
    st.just("cio_0123abcd"),
    st.just('quote"and\\backslash'),
)
names = st.one_of(st.just("Viewed Pricing"), st.text(min_size=1, max_size=30)).filter(
    lambda s: not s.isspace()
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
datas = st.one_of(st.none(), st.dictionaries(st.text(max_size=10), json_values, max_size=4))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    action=st.sampled_from(["event", "page", "screen"]),
    person=person_ids,
    name=names,
    data=datas,
)
def test_same_bytes_as_the_general_encoder(
    action: str, person: str, name: str, data: dict[str, Any] | None
) -> None:
    fast, offered = recording_encoder(action)
    general_field = None
    try:
        event_payload(person, action, name, data, None, None)
    except ValidationError as exc:
        general_field = exc.field
    if general_field is not None:
        with pytest.raises(ValidationError) as got:
            fast(person, name, data)
        assert got.value.field == general_field
        assert offered == []
        return
    event_id = fast(person, name, data)
    assert isinstance(event_id, str) and len(event_id) == 26
    [payload] = offered
    assert payload == general_bytes(payload, person, action, name, data)
    assert orjson.loads(payload)["id"] == event_id


async def test_track_takes_the_fast_path_and_delivers(
    make_client: ClientFactory, server: StandIn
) -> None:
    backend = ListBackend()
    async with make_client(queue=backend) as cio:
        await cio.start()
        ids = [await cio.track("u1", "Viewed", {"n": i}) for i in range(5)]
        ids.append(await cio.page("u1", "https://example.com/p"))
        ids.append(await cio.screen("u1", "Home"))
        ids.append(cio.track_nowait("u1", "Viewed"))
        # Admitted synchronously: the queue holds them before any request.
        assert len(backend.queued()) == 8
        await cio.flush()
    ops = [op for r in server.requests for op in r.json["batch"]]
    assert [op["id"] for op in ops] == ids
    assert [op["action"] for op in ops] == ["event"] * 5 + ["page", "screen", "event"]
    assert [op.get("attributes", {}).get("n") for op in ops[:5]] == list(range(5))


class Attrs(Mapping[str, Any]):
    """A Mapping that is not a dict: the fast path declines it, the general path takes it."""

    def __init__(self, **kv: Any) -> None:
        self._kv = kv

    def __getitem__(self, key: str) -> Any:
        return self._kv[key]

    def __iter__(self) -> Any:
        return iter(self._kv)

    def __len__(self) -> int:
        return len(self._kv)


async def test_declines_what_it_does_not_handle_and_the_general_path_takes_it() -> None:
    cio = quiet_client()
    await cio.start()
    fast, offered = recording_encoder("event")
    try:
        assert fast(Person("p1"), "e", None) is None
        assert fast("p1", "e", MappingProxyType({"a": 1})) is None
        assert fast("p1", "e", Attrs(a=1)) is None
        assert fast("p1", "e", {"bad": object()}) is None  # not JSON
        with pytest.raises(ValidationError, match="operation"):  # over 32,000 bytes
            fast("p1", "e", {"blob": "x" * 40_000})
        assert offered == []
        # The general path: the same calls either work or raise the clear error.
        await cio.track(Person("p1"), "e")
        await cio.track("p1", "e", Attrs(a=1))
        await cio.track("p1", "e", MappingProxyType({"a": 1}))
        with pytest.raises(ValidationError, match="operation"):
            await cio.track("p1", "e", {"blob": "x" * 40_000})
        with pytest.raises(ValidationError) as exc:
            await cio.track("p1", "e", {"bad": object()})
        assert exc.value.field == "operation.attributes.bad"
        assert [orjson.loads(p)["attributes"] for p in queued(cio)[1:]] == [{"a": 1}, {"a": 1}]
    finally:
        await cio.aclose(timeout=0)


async def test_invalid_input_raises_naming_the_field_and_queues_nothing() -> None:
    cio = quiet_client()
    await cio.start()
    try:
        cases: list[tuple[tuple[Any, ...], str, str]] = [
            (("", "e"), "event", "person"),
            (("   ", "e"), "event", "person"),
            (("x" * 151, "e"), "event", "person"),
            (("p1", ""), "event", "name"),
            (("p1", "n" * 101), "event", "name"),
            (("p1", 42), "event", "name"),
            (("p1", "u" * 2049), "page", "url"),
            (("p1", " "), "screen", "name"),
        ]
        for args, action, field in cases:
            fast, offered = recording_encoder(action)
            with pytest.raises(ValidationError) as exc:
                fast(*args, None)
            assert exc.value.field == field, (args, action)
            assert offered == []
            method = {"event": cio.track, "page": cio.page, "screen": cio.screen}[action]
            with pytest.raises(ValidationError) as exc2:
                await method(*args)
            assert exc2.value.field == field
        assert queued(cio) == []
        assert cio.stats().admitted == 0
    finally:
        await cio.aclose(timeout=0)


async def test_full_queue_goes_to_the_policy() -> None:
    dropped: list[str] = []
    cio = quiet_client(
        on_drop=lambda op, reason: dropped.append(reason),
        max_queue_events=3,
        when_full="drop_newest",
    )
    await cio.start()
    try:
        for i in range(5):
            await cio.track("p1", "e", {"i": i})
        assert [orjson.loads(p)["attributes"]["i"] for p in queued(cio)] == [0, 1, 2]
        assert dropped == ["queue_full", "queue_full"]
        assert cio.stats().admitted == 5
    finally:
        await cio.aclose(timeout=0)


async def test_block_policy_still_blocks_then_refuses() -> None:
    cio = quiet_client(max_queue_events=2, when_full="block", block_timeout=0.05)
    await cio.start()
    try:
        await cio.track("p1", "e")
        await cio.track("p1", "e")
        with pytest.raises(QueueFullError):
            await cio.track("p1", "e")
        with pytest.raises(QueueFullError):
            cio.track_nowait("p1", "e")
    finally:
        await cio.aclose(timeout=0)


async def test_closing_stops_the_fast_path_at_once() -> None:
    cio = quiet_client()
    await cio.start()
    await cio.track("p1", "e")
    closing = asyncio.ensure_future(cio.aclose(timeout=0))
    await asyncio.sleep(0)  # aclose() has begun; its shutdown task may not have run yet
    with pytest.raises(ClientClosedError):
        await cio.track("p1", "e")
    with pytest.raises(ClientClosedError):
        cio.track_nowait("p1", "e")
    result = await closing
    assert result.dropped == 1  # the one admitted before closing, handed to on_drop


async def test_other_threads_take_the_thread_safe_path() -> None:
    cio = quiet_client()
    await cio.start()
    try:
        done = threading.Event()
        t = threading.Thread(target=lambda: (cio.track_nowait("p1", "e"), done.set()))
        t.start()
        t.join()
        assert done.is_set()
        for _ in range(100):  # the cross-thread admission lands via call_soon_threadsafe
            if queued(cio):
                break
            await asyncio.sleep(0)
        assert len(queued(cio)) == 1
    finally:
        await cio.aclose(timeout=0)


async def test_yields_once_per_batch_so_the_sender_runs(
    make_client: ClientFactory, server: StandIn
) -> None:
    # A producer awaiting track() in a tight loop never blocks; the fast path must still
    # hand the loop to the sender once per batch's worth, or nothing would be sent until
    # the producer stopped.
    policy = BatchPolicy(max_batch_events=10, linger=3600, max_queue_events=100_000)
    async with make_client(batch=policy) as cio:
        await cio.start()
        sent_during = 0
        for i in range(2000):
            await cio.track("p1", "e")
            if i == 1999:
                stats = cio.stats()
                sent_during = stats.batches_sent + stats.in_flight_batches
        assert sent_during > 0
        await cio.flush()
    assert sum(len(r.json["batch"]) for r in server.requests) == 2000


def test_an_encoder_declined_by_the_accumulator_hands_back_its_bytes() -> None:
    fast, offered = recording_encoder("event", DECLINED)
    result = fast("p1", "e", {"a": 1})
    assert isinstance(result, tuple) and len(result) == 2
    event_id, payload = result
    assert offered == [payload]  # encoded once; the caller admits these bytes
    assert orjson.loads(payload)["id"] == event_id


async def test_each_full_batch_wakes_the_sender_again(
    make_client: ClientFactory, server: StandIn
) -> None:
    # The fast path tests a flag, not Event.is_set(): the flag must reset whenever the
    # sender goes back to sleep, or the second full batch would wait for the linger.
    policy = BatchPolicy(max_batch_events=10, linger=3600)
    async with make_client(batch=policy) as cio:
        await cio.start()
        for round_ in range(1, 4):
            for _ in range(10):
                await cio.track("p1", "e")
            await server.wait_for(lambda s, n=round_: len(s.events()) == 10 * n)
        assert cio.stats().batches_sent == 3
