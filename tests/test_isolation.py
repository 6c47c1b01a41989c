"""A 5xx provoked by one operation is isolated by splitting, as a 400 is, but only when
the evidence blames the batch (other requests succeed meanwhile): an outage, where
every batch gets 5xx, splits nothing."""

from __future__ import annotations

import asyncio
from typing import Any

from cio_async import BatchPolicy, Operation, OperationRejectedError, RetryPolicy
from cio_async.testing import StandIn

from .conftest import ClientFactory

#: Retries that never give up within a test, with short real backoffs.
PATIENT = RetryPolicy(
    max_attempts=None, initial_delay=0.01, max_delay=0.05, jitter=0.0, total_timeout=10.0
)


def policy(**kw: Any) -> BatchPolicy:
    base: dict[str, Any] = {"linger": 30.0, "retry": PATIENT, "shutdown_timeout": 5.0}
    base.update(kw)
    return BatchPolicy(**base)


class Errors:
    def __init__(self) -> None:
        self.seen: list[tuple[BaseException, Operation | None]] = []

    def __call__(self, exc: BaseException, op: Operation | None) -> None:
        self.seen.append((exc, op))


def batches(server: StandIn) -> list[list[dict[str, Any]]]:
    return [r.json["batch"] for r in server.requests if r.path == "/api/v2/batch"]


async def test_a_server_error_from_one_operation_fails_it_alone(
    make_client: ClientFactory, server: StandIn
) -> None:
    errors = Errors()
    server.fail_batches_containing(b"poison", status=500)
    # A fixed limit: the evidence needs a free slot beside the bad batch, which an
    # adaptive limit shrunk to one by a slow round trip would not give.
    c = make_client(batch=policy(max_batch_events=8, max_in_flight=4), on_error=errors)
    async with c:
        for i in range(8):
            c.track_nowait(str(i), "poison" if i == 5 else "fine")
        # Other traffic succeeds meanwhile: the evidence that the service is up. Each
        # call is one round trip; the bound only stops a broken build from looping.
        for _ in range(2000):
            if errors.seen:
                break
            await c.track("other", "traffic", wait=True)
        result = await asyncio.wait_for(c.flush(), 10)
    assert result.complete
    assert len(errors.seen) == 1
    exc, op = errors.seen[0]
    assert isinstance(exc, OperationRejectedError)
    assert (exc.reason, exc.status, exc.retryable) == ("server_error", 500, False)
    assert op is not None and op.to_dict()["name"] == "poison"
    assert sorted(int(e.identifiers["id"]) for e in server.events("fine")) == [0, 1, 2, 3, 4, 6, 7]
    assert c.stats().failed == {"server_error": 1}
    # Halved in order down to the bad operation: 8, then 4, 2, 1 (each retried a few
    # times before the next halving).
    sizes = [len(b) for b in batches(server) if b[0]["name"] != "traffic"]
    poisoned = [len(b) for b in batches(server) if any(o["name"] == "poison" for o in b)]
    assert sorted(set(poisoned), reverse=True) == [8, 4, 2, 1]
    assert poisoned == sorted(poisoned, reverse=True)
    assert sizes.count(4) >= 2 and sizes.count(1) >= 2  # the good halves went too


async def test_an_outage_splits_nothing(make_client: ClientFactory, server: StandIn) -> None:
    errors = Errors()
    server.fail_batches_containing(b'"e"', status=500)  # every request fails: an outage
    c = make_client(
        batch=policy(
            max_batch_events=10,
            retry=RetryPolicy(
                max_attempts=None, initial_delay=0.01, max_delay=0.05, jitter=0.0, total_timeout=1.0
            ),
        ),
        on_error=errors,
    )
    async with c:
        for i in range(30):
            c.track_nowait(str(i), "e")
        result = await asyncio.wait_for(c.flush(), 10)
    assert result.failed == 30
    assert c.stats().failed == {"retries_exhausted": 30}
    sizes = [len(b) for b in batches(server)]
    # Each batch failed many times (enough to be split, had anything succeeded), and
    # every request carried a whole batch: no request was spent on halves.
    assert len(sizes) >= 3 * 6
    assert set(sizes) == {10}
    assert len(errors.seen) == 30


async def test_unavailable_is_never_blamed_on_the_batch(
    make_client: ClientFactory, server: StandIn
) -> None:
    errors = Errors()
    server.fail_batches_containing(b"poison", status=503)
    c = make_client(
        batch=policy(
            max_batch_events=4,
            max_in_flight=4,
            retry=RetryPolicy(
                max_attempts=None, initial_delay=0.01, max_delay=0.05, jitter=0.0, total_timeout=1.0
            ),
        ),
        on_error=errors,
    )
    async with c:
        for i in range(4):
            c.track_nowait(str(i), "poison" if i == 1 else "fine")
        # Other requests succeed meanwhile, but a 503 says the service is unavailable:
        # the batch is retried whole until its budget is spent.
        for _ in range(5000):
            if errors.seen:
                break
            await c.track("other", "traffic", wait=True)
        await asyncio.wait_for(c.flush(), 10)
    poisoned = [len(b) for b in batches(server) if any(o["name"] == "poison" for o in b)]
    assert len(poisoned) >= 6 and set(poisoned) == {4}
    assert c.stats().failed == {"retries_exhausted": 4}
    assert len(server.events("traffic")) > 0
