"""Stats, hooks and logging report what actually happened."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from cio_async import (
    AsyncCustomerIO,
    BatchPolicy,
    ClientConfig,
    Hooks,
    Operation,
    PoolConfig,
)
from cio_async._stats import Histogram
from cio_async.testing import StandIn

from .conftest import FAST_BATCH, FAST_RETRY, ClientFactory


class Recording(Hooks):
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def on_request_start(self, operation: str) -> None:
        self.calls.append(("start", (operation,)))

    def on_request_end(
        self,
        operation: str,
        status: int | None,
        seconds: float,
        error: BaseException | None,
        attempt: int,
    ) -> None:
        self.calls.append(("end", (operation, status, type(error).__name__, attempt)))

    def on_retry(self, operation: str, attempt: int, delay: float, error: BaseException) -> None:
        self.calls.append(("retry", (operation, attempt)))

    def on_drop(self, operation: Operation, reason: str) -> None:
        self.calls.append(("drop", (operation.key, reason)))

    def on_batch_sent(self, events: int, size: int, status: int, seconds: float) -> None:
        self.calls.append(("batch", (events, status)))

    def named(self, name: str) -> list[tuple[Any, ...]]:
        return [args for n, args in self.calls if n == name]


async def test_hooks_see_requests_retries_batches_and_drops(
    make_client: ClientFactory, server: StandIn
) -> None:
    hooks = Recording()
    c = make_client(hooks=[hooks], batch=BatchPolicy(linger=30, retry=FAST_BATCH.retry))
    server.fail_next(503, path="/api/v2/batch")
    async with c:
        for i in range(3):
            c.track_nowait(str(i), "e")
        await c.flush()
        await c.v1.identify("9", {"a": 1})
        server.hold()
        c.track_nowait("late", "e")
        await c.flush(timeout=0)  # sent; held at the stand-in
        await server.wait_for(lambda s: s.held == 1)
        c.track_nowait("never", "e")
        await c.aclose(timeout=0)
        server.release()
    assert hooks.named("start")[:3] == [("batch",), ("batch",), ("identify",)]
    ends = hooks.named("end")
    assert ends[0] == ("batch", 503, "ServerError", 0)
    assert ends[1] == ("batch", 200, "NoneType", 0)
    assert ends[2] == ("identify", 200, "NoneType", 0)
    assert hooks.named("retry") == [("batch", 1)]
    assert hooks.named("batch")[-1] == (3, 200)
    assert sorted(hooks.named("drop")) == [("id:late", "shutdown"), ("id:never", "shutdown")]


async def test_stats_snapshot_matches_reality(make_client: ClientFactory, server: StandIn) -> None:
    c = make_client(batch=BatchPolicy(linger=30, max_batch_events=4, retry=FAST_BATCH.retry))
    server.fail_next(500, path="/api/v2/batch")
    bad = Operation.from_dict({"type": "person", "action": "fly", "identifiers": {"id": "1"}})
    async with c:
        for i in range(10):
            c.track_nowait(str(i), "e")
        assert c.stats().queue_depth == 10
        # Two full batches leave at once; the last 2 wait for linger or a flush.
        await server.wait_for(lambda s: c.stats().queue_depth == 2)
        await c.send(bad)
        await c.identify("1", {"a": 1})
        await c.identify("1", {"a": 1})
        await c.flush()
        await c.v1.track("1", "direct")
        s = c.stats()
    assert s.admitted == 12
    assert s.delivered == 11
    assert s.failed == {"rejected": 1}
    assert s.deduplicated == 1
    assert s.retried == 1
    assert s.batches_sent == len([r for r in server.requests if r.path == "/api/v2/batch"])
    assert s.batch_events_max == 4
    assert s.batch_bytes_max == max(
        len(r.body) for r in server.requests if r.path == "/api/v2/batch"
    )
    assert s.queue_depth == 0
    assert s.queue_bytes == 0
    assert s.in_flight_batches == 0
    assert s.in_flight_requests == 0
    assert 1 <= s.connections_opened <= 3
    assert s.requests == len(server.requests)
    assert s.latency["batch"].errors == 1
    assert s.latency["batch"].count == s.batches_sent
    assert s.latency["track"].count == 1
    lat = s.latency["batch"]
    assert 0 < lat.p50 <= lat.p95 <= lat.p99 <= lat.max
    assert s.pending == 0


def test_histogram_percentiles_within_bucket_error() -> None:
    h = Histogram()
    values = [i / 1000 for i in range(1, 1001)]  # 1 ms .. 1 s, uniform
    for v in values:
        h.record(v)
    assert h.count == 1000
    assert h.max == 1.0
    for q, exact in ((0.5, 0.5), (0.95, 0.95), (0.99, 0.99)):
        assert exact <= h.percentile(q) <= exact * 1.13  # buckets are ~12% wide
    assert Histogram().percentile(0.5) == 0.0


async def test_slow_calls_are_logged(server: StandIn, caplog: pytest.LogCaptureFixture) -> None:
    cfg = ClientConfig(
        **server.client_kwargs(production_limits=True),
        slow_call_threshold=0.05,
        retry=FAST_RETRY,
        pool=PoolConfig(),
    )
    caplog.set_level(logging.WARNING, logger="cio_async")
    server.delay_next(0.1)
    async with AsyncCustomerIO(config=cfg) as c:
        await c.v1.identify("1", {"a": 1})
        await c.v1.identify("2", {"a": 1})
    slow = [r for r in caplog.records if "slow Customer.io call" in r.getMessage()]
    assert len(slow) == 1
    assert "identify" in slow[0].getMessage()
    assert server.track_api_key not in caplog.text


def test_logger_is_quiet_by_default() -> None:
    logger = logging.getLogger("cio_async")
    assert any(isinstance(h, logging.NullHandler) for h in logger.handlers)


async def test_a_failing_hook_is_ignored(
    make_client: ClientFactory, server: StandIn, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(Hooks):
        def on_request_end(self, *args: Any) -> None:
            raise RuntimeError("hook bug")

    c = make_client(hooks=[Broken()])
    async with c:
        await c.track("1", "e", wait=True)
    assert len(server.events()) == 1
    assert "hook bug" in caplog.text
