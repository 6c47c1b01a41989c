"""Identify deduplication against the stand-in."""

from __future__ import annotations

from typing import Any

import pytest

from cio_async import MemoryDedupCache, OperationRejectedError, Person, ValidationError
from cio_async.testing import StandIn

from .conftest import ClientFactory


def identifies(server: StandIn) -> list[dict[str, Any]]:
    return [o.body.get("attributes", {}) for o in server.ops("person", "identify")]


async def test_identical_identifies_reach_customer_io_once(
    make_client: ClientFactory, server: StandIn
) -> None:
    c = make_client()
    async with c:
        assert await c.identify("42", {"a": 1, "b": {"x": 1, "y": 2}})
        # Key order, at any depth, does not matter.
        assert not await c.identify("42", {"b": {"y": 2, "x": 1}, "a": 1})
        assert not c.identify_nowait("42", {"a": 1, "b": {"x": 1, "y": 2}})
        assert await c.identify("43", {"a": 1, "b": {"x": 1, "y": 2}})  # another person
    assert len(identifies(server)) == 2
    assert c.stats().deduplicated == 2
    assert c.stats().admitted == 2


async def test_only_the_latest_payload_is_deduplicated(
    make_client: ClientFactory, server: StandIn
) -> None:
    c = make_client()
    async with c:
        for attrs in ({"plan": "a"}, {"plan": "b"}, {"plan": "a"}, {"plan": "a"}):
            await c.identify("42", attrs)
    # A, B, A must all land (the third restores A); the fourth is a repeat.
    assert identifies(server) == [{"plan": "a"}, {"plan": "b"}, {"plan": "a"}]


async def test_delete_suppress_merge_evict(make_client: ClientFactory, server: StandIn) -> None:
    c = make_client()
    attrs = {"plan": "pro"}
    async with c:
        await c.identify("1", attrs)
        await c.delete("1")
        assert await c.identify("1", attrs)  # sent again after delete
        await c.suppress("1")
        await c.unsuppress("1")
        assert await c.identify("1", attrs)
        await c.identify("2", attrs)
        await c.merge("1", "2")
        assert await c.identify("1", attrs)
        assert await c.identify("2", attrs)  # the merged-away secondary too
        assert not await c.identify("2", attrs)
    assert len(identifies(server)) == 6


async def test_direct_and_raw_changes_evict(make_client: ClientFactory, server: StandIn) -> None:
    c = make_client()
    async with c:
        await c.identify("1", {"plan": "a"})
        await c.v1.identify("1", {"plan": "b"})  # the person's state changed elsewhere
        assert await c.identify("1", {"plan": "a"})
        await c.send(Person("1").identify({"plan": "c"}))
        assert await c.identify("1", {"plan": "a"})
        await c.v2.entity(Person("1").delete())
        assert await c.identify("1", {"plan": "a"})
    assert c.stats().deduplicated == 0


async def test_dedup_false_bypasses(make_client: ClientFactory, server: StandIn) -> None:
    c = make_client()
    async with c:
        await c.identify("1", {"a": 1})
        assert await c.identify("1", {"a": 1}, dedup=False)
    assert len(identifies(server)) == 2


async def test_failure_does_not_poison_the_cache(
    make_client: ClientFactory, server: StandIn
) -> None:
    server.fail_next(400, times=1, path="/api/v2/batch")
    c = make_client()
    async with c:
        with pytest.raises(OperationRejectedError):
            await c.identify("1", {"a": 1}, wait=True)
        assert await c.identify("1", {"a": 1}, wait=True)  # the retry of the same payload
    assert identifies(server) == [{"a": 1}]


async def test_drop_does_not_poison_the_cache(make_client: ClientFactory, server: StandIn) -> None:
    from cio_async import DROPPED, BatchPolicy

    c = make_client(
        batch=BatchPolicy(max_queue_events=1, when_full="drop_newest", linger=30, max_in_flight=1)
    )
    server.hold()
    async with c:
        await c.track("0", "e", wait=False)
        await c.flush(timeout=0)  # sends "0"; the stand-in holds it
        await server.wait_for(lambda s: s.held == 1)
        await c.track("1", "fills-the-queue")
        assert await c.identify("1", {"a": 1}) is DROPPED  # the queue is full
        assert c.stats().dropped == {"queue_full": 1}
        server.release()
        await c.flush()
        assert await c.identify("1", {"a": 1})  # not suppressed by the dropped attempt
    assert identifies(server) == [{"a": 1}]


async def test_invalid_input_is_never_cached(make_client: ClientFactory) -> None:
    c = make_client()
    async with c:
        for _ in range(2):
            with pytest.raises(ValidationError):
                await c.identify("1", {"bio": "x" * 2000})


def test_ttl_and_lru_bounds() -> None:
    now = [0.0]
    cache = MemoryDedupCache(ttl=10, max_entries=3, clock=lambda: now[0])
    assert not cache.seen("id:1", b"a")
    assert cache.seen("id:1", b"a")
    now[0] = 10.5
    assert not cache.seen("id:1", b"a")  # expired
    for i in range(2, 6):
        cache.seen(f"id:{i}", b"a")
    assert len(cache) == 3  # bounded
    assert not cache.seen("id:1", b"a")  # evicted as least recently used
    cache.evict("id:1")
    assert not cache.seen("id:1", b"a")


async def test_custom_cache_backend(make_client: ClientFactory, server: StandIn) -> None:
    class Shared:
        """A stand-in for a shared backend: a dict standing for Redis."""

        def __init__(self) -> None:
            self.store: dict[str, bytes] = {}

        def seen(self, person_key: str, fingerprint: bytes) -> bool:
            hit = self.store.get(person_key) == fingerprint
            self.store[person_key] = fingerprint
            return hit

        def evict(self, person_key: str) -> None:
            self.store.pop(person_key, None)

        def __len__(self) -> int:
            return len(self.store)

    shared = Shared()
    a, b = make_client(dedup_cache=shared), make_client(dedup_cache=shared)
    async with a, b:
        await a.identify("1", {"x": 1})
        assert not await b.identify("1", {"x": 1})  # deduplicated across clients
    assert len(identifies(server)) == 1
    assert set(shared.store) == {"id:1"}
