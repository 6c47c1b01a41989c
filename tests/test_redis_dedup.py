"""Identify deduplication shared through a real redis-server."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("redis")

from cio_async import AsyncCustomerIO, AuthenticationError
from cio_async.redis import RedisDedupCache
from cio_async.testing import StandIn
from tests.conftest import FAST_BATCH
from tests.redis_support import RedisServer, env_with_path


async def test_two_clients_send_an_identical_identify_once(redis_url: str) -> None:
    caches = [RedisDedupCache(redis_url, workspace="ws") for _ in range(2)]
    async with StandIn() as server:
        clients = [
            AsyncCustomerIO(**server.client_kwargs(), dedup_cache=c, batch=FAST_BATCH)
            for c in caches
        ]
        async with clients[0] as a, clients[1] as b:
            sent = [await c.identify("42", {"plan": "pro", "n": 1}) for c in (a, b, a, b)]
            assert sent == [True, False, False, False]
            # A change is sent, from whichever process sees it first.
            assert await b.identify("42", {"plan": "pro", "n": 2})
            assert not await a.identify("42", {"n": 2, "plan": "pro"})  # key order
            await a.flush(5)
            await b.flush(5)
        assert server.counts["person.identify"] == 2
    for c in caches:
        await c.aclose()


async def test_a_failed_identify_is_forgotten_in_redis_too(redis_url: str) -> None:
    caches = [RedisDedupCache(redis_url, workspace="ws") for _ in range(2)]
    async with StandIn() as server:
        clients = [
            AsyncCustomerIO(**server.client_kwargs(), dedup_cache=c, batch=FAST_BATCH)
            for c in caches
        ]
        async with clients[0] as a, clients[1] as b:
            server.fail_next(401, path="/api/v2/batch")  # not retried: the identify fails
            with pytest.raises(AuthenticationError):
                await a.identify("7", {"x": 1}, wait=True)
            await caches[0].aclose()  # the background delete in Redis has run
            assert await b.identify("7", {"x": 1}, wait=True)  # not suppressed
        assert server.counts["person.identify"] == 1
    await caches[1].aclose()


async def test_fails_open_when_redis_is_down(caplog: pytest.LogCaptureFixture) -> None:
    server_r = RedisServer().start()
    cache = RedisDedupCache(server_r.url, workspace="ws", recheck=0.1)
    try:
        async with StandIn() as server:
            async with AsyncCustomerIO(
                **server.client_kwargs(), dedup_cache=cache, batch=FAST_BATCH
            ) as c:
                assert await c.identify("1", {"a": 1})
                server_r.stop()
                caplog.set_level(logging.WARNING, "cio_async")
                assert await c.identify("2", {"a": 1})  # Redis cannot answer: sent
                assert not await c.identify("2", {"a": 1})  # the local cache still works
                assert cache.failed_open == 1
                await c.flush(5)
            assert server.counts["person.identify"] == 2
        assert any("identify dedup" in r.getMessage() for r in caplog.records)
    finally:
        await cache.aclose()
        server_r.cleanup()


_WORKER = r"""
import asyncio, sys
from cio_async import AsyncCustomerIO, BatchPolicy, Region
from cio_async.redis import RedisDedupCache

async def main():
    url, redis_url = sys.argv[1], sys.argv[2]
    cache = RedisDedupCache(redis_url, workspace="stand-in-site")
    async with AsyncCustomerIO("stand-in-site", "stand-in-track-key",
                               region=Region.custom(url, url), dedup_cache=cache,
                               batch=BatchPolicy(linger=0.01)) as c:
        for _ in range(10_000):
            await c.identify("same-person", {"email": "a@example.com", "plan": "pro"})
        for i in range(1_000):
            await c.identify(f"p{i}", {"plan": "pro"})
    await cache.aclose()

asyncio.run(main())
"""


async def test_four_processes_send_10000_identical_identifies_once(
    redis_url: str, tmp_path: Path
) -> None:
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    async with StandIn() as server:
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                str(script),
                server.url,
                redis_url,
                env=env_with_path(),
                stderr=subprocess.PIPE,
            )
            for _ in range(4)
        ]
        for p in procs:
            _, err = await asyncio.wait_for(p.communicate(), 120)
            assert p.returncode == 0, err.decode()[-2000:]
        identifies = server.ops("person", "identify")
        same = [op for op in identifies if op.identifiers == {"id": "same-person"}]
        assert len(same) == 1
        assert len(identifies) == 1 + 1_000  # each of the other people once, too
