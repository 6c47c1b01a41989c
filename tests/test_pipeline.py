"""The batching pipeline against the stand-in: flush triggers, partial failures,
splitting, auth, retries, backpressure, threads, cancellation and shutdown."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from cio_async import (
    AsyncCustomerIO,
    AuthenticationError,
    BatchPolicy,
    CustomerIOError,
    DeliveryAbandonedError,
    MemoryBackend,
    Operation,
    OperationRejectedError,
    Person,
    QueueFullError,
    RetryPolicy,
)
from cio_async.testing import StandIn

from .conftest import FAST_BATCH, ClientFactory

FAST = FAST_BATCH.retry


def policy(**kw: Any) -> BatchPolicy:
    base: dict[str, Any] = {"linger": 30.0, "retry": FAST, "shutdown_timeout": 5.0}
    base.update(kw)
    return BatchPolicy(**base)


class Reports:
    """Collects on_error / on_drop calls."""

    def __init__(self) -> None:
        self.errors: list[tuple[BaseException, Operation | None]] = []
        self.drops: list[tuple[Operation, str]] = []

    def on_error(self, exc: BaseException, op: Operation | None) -> None:
        self.errors.append((exc, op))

    def on_drop(self, op: Operation, reason: str) -> None:
        self.drops.append((op, reason))

    def kwargs(self) -> dict[str, Any]:
        return {"on_error": self.on_error, "on_drop": self.on_drop}


def batch_sizes(server: StandIn) -> list[int]:
    return [len(r.json["batch"]) for r in server.requests if r.path == "/api/v2/batch"]


def event_ids(server: StandIn) -> list[str]:
    return [e.event_id for e in server.events() if e.event_id]


async def test_count_triggers_a_batch_without_waiting_for_linger(
    make_client: ClientFactory, server: StandIn
) -> None:
    c = make_client(batch=policy(max_batch_events=10))
    async with c:
        for i in range(25):
            c.track_nowait(str(i), "e")
        await server.wait_for(lambda s: len(s.events()) >= 20)
        assert batch_sizes(server) == [10, 10]  # the last 5 wait for linger or flush
        result = await c.flush(timeout=5)
        assert result.complete
        assert batch_sizes(server) == [10, 10, 5]
        assert result.delivered == 5


async def test_bytes_trigger_a_batch(make_client: ClientFactory, server: StandIn) -> None:
    c = make_client(batch=policy(max_batch_events=1000, max_batch_bytes=40_000))
    blob = "x" * 900
    async with c:
        for i in range(100):
            await c.track(str(i), "e", {f"k{j}": blob for j in range(10)})
        await server.wait_for(lambda s: s.counts["batches"] >= 2)
        await c.flush()
    sizes = [len(r.body) for r in server.requests]
    assert all(size <= 40_000 for size in sizes)
    assert sum(batch_sizes(server)) == 100
    assert max(sizes) > 30_000  # batches were filled close to the byte limit


async def test_linger_sends_a_partial_batch(make_client: ClientFactory, server: StandIn) -> None:
    c = make_client(batch=policy(linger=0.02))
    async with c:
        for i in range(3):
            await c.track(str(i), "e")
        assert server.requests == []  # nothing sent at admission
        await server.wait_for(lambda s: len(s.events()) == 3)
    assert batch_sizes(server) == [3]


async def test_waited_call_is_sent_at_once(make_client: ClientFactory, server: StandIn) -> None:
    c = make_client(batch=policy(linger=3600))
    async with c:
        # With an hour of linger, only the waiter can have triggered this send.
        await asyncio.wait_for(c.track("1", "urgent", wait=True), 5)
        assert len(server.requests) == 1
        assert [e.name for e in server.events()] == ["urgent"]


async def test_207_partial_failure(make_client: ClientFactory, server: StandIn) -> None:
    reports = Reports()
    c = make_client(batch=policy(), **reports.kwargs())
    bad = Operation.from_dict({"type": "person", "action": "fly", "identifiers": {"id": "1"}})
    async with c:
        good = [asyncio.ensure_future(c.track(str(i), "e", wait=True)) for i in range(4)]
        await asyncio.sleep(0)
        with pytest.raises(OperationRejectedError) as err:
            await c.send(bad, wait=True)
        await asyncio.gather(*good)
    assert err.value.field == "action"
    assert not err.value.retryable
    assert len(server.events("e")) == 4
    assert [op for _, op in reports.errors] == [bad]
    stats = c.stats()
    assert stats.failed == {"rejected": 1}
    assert stats.delivered == 4
    assert len(server.requests) == 1  # a 207 is not resent


async def test_400_is_isolated_by_splitting(make_client: ClientFactory, server: StandIn) -> None:
    reports = Reports()
    server.reject_batches_containing = b"poison"
    c = make_client(batch=policy(), **reports.kwargs())
    async with c:
        for i in range(8):
            c.track_nowait(str(i), "poison" if i == 5 else "fine")
        result = await c.flush()
    assert result.delivered == 7
    assert result.failed == 1
    assert sorted(int(e.identifiers["id"]) for e in server.events("fine")) == [
        0,
        1,
        2,
        3,
        4,
        6,
        7,
    ]
    assert len(reports.errors) == 1
    exc, op = reports.errors[0]
    assert isinstance(exc, OperationRejectedError)
    assert op is not None and op.to_dict()["name"] == "poison"
    # 8 -> 4+4 -> 2+2 -> 1+1: one extra request per halving of the bad side.
    assert len(server.requests) == 7


async def test_413_splits_and_resends(make_client: ClientFactory, server: StandIn) -> None:
    server.max_batch_bytes = 2_000
    c = make_client(batch=policy())
    async with c:
        for i in range(30):
            c.track_nowait(str(i), "e", {"pad": "x" * 40})
        result = await c.flush()
    assert result.delivered == 30
    assert sorted(event_ids(server)) == sorted(set(event_ids(server)))
    assert len(server.events("e")) == 30
    assert server.counts["batches"] > 1


async def test_401_fails_pending_fast(server: StandIn, make_client: ClientFactory) -> None:
    reports = Reports()
    c = make_client(track_api_key="wrong", batch=policy(max_in_flight=1), **reports.kwargs())
    async with c:
        waiters = [asyncio.ensure_future(c.track(str(i), "e", wait=True)) for i in range(5)]
        results = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(r, AuthenticationError) for r in results)
    assert len(server.requests) == 1  # no retries, no second batch
    assert c.stats().failed == {"auth": 5}
    assert len(reports.errors) == 5


@pytest.mark.parametrize(
    "fault",
    ["500", "429", "drop", "drop_after"],
)
async def test_retries_deliver_every_event_exactly_once(
    make_client: ClientFactory, server: StandIn, fault: str
) -> None:
    if fault == "500":
        server.fail_next(500, times=3, path="/api/v2/batch")
    elif fault == "429":
        server.fail_next(429, times=2, retry_after=0.01, path="/api/v2/batch")
    elif fault == "drop":
        server.drop_next(times=2, path="/api/v2/batch")
    else:
        server.drop_next(times=2, after_processing=True, path="/api/v2/batch")
    c = make_client(batch=policy(max_batch_events=20))
    async with c:
        ids = [await c.track(str(i % 5), "e", {"i": i}) for i in range(100)]
        result = await c.flush(timeout=10)
    assert result.complete
    assert sorted(event_ids(server)) == sorted(ids)  # each once, none lost
    assert c.stats().retried >= 2
    assert c.stats().delivered == 100


async def test_429_pauses_the_whole_sender(make_client: ClientFactory, server: StandIn) -> None:
    server.fail_next(429, retry_after=0.3, path="/api/v2/batch")
    c = make_client(batch=policy(max_batch_events=5))
    async with c:
        first_call = asyncio.ensure_future(c.track("0", "e", wait=True))
        await server.wait_for(lambda s: c.stats().paused_seconds > 0)
        for i in range(1, 21):
            c.track_nowait(str(i), "e")
        await c.flush(timeout=10)
        await first_call
    first = server.requests[0]
    assert first.status == 429
    later = server.requests[1:]
    assert len(later) >= 5
    # No batch went out during the pause Customer.io asked for.
    assert min(r.received_at for r in later) - first.received_at >= 0.29
    assert c.stats().paused_seconds >= 0.29
    assert len(server.events()) == 21


async def test_same_person_order_is_kept_with_one_batch_in_flight(
    make_client: ClientFactory, server: StandIn
) -> None:
    server.fail_next(503, times=2, path="/api/v2/batch")
    c = make_client(batch=policy(max_batch_events=7, max_in_flight=1))
    async with c:
        for i in range(50):
            c.track_nowait("same-person", f"step-{i}")
        await c.flush()
    assert [e.name for e in server.events()] == [f"step-{i}" for i in range(50)]


async def test_block_policy_waits_then_raises(make_client: ClientFactory, server: StandIn) -> None:
    c = make_client(
        batch=policy(max_batch_events=1, max_in_flight=1, max_queue_events=3, block_timeout=0.05)
    )
    server.hold()
    async with c:
        await c.track("0", "e")  # taken by the sender, held at the server
        await server.wait_for(lambda s: s.held == 1)
        for i in range(3):
            await c.track(str(i + 1), "e")  # fills the queue
        with pytest.raises(QueueFullError):
            await c.track("4", "e")
        with pytest.raises(QueueFullError):
            c.track_nowait("5", "e")
        assert c.stats().refused == 2
        # A blocked caller proceeds as soon as space appears.
        blocked = asyncio.ensure_future(c.track("6", "e"))
        await asyncio.sleep(0)
        assert not blocked.done()
        server.release()
        await asyncio.wait_for(blocked, 5)
    assert sorted(int(e.identifiers["id"]) for e in server.events()) == [0, 1, 2, 3, 6]
    stats = c.stats()
    assert stats.admitted == stats.delivered == 5


@pytest.mark.parametrize("when_full", ["drop_newest", "drop_oldest"])
async def test_drop_policies(make_client: ClientFactory, server: StandIn, when_full: str) -> None:
    reports = Reports()
    c = make_client(
        batch=policy(max_batch_events=1, max_in_flight=1, max_queue_events=3, when_full=when_full),
        **reports.kwargs(),
    )
    server.hold()
    async with c:
        await c.track("0", "e")
        await server.wait_for(lambda s: s.held == 1)
        for i in range(1, 6):
            await c.track(str(i), "e")  # 3 fit; 2 are dropped by the policy
        server.release()
        await c.flush()
    dropped = sorted(op.key for op, reason in reports.drops if reason == "queue_full")
    delivered = sorted(e.identifiers["id"] for e in server.events())
    if when_full == "drop_newest":
        assert dropped == ["id:4", "id:5"]
        assert delivered == ["0", "1", "2", "3"]
    else:
        assert dropped == ["id:1", "id:2"]
        assert delivered == ["0", "3", "4", "5"]
    stats = c.stats()
    assert stats.dropped == {"queue_full": 2}
    assert stats.admitted == stats.delivered + stats.dropped_total == 6


async def test_track_nowait_from_other_threads(make_client: ClientFactory, server: StandIn) -> None:
    c = make_client(batch=policy(linger=0.01))
    async with c:
        await c.start()
        ids: list[str] = []
        lock = threading.Lock()

        def worker(n: int) -> None:
            for i in range(100):
                eid = c.track_nowait(f"t{n}", "threaded", {"i": i})
                with lock:
                    ids.append(eid)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        await asyncio.gather(*(asyncio.to_thread(t.join) for t in threads))
        await server.wait_for(lambda s: len(s.events()) == 400)
    assert sorted(event_ids(server)) == sorted(ids)


def test_nowait_from_a_thread_before_start_is_a_clear_error() -> None:
    c = AsyncCustomerIO("s", "k")
    with pytest.raises(RuntimeError, match="has not started"):
        c.track_nowait("1", "e")


async def test_cancelling_a_waiter_does_not_cancel_delivery(
    make_client: ClientFactory, server: StandIn
) -> None:
    c = make_client(batch=policy())
    server.hold()
    async with c:
        waiter = asyncio.ensure_future(c.track("1", "keep-me", wait=True))
        await server.wait_for(lambda s: s.held == 1)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        server.release()
        result = await c.flush()
    assert result.pending == 0
    assert [e.name for e in server.events()] == ["keep-me"]
    assert c.stats().delivered == 1


async def test_shutdown_accounts_for_every_event(
    make_client: ClientFactory, server: StandIn
) -> None:
    reports = Reports()
    c = make_client(batch=policy(max_batch_events=10, max_in_flight=2), **reports.kwargs())
    await c.start()
    for i in range(15):
        await c.track(str(i), "e")  # some delivered before the hold
    await c.flush()
    server.hold()
    waited = asyncio.ensure_future(c.track("w", "e", wait=True))
    ids = [c.track_nowait(str(i), "late") for i in range(45)]
    await server.wait_for(lambda s: s.held >= 1)
    result = await c.aclose(timeout=0.05)
    server.release()
    with pytest.raises(DeliveryAbandonedError) as err:
        await waited
    assert err.value.reason == "shutdown"
    stats = c.stats()
    assert stats.admitted == 15 + 1 + 45
    assert stats.delivered == 15
    assert stats.dropped == {"shutdown": 46}
    assert stats.admitted == stats.delivered + stats.failed_total + stats.dropped_total
    assert result.dropped == 46
    dropped_ids = {op.event_id for op, reason in reports.drops if reason == "shutdown"}
    assert set(ids) <= dropped_ids
    with pytest.raises(CustomerIOError):
        await c.track("x", "after-close")


async def test_dead_sender_fails_every_waiter(make_client: ClientFactory, server: StandIn) -> None:
    reports = Reports()
    boom = RuntimeError("queue exploded")

    class ExplodingQueue(MemoryBackend):
        def take(self, max_events: int, max_bytes: int) -> Any:
            raise boom

    c = make_client(batch=policy(), queue=ExplodingQueue(), **reports.kwargs())
    await c.start()
    waiters = [asyncio.ensure_future(c.track(str(i), "e", wait=True)) for i in range(3)]
    results = await asyncio.wait_for(asyncio.gather(*waiters, return_exceptions=True), 5)
    assert results == [boom, boom, boom]
    assert (await c.flush(timeout=1)).pending == 0
    with pytest.raises(CustomerIOError, match="delivery task died"):
        await c.track("x", "e")
    assert any(op is None and exc is boom for exc, op in reports.errors)
    await c.aclose()


async def test_callback_errors_never_break_delivery(
    make_client: ClientFactory, server: StandIn, caplog: pytest.LogCaptureFixture
) -> None:
    def bad_callback(*_: Any) -> None:
        raise ValueError("user bug")

    bad = Operation.from_dict({"type": "person", "action": "fly", "identifiers": {"id": "1"}})
    c = make_client(batch=policy(), on_error=bad_callback, on_drop=bad_callback)
    async with c:
        await c.send(bad)
        await c.track("1", "e")
        await c.flush()
        await c.track("2", "e", wait=True)
    assert len(server.events("e")) == 2
    assert "user bug" in caplog.text


async def test_async_callbacks_are_owned_tasks(make_client: ClientFactory, server: StandIn) -> None:
    seen: list[str] = []

    async def on_error(exc: BaseException, op: Operation | None) -> None:
        await asyncio.sleep(0)
        seen.append(type(exc).__name__)

    bad = Operation.from_dict({"type": "person", "action": "fly", "identifiers": {"id": "1"}})
    c = make_client(batch=policy(), on_error=on_error)
    async with c:
        await c.send(bad)
        await c.flush()
        await c._tasks.wait(5)
    assert seen == ["OperationRejectedError"]


async def test_spawn_owns_background_work(make_client: ClientFactory, server: StandIn) -> None:
    reports = Reports()
    c = make_client(**reports.kwargs())
    async with c:
        ok = c.spawn(c.v1.submit_form("f", {"email": "a@b.c"}))
        bad = c.spawn(c.v1.submit_form("f", {"email": "a@b.c", "id": "1"}))
        await asyncio.gather(ok, bad, return_exceptions=True)
        server.hold()
        pending = c.spawn(c.v1.report_metric("d", "opened"))
        await server.wait_for(lambda s: s.held == 1)
    assert pending.cancelled()  # aclose cancels owned tasks
    server.release()
    assert len(server.ops("form")) == 1
    assert c.stats().background_errors == 1
    assert len(reports.errors) == 1
    assert reports.errors[0][1] is None


async def test_flush_timeout_reports_pending(make_client: ClientFactory, server: StandIn) -> None:
    c = make_client(batch=policy(max_batch_events=5))
    server.hold()
    async with c:
        for i in range(12):
            c.track_nowait(str(i), "e")
        result = await c.flush(timeout=0.05)
        assert not result.complete
        assert result.pending > 0
        server.release()
        assert (await c.flush(timeout=5)).complete
    assert len(server.events()) == 12


async def test_ops_for_all_v2_actions_go_through_the_pipeline(
    make_client: ClientFactory, server: StandIn
) -> None:
    c = make_client(batch=policy())
    async with c:
        await c.identify("p", {"a": 1})
        await c.page("p", "/home")
        await c.screen("p", "Home")
        await c.add_device("p", "tok", "ios")
        await c.delete_device("p", "tok")
        await c.suppress("q")
        await c.unsuppress("q")
        await c.merge("p", "r")
        await c.delete("p")
        await c.flush()
    assert [o.action for o in server.ops()] == [
        "identify",
        "page",
        "screen",
        "add_device",
        "delete_device",
        "suppress",
        "unsuppress",
        "merge",
        "delete",
    ]
    assert {o.source for o in server.ops()} == {"batch"}


async def test_retry_budget_exhaustion_fails_the_batch(
    make_client: ClientFactory, server: StandIn
) -> None:
    reports = Reports()
    server.fail_next(503, times=100, path="/api/v2/batch")
    c = make_client(
        batch=policy(retry=RetryPolicy(max_attempts=3, initial_delay=0.001, jitter=0)),
        **reports.kwargs(),
    )
    async with c:
        c.track_nowait("1", "e")
        c.track_nowait("2", "e")
        result = await c.flush()
    assert result.failed == 2
    assert c.stats().failed == {"retries_exhausted": 2}
    assert len(server.requests) == 3
    assert len(reports.errors) == 2


async def test_submit_returns_a_delivery_future(
    make_client: ClientFactory, server: StandIn
) -> None:
    bad = Operation.from_dict({"type": "person", "action": "fly", "identifiers": {"id": "1"}})
    c = make_client(batch=policy())
    async with c:
        futs = [await c.submit(Person(str(i)).event("e")) for i in range(5)]
        bad_fut = await c.submit(bad)
        assert not any(f.done() for f in futs)  # queued, not yet sent
        await asyncio.gather(*futs)
        with pytest.raises(OperationRejectedError):
            await bad_fut
    assert len(server.events("e")) == 5


async def test_submit_not_urgent_waits_for_a_full_batch(
    make_client: ClientFactory, server: StandIn
) -> None:
    c = make_client(batch=policy(max_batch_events=5))
    async with c:
        futs = [await c.submit(Person(str(i)).event("e"), urgent=False) for i in range(4)]
        for _ in range(3):
            await asyncio.sleep(0)  # give the sender every chance to (wrongly) take them
        assert c.stats().queue_depth == 4  # not urgent: no full batch, no linger yet
        futs.append(await c.submit(Person("4").event("e"), urgent=False))  # fills the batch
        await asyncio.gather(*futs)
    assert batch_sizes(server) == [5]
