"""Redis Streams primitives and the relay, against a real redis-server and the stand-in."""

from __future__ import annotations

import asyncio
import logging

import pytest

pytest.importorskip("redis")

import redis.asyncio as aredis

from cio_async import AsyncCustomerIO, BatchPolicy, Person, RetryPolicy
from cio_async.redis import (
    RedisStreamRelay,
    RelayOptions,
    StreamConfig,
    StreamConsumer,
    StreamFullError,
    StreamWriter,
)
from cio_async.testing import StandIn
from tests.waiting import wait_until

RELAY_BATCH = BatchPolicy(
    linger=0.01,
    retry=RetryPolicy(max_attempts=3, initial_delay=0.001, max_delay=0.01, jitter=0.0),
)


def payloads(n: int, start: int = 0) -> list[bytes]:
    return [Person(f"p{i % 50}").event("load", {"i": i}).payload for i in range(start, start + n)]


@pytest.fixture
async def conn(redis_url: str) -> aredis.Redis:
    c = aredis.Redis.from_url(redis_url)
    yield c
    await c.aclose()


async def test_the_writer_bounds_the_stream_without_trimming(conn: aredis.Redis) -> None:
    w = StreamWriter(conn, StreamConfig(max_len=10))
    first, second = payloads(6), payloads(4, 6)
    assert await w.add(first) == 6
    with pytest.raises(StreamFullError):
        await w.add(payloads(6))  # all or nothing: 12 > 10
    assert await conn.xlen("cio:ops") == 6
    assert await w.add(second) == 10
    # Nothing undelivered was ever trimmed: every entry is still there, in order.
    entries = await conn.xrange("cio:ops")
    assert [e[1][b"o"] for e in entries] == first + second


async def test_the_relay_delivers_acks_and_deletes(redis_url: str, conn: aredis.Redis) -> None:
    await StreamWriter(conn, StreamConfig()).add(payloads(1000))
    async with StandIn() as server:
        async with AsyncCustomerIO(**server.client_kwargs(), batch=RELAY_BATCH) as client:
            relay = RedisStreamRelay(client, redis_url, options=RelayOptions(stats_interval=0))
            task = asyncio.create_task(relay.run())
            await wait_until(lambda: relay.stats.delivered == 1000)
            relay.stop()
            await task
        assert server.counts["person.event"] == 1000
    assert await conn.xlen("cio:ops") == 0  # acknowledged and deleted
    assert (await conn.xpending("cio:ops", "relays"))["pending"] == 0


async def test_rejected_operations_go_to_the_dead_letter_stream_with_the_reason(
    redis_url: str, conn: aredis.Redis
) -> None:
    ops = payloads(20)
    bad = Person("bad").event("x" * 10, {"poison": True}).payload
    await StreamWriter(conn, StreamConfig()).add([*ops[:10], bad, *ops[10:], b"not json"])
    async with StandIn() as server:
        server.reject_operation = lambda op: (
            ("data", "poison") if (op.get("attributes") or {}).get("poison") else None
        )
        async with AsyncCustomerIO(**server.client_kwargs(), batch=RELAY_BATCH) as client:
            relay = RedisStreamRelay(client, redis_url, options=RelayOptions(stats_interval=0))
            task = asyncio.create_task(relay.run())
            await wait_until(lambda: relay.stats.delivered + relay.stats.dead_lettered == 22)
            relay.stop()
            await task
        assert server.counts["person.event"] == 20
    dead = await conn.xrange("cio:ops:dead")
    reasons = {e[1][b"o"]: e[1][b"reason"].decode() for e in dead}
    assert set(reasons) == {bad, b"not json"}
    assert reasons[bad].startswith("rejected:")
    assert "poison" in reasons[bad]
    assert reasons[b"not json"].startswith("malformed")
    assert await conn.xlen("cio:ops") == 0


async def test_a_dead_relays_pending_entries_are_reclaimed(
    redis_url: str, conn: aredis.Redis
) -> None:
    cfg = StreamConfig()
    await StreamWriter(conn, cfg).add(payloads(300))
    dead = StreamConsumer(conn, cfg, "dead-relay")
    await dead.ensure_group()
    taken = await dead.read(100, 10)  # read, never acknowledged: the relay "died"
    assert len(taken) == 100
    async with StandIn() as server:
        async with AsyncCustomerIO(**server.client_kwargs(), batch=RELAY_BATCH) as client:
            relay = RedisStreamRelay(
                client,
                redis_url,
                options=RelayOptions(stats_interval=0, claim_idle=0.2, claim_every=0.1),
            )
            task = asyncio.create_task(relay.run())
            await wait_until(lambda: relay.stats.delivered == 300)
            relay.stop()
            await task
        assert relay.stats.reclaimed == 100
        assert server.counts["person.event"] == 300
    assert (await conn.xpending("cio:ops", "relays"))["pending"] == 0


async def test_an_entry_that_keeps_killing_relays_is_dead_lettered(
    redis_url: str, conn: aredis.Redis
) -> None:
    cfg = StreamConfig()
    await StreamWriter(conn, cfg).add(payloads(1))
    dead = StreamConsumer(conn, cfg, "dead-relay")
    await dead.ensure_group()
    assert len(await dead.read(10, 10)) == 1
    for _ in range(3):  # three more relays took it over and died
        await wait_until(lambda: True)
        assert len(await dead.claim(0, 10)) == 1
    async with StandIn() as server:
        async with AsyncCustomerIO(**server.client_kwargs(), batch=RELAY_BATCH) as client:
            relay = RedisStreamRelay(
                client,
                redis_url,
                options=RelayOptions(
                    stats_interval=0, claim_idle=0.05, claim_every=0.05, max_deliveries=4
                ),
            )
            task = asyncio.create_task(relay.run())
            await wait_until(lambda: relay.stats.dead_lettered == 1)
            relay.stop()
            await task
        assert server.counts["person.event"] == 0
    (entry,) = await conn.xrange("cio:ops:dead")
    assert b"delivered 4 times" in entry[1][b"reason"]


async def test_an_outage_past_the_retry_budget_retries_then_dead_letters(
    redis_url: str, conn: aredis.Redis
) -> None:
    await StreamWriter(conn, StreamConfig()).add(payloads(3))
    async with StandIn() as server:
        server.fail_next(503, times=10_000, path="/api/v2/batch")  # a long outage
        async with AsyncCustomerIO(**server.client_kwargs(), batch=RELAY_BATCH) as client:
            relay = RedisStreamRelay(
                client,
                redis_url,
                options=RelayOptions(
                    stats_interval=0, claim_idle=0.1, claim_every=0.05, max_deliveries=3
                ),
            )
            task = asyncio.create_task(relay.run())
            await wait_until(lambda: relay.stats.dead_lettered == 3)
            relay.stop()
            await task
        # Each entry was tried in three deliveries (each with the client's retries).
        assert relay.stats.reclaimed >= 6
        assert server.counts["fault_503"] >= 9
    dead = await conn.xrange("cio:ops:dead")
    assert len(dead) == 3
    assert all(b"delivered 3 times" in e[1][b"reason"] for e in dead)
    assert all(b"503" in e[1][b"reason"] for e in dead)


async def test_stop_leaves_undelivered_entries_pending_for_others(
    redis_url: str, conn: aredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    await StreamWriter(conn, StreamConfig()).add(payloads(50))
    async with StandIn() as server:
        server.hold()  # Customer.io never answers
        async with AsyncCustomerIO(**server.client_kwargs(), batch=RELAY_BATCH) as client:
            relay = RedisStreamRelay(
                client, redis_url, options=RelayOptions(stats_interval=0), drain_timeout=0.2
            )
            task = asyncio.create_task(relay.run())
            await wait_until(lambda: server.held > 0)
            caplog.set_level(logging.INFO, "cio_async")
            relay.stop()
            await task
            server.release()
        assert relay.stats.delivered == 0
    assert (await conn.xpending("cio:ops", "relays"))["pending"] == 50
    assert any("stopped" in r.getMessage() for r in caplog.records)


async def test_a_relay_started_before_redis_waits_for_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A relay that starts while Redis is down (not up yet, or restarting and replaying
    its AOF) keeps trying, then relays, rather than exiting."""
    from tests.redis_support import RedisServer

    redis_server = RedisServer()  # a port picked, nothing listening on it yet
    caplog.set_level(logging.WARNING, logger="cio_async")
    try:
        async with StandIn() as server:
            async with AsyncCustomerIO(**server.client_kwargs(), batch=RELAY_BATCH) as client:
                relay = RedisStreamRelay(
                    client, redis_server.url, options=RelayOptions(stats_interval=0)
                )
                task = asyncio.create_task(relay.run())
                await wait_until(lambda: "unreachable at start" in caplog.text)
                assert not task.done()
                await asyncio.to_thread(redis_server.start)
                c = aredis.Redis.from_url(redis_server.url)
                try:
                    await StreamWriter(c, StreamConfig()).add(payloads(100))
                    await wait_until(lambda: relay.stats.delivered == 100)
                finally:
                    await c.aclose()
                relay.stop()
                await task
            assert server.counts["person.event"] == 100
    finally:
        redis_server.cleanup()


async def test_a_relay_stopped_while_waiting_for_redis_returns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from tests.redis_support import RedisServer

    down = RedisServer()  # never started
    caplog.set_level(logging.WARNING, logger="cio_async")
    try:
        async with StandIn() as server:
            async with AsyncCustomerIO(**server.client_kwargs(), batch=RELAY_BATCH) as client:
                relay = RedisStreamRelay(client, down.url, options=RelayOptions(stats_interval=0))
                task = asyncio.create_task(relay.run())
                await wait_until(lambda: "unreachable at start" in caplog.text)
                relay.stop()
                await asyncio.wait_for(task, 10)  # returns, does not raise
            assert server.counts["person.event"] == 0
    finally:
        down.cleanup()
