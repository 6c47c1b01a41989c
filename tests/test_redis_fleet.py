"""The scale-out done-when scenarios with real processes: producers appending to a Redis
stream, ``cio-async relay`` processes delivering to the stand-in, SIGKILLs of a relay
and of redis-server itself. The full size (200,000 events) runs as
``python -m tests.redis_fleet``; the suite runs the same scenario smaller."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

pytest.importorskip("redis")

from cio_async import AsyncCustomerIO, BatchPolicy, QueueFullError, RetryPolicy
from cio_async.redis import RedisStreamTarget, StreamConfig
from cio_async.testing import StandIn
from tests.redis_fleet import run_scenario
from tests.redis_support import RedisServer

pytestmark = pytest.mark.timeout(300)


async def test_every_event_is_delivered_when_a_relay_is_killed(tmp_path: Path) -> None:
    r = await run_scenario(15_000, tmp_path, kill_relay=True)
    assert r["producer_codes"] == [0, 0, 0]
    assert r["relay_codes"][0] == -9  # SIGKILLed mid-run
    assert r["relay_codes"][1] == 0  # the survivor stopped cleanly on SIGTERM
    assert r["events"] == 15_000
    assert r["delivered_unique"] == 15_000
    # Anything delivered twice was a repeat of an event id (Customer.io ignores those).
    assert r["operations"] == 15_000


async def test_nothing_acknowledged_is_lost_when_redis_crashes_with_aof_always(
    tmp_path: Path,
) -> None:
    r = await run_scenario(9_000, tmp_path, kill_relay=False, crash_redis=True)
    assert r["producer_codes"] == [0, 0, 0]
    assert r["relay_codes"] == [0, 0]
    assert r["delivered_unique"] == r["events"] == 9_000
    assert r["operations"] == 9_000


async def _fill(client: AsyncCustomerIO) -> int:
    """Admit until the block policy refuses (bounded); return how many were admitted."""
    for i in range(10_000):
        try:
            await client.track("p", "e", {"i": i})
        except QueueFullError:
            return i
    raise AssertionError("the queue never pushed back")


def _client(server: StandIn, target: RedisStreamTarget, **batch: object) -> AsyncCustomerIO:
    policy = BatchPolicy(
        max_batch_events=10,
        linger=0.005,
        retry=RetryPolicy(max_attempts=1000, initial_delay=0.01, max_delay=0.05),
        **batch,  # type: ignore[arg-type]
    )
    return AsyncCustomerIO(**server.client_kwargs(), batch=policy, stream=target)


async def test_redis_down_the_block_policy_makes_callers_wait_then_raise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    redis = RedisServer().start()
    url = redis.url
    redis.stop()  # down from the start
    target = RedisStreamTarget(url)
    caplog.set_level(logging.WARNING, "cio_async")
    async with StandIn() as server:
        client = _client(server, target, max_queue_events=50, when_full="block", block_timeout=0.2)
        async with client:
            admitted = await _fill(client)
            # Bounded: the queue plus the batches in flight (retrying against Redis).
            assert 50 <= admitted <= 50 + 10 * client.config.pool.max_connections
            assert client.stats().queue_depth == 50
            redis.start()  # back: the queue drains to the stream
            assert (await client.flush(10)).complete
        assert server.counts["operations"] == 0  # producers never send to Customer.io
    assert target.appended == admitted
    assert any("Redis unreachable" in r.getMessage() for r in caplog.records)
    await target.aclose()
    redis.cleanup()


async def test_redis_down_the_drop_policy_reports_every_drop(redis_url: str) -> None:
    redis = RedisServer().start()
    url = redis.url
    redis.stop()
    target = RedisStreamTarget(url)
    dropped: list[str] = []
    async with StandIn() as server:
        client = AsyncCustomerIO(
            **server.client_kwargs(),
            stream=target,
            on_drop=lambda op, reason: dropped.append(reason),
            batch=BatchPolicy(
                max_batch_events=10,
                max_queue_events=30,
                when_full="drop_newest",
                retry=RetryPolicy(max_attempts=1000, initial_delay=0.01, max_delay=0.05),
            ),
        )
        async with client:
            for i in range(200):
                client.track_nowait("p", "e", {"i": i})
                if i % 10 == 9:
                    await asyncio.sleep(0)  # let the sender take batches (and fail)
            assert dropped
            assert set(dropped) == {"queue_full"}
            redis.start()
            result = await client.flush(10)
            assert result.complete
    assert target.appended + len(dropped) == 200  # every operation accounted for
    await target.aclose()
    redis.cleanup()


async def test_a_full_stream_pushes_back_on_producers_and_is_never_trimmed(
    redis_url: str,
) -> None:
    import redis.asyncio as aredis

    target = RedisStreamTarget(redis_url, StreamConfig(max_len=100))
    async with StandIn() as server:
        client = _client(server, target, max_queue_events=40, when_full="block", block_timeout=0.2)
        async with client:
            admitted = await _fill(client)  # no relay drains the stream
            assert admitted <= 100 + 40 + 10 * client.config.pool.max_connections
            conn = aredis.Redis.from_url(redis_url)
            assert await conn.xlen("cio:ops") == 100  # the bound, and nothing trimmed
            entries = await conn.xrange("cio:ops")
            assert any(b'"i":0}' in e[1][b"o"] for e in entries)  # the oldest is still there
            for _ in range(10):  # relays catch up: the producer's backlog drains
                await conn.delete("cio:ops")
                if (await client.flush(1)).complete:
                    break
            else:
                raise AssertionError("the backlog never drained")
            await conn.aclose()
    assert target.appended == admitted
    await target.aclose()
