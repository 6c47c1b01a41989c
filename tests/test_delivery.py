"""The delivery core's behaviour: fast recovery after an outage, time-bounded batch
retries, adaptive concurrency, cheap drops, bounded close, flush accounting, and the
queue backend seam (a backend whose appends commit later, with ids and replay)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from cio_async import (
    AsyncCustomerIO,
    BatchPolicy,
    Operation,
    Region,
    RetryPolicy,
)
from cio_async.delivery import Concurrency
from cio_async.testing import StandIn

from .backends import DeferredBackend
from .conftest import ClientFactory
from .waiting import wait_until


def event_ids(server: StandIn) -> set[str]:
    return {e.event_id for e in server.events() if e.event_id}


async def test_delivery_resumes_within_a_second_of_the_server_coming_back(
    make_client: ClientFactory, server: StandIn
) -> None:
    # Every batch fails and sleeps a long backoff (2.5 s or more); when the server is
    # back, the probe's next success must wake them all, not leave them asleep.
    policy = BatchPolicy(
        max_batch_events=10,
        linger=0.01,
        max_in_flight=4,
        retry=RetryPolicy(max_attempts=None, initial_delay=5.0, max_delay=30.0, jitter=0.5),
    )
    c = make_client(batch=policy)
    loop = asyncio.get_running_loop()
    async with c:
        server.fail_next(503, times=100_000, path="/api/v2/batch")
        ids = [c.track_nowait(f"u{i}", "e") for i in range(40)]
        await server.wait_for(lambda s: len(s.requests) >= 6)  # all four failed; probing
        server.clear_faults()
        back = loop.time()
        result = await c.flush(timeout=30)
        resumed = loop.time() - back
    assert result.complete and result.failed == 0
    assert set(ids) <= event_ids(server)
    assert resumed < 1.5, f"delivery resumed {resumed:.2f}s after the server came back"


async def test_batch_retries_are_bounded_by_time_not_by_attempts(
    make_client: ClientFactory, server: StandIn
) -> None:
    # The default batch policy retries for its whole time budget however many attempts
    # that takes (a long outage must not fail events while the budget is unspent).
    assert BatchPolicy().retry.max_attempts is None
    assert BatchPolicy().retry.total_timeout >= 600  # a 10-minute outage fits
    policy = BatchPolicy(
        linger=0.01,
        max_in_flight=1,
        retry=RetryPolicy(max_attempts=None, initial_delay=0.001, max_delay=0.002),
    )
    c = make_client(batch=policy)
    async with c:
        server.fail_next(503, times=40, path="/api/v2/batch")
        event_id = await c.track("u1", "e", wait=True)
    assert event_id in event_ids(server)
    attempts = [r for r in server.requests if r.path == "/api/v2/batch"]
    assert len(attempts) == 41
    assert attempts[-1].headers["X-Retry-Count"] == "40"  # the one retry loop's header


def test_thousands_of_retries_keep_the_backoff_finite() -> None:
    # A long outage probed twice a second makes thousands of attempts; 2.0**1024
    # overflows a float, which failed the probing batch after about ten minutes.
    from cio_async._errors import ServerError
    from cio_async.http._retry import retry_delay

    policy = BatchPolicy().retry
    assert policy.backoff(5000) <= policy.max_delay * 1.5
    delay = retry_delay(policy, 5000, ServerError(503, "down"), 600.0)
    assert delay is not None and 0 < delay <= policy.max_delay * 1.5


async def test_batch_retries_give_up_when_the_time_budget_is_spent(
    make_client: ClientFactory, server: StandIn
) -> None:
    errors: list[BaseException] = []
    policy = BatchPolicy(
        linger=0.01,
        retry=RetryPolicy(max_attempts=None, initial_delay=0.01, max_delay=0.02, total_timeout=0.2),
    )
    c = make_client(batch=policy, on_error=lambda exc, op: errors.append(exc))
    async with c:
        server.fail_next(503, times=100_000, path="/api/v2/batch")
        c.track_nowait("u1", "e")
        result = await c.flush(timeout=10)
        server.clear_faults()
    assert result.failed == 1
    assert c.stats().failed == {"retries_exhausted": 1}


def test_adaptive_concurrency_grows_while_fast_and_backs_off_on_congestion() -> None:
    c = Concurrency(initial=4, maximum=25)
    for _ in range(500):
        c.succeeded(0.05, in_flight=c.limit)  # the limit is in use, round trips steady
    assert c.limit == 25  # grew to the pool
    c.congested()  # a 429, 5xx, network error or timeout
    assert c.limit == 12
    before = c.limit
    c.succeeded(0.5, in_flight=c.limit)  # ten times the baseline: rising latency
    assert c.limit < before
    warm = Concurrency(initial=4, maximum=25)
    for i in range(40):
        # Every third answer opened a new connection (handshakes: three round trips):
        # the pool growing, not the server slowing.
        fresh = i % 3 == 0
        warm.succeeded(0.45 if fresh else 0.15, in_flight=warm.limit, fresh=fresh)
    assert warm.limit >= 8  # grew about one per round trip, never backed off
    idle = Concurrency(initial=4, maximum=25)
    for _ in range(200):
        idle.succeeded(0.05, in_flight=1)  # not limited by the limit: no reason to grow
    assert idle.limit == 4
    fixed = Concurrency.fixed(8)
    fixed.congested()
    fixed.succeeded(0.01, in_flight=8)
    assert fixed.limit == 8


async def test_default_concurrency_adapts_and_stats_show_the_limit(
    make_client: ClientFactory, server: StandIn
) -> None:
    fast = RetryPolicy(max_attempts=None, initial_delay=0.001, max_delay=0.01)
    policy = BatchPolicy(max_batch_events=10, linger=0.01, retry=fast)  # adaptive by default
    assert policy.concurrency == "adaptive"
    assert BatchPolicy(max_in_flight=8).concurrency == "fixed"
    c = make_client(batch=policy)
    async with c:
        start = c.stats().concurrency_limit
        server.delay_next(0.005, times=10_000, path="/api/v2/batch")
        for i in range(3000):
            await c.track(f"u{i % 50}", "e")
        await c.flush(timeout=30)
        grown = c.stats().concurrency_limit
        server.clear_faults()
        server.fail_next(429, times=3, retry_after=0.001, path="/api/v2/batch")
        await c.track("u1", "e", wait=True)
        shrunk = c.stats().concurrency_limit
    assert grown > start
    assert shrunk < grown


def _drop_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "drop" in r.getMessage()]


async def _overflow(c: AsyncCustomerIO, server: StandIn, people: list[str]) -> None:
    """With one batch in flight at a time: hold the server, occupy that slot with one
    event, then track one event for each of ``people`` (what the queue cannot hold is
    dropped under ``drop_newest``). The server stays held."""
    server.hold()
    await c.track("held", "e")
    await server.wait_for(lambda s: s.held == 1)
    for person in people:
        await c.track(person, "e")


async def test_dropped_admissions_log_one_warning_per_episode(
    make_client: ClientFactory, server: StandIn, caplog: pytest.LogCaptureFixture
) -> None:
    drops: list[str] = []
    policy = BatchPolicy(
        max_batch_events=1, max_in_flight=1, max_queue_events=3, when_full="drop_newest"
    )
    c = make_client(batch=policy, on_drop=lambda op, reason: drops.append(reason))
    caplog.set_level(logging.WARNING, logger="cio_async")
    async with c:
        await _overflow(c, server, [str(i) for i in range(100)])  # 3 fit; 97 are dropped
        server.release()
        await c.flush(timeout=10)
        during = _drop_lines(caplog)
        assert len(during) == 1, during  # one warning when the episode started
    # The episode's count is logged when it ends (here: at close).
    assert drops == ["queue_full"] * 97
    lines = _drop_lines(caplog)
    assert len(lines) == 2, lines
    assert "97" in lines[1]


async def test_a_drop_episode_ends_with_its_count_after_a_quiet_gap(
    make_client: ClientFactory, server: StandIn, caplog: pytest.LogCaptureFixture
) -> None:
    policy = BatchPolicy(
        max_batch_events=1, max_in_flight=1, max_queue_events=2, when_full="drop_newest"
    )
    c = make_client(batch=policy)
    caplog.set_level(logging.WARNING, logger="cio_async")
    async with c:
        await _overflow(c, server, [str(i) for i in range(10)])  # 2 fit; 8 are dropped
        server.release()
        # No drop for a while: the episode ends and its count is logged while the
        # client is still open (not only at close).
        await wait_until(lambda: len(_drop_lines(caplog)) >= 2, timeout=10)
        lines = _drop_lines(caplog)
        assert len(lines) == 2, lines
        assert "dropped 8 operation(s)" in lines[1]
        # A later drop starts a new episode, with its own first warning.
        await _overflow(c, server, [f"y{i}" for i in range(4)])  # 2 fit; 2 are dropped
        assert len(_drop_lines(caplog)) == 3, _drop_lines(caplog)
        server.release()
    assert "dropped 2 operation(s)" in _drop_lines(caplog)[-1]


async def test_close_with_a_full_queue_hands_every_operation_to_on_drop() -> None:
    dropped = 0

    def on_drop(op: Operation, reason: str) -> None:
        nonlocal dropped
        dropped += 1

    cio = AsyncCustomerIO(
        "site",
        "key",
        region=Region.custom("http://127.0.0.1:9"),  # nothing listens: nothing delivered
        batch=BatchPolicy(linger=3600, max_queue_events=300_000, max_queue_bytes=10**9),
        on_drop=on_drop,
    )
    await cio.start()
    for i in range(200_000):
        cio.track_nowait(f"u{i % 100}", "e")
    result = await cio.aclose(timeout=0.2)
    assert dropped == 200_000
    assert result.dropped == 200_000
    assert cio.stats().dropped == {"shutdown": 200_000}


async def test_dropped_operations_decode_only_when_looked_at() -> None:
    seen: list[Operation] = []
    cio = AsyncCustomerIO(
        "site",
        "key",
        region=Region.custom("http://127.0.0.1:9"),
        batch=BatchPolicy(linger=3600),
        on_drop=lambda op, reason: seen.append(op),
    )
    await cio.start()
    event_id = cio.track_nowait("u1", "e", {"a": 1})
    await cio.aclose(timeout=0)
    [op] = seen
    assert (op.type, op.action, op.key, op.event_id) == ("person", "event", "id:u1", event_id)


async def test_flush_pending_counts_operations_not_batches(
    make_client: ClientFactory, server: StandIn
) -> None:
    policy = BatchPolicy(max_batch_events=1000, linger=0.01, max_in_flight=5)
    c = make_client(batch=policy)
    async with c:
        server.hold()
        for i in range(5000):
            c.track_nowait(f"u{i % 10}", "e")
        await server.wait_for(lambda s: s.held == 5)
        result = await c.flush(timeout=0.05)
        assert result.pending == 5000
        server.release()
        assert (await c.flush(timeout=10)).complete


async def test_a_backend_whose_appends_commit_later(server: StandIn) -> None:
    # Items from an "earlier process" are announced at start and delivered first;
    # ``await track`` returns only once its append committed; delivered items are
    # acknowledged by id; what is left at shutdown is given back, not acknowledged.
    left_over = [Operation.from_dict(_event("old-1")), Operation.from_dict(_event("old-2"))]
    backend = DeferredBackend([op.payload for op in left_over])
    cio = AsyncCustomerIO(
        **server.client_kwargs(),
        batch=BatchPolicy(linger=0.01, max_in_flight=1),
        queue=backend,
    )
    await cio.start()
    for i in range(3):
        await cio.track(f"u{i}", "e")
        assert backend.committed == i + 1
    assert (await cio.flush(timeout=10)).complete
    server.hold()
    cio.track_nowait("late", "e")
    await server.wait_for(lambda s: s.held == 1)
    result = await cio.aclose(timeout=0.05)
    server.release()
    assert result.dropped == 1
    ids = [e.event_id for e in server.events()]
    assert ids[:2] == ["old-1", "old-2"]
    assert len(ids) == 5
    assert sorted(backend.acked) == [1, 2, 3, 4, 5]
    assert backend.given_back == [6]  # in flight at shutdown: kept for a later process
    assert backend.closed


def _event(event_id: str) -> dict[str, Any]:
    return {
        "type": "person",
        "action": "event",
        "identifiers": {"id": "old"},
        "name": "e",
        "id": event_id,
    }
